#!/usr/bin/env bash
# The whole test suite, the private-Tor-network tier included.
# It runs inside a network namespace whose only way out is a counting sinkhole
# (scripts/sinkhole.sh): every test module asserts that nothing tried to leave.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec unshare --net --mount -- bash scripts/sinkhole.sh \
    .venv/bin/python -m pytest -p no:cacheprovider -ra --durations=25 "$@"
