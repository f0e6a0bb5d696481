#!/usr/bin/env bash
# The whole test suite, the private-Tor-network tier included.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
