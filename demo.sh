#!/usr/bin/env bash
# The demo: a private Tor network on loopback, two obt nodes, one shares, one fetches.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m onionshare_bt.demo "$@"
