#!/usr/bin/env bash
# Install what obt needs on a fresh Debian machine: Debian's tor, and a venv with the package.
# Idempotent; used by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tor >/dev/null 2>&1; then
    echo "setup: installing tor (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq tor >/dev/null
fi

# a standard BitTorrent client under torsocks, for the open-share tests
# (tests/tor/test_torsocks_client.py)
missing=()
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
command -v torsocks >/dev/null 2>&1 || missing+=(torsocks)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# exiftool: the tests' independent reader of what obt share --scrub leaves in a file
if ! command -v exiftool >/dev/null 2>&1; then
    echo "setup: installing exiftool (apt-get libimage-exiftool-perl)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libimage-exiftool-perl >/dev/null
fi

# ffmpeg: the tests of obt play make audio files with it and decode what the node streams
# (tests/tor/test_play.py, tests/integration/test_stream_http.py, bench/play.py)
if ! command -v ffmpeg >/dev/null 2>&1; then
    echo "setup: installing ffmpeg (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq ffmpeg >/dev/null
fi

# chromium and its driver: the web UI's tests run in a real headless browser
# (tests/tor/test_ui.py, through selenium and Debian's /usr/bin/chromedriver)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onionshare_bt, libtorrent, stem, pytest" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.obt-installed ]; then
    echo "setup: installing obt and its dependencies into .venv (pip)" >&2
    if ! { .venv/bin/python -m pip install -q --upgrade pip \
           && .venv/bin/python -m pip install -q -e '.[test]'; } > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "setup: pip failed (log above)" >&2
        exit 1
    fi
    touch .venv/.obt-installed
fi
