"""The benchmark harness for obt (issue 4): run it as ``python -m bench``.

- :mod:`.runner`: one condition (a private Tor network) and every figure in it.
- :mod:`.raw`: raw TCP through N onion services, the limit.
- :mod:`.onionshare`: onionshare-cli (in a venv of its own) fetched with curl.
- :mod:`.procs`: obt nodes driven through the CLI, bounded commands, memory readings.
- :mod:`.report`: medians, targets, ``latest.json`` and ``latest.md``.
"""
