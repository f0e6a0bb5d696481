"""The ``obt`` command line: a client of the node's operations (:mod:`onionshare_bt.ops`).

::

    main.py      the root group and its options; gathers every command group below
    base.py      the invocation's state, the one error dispatcher (exit codes come only
                 from the error tree), the shared options
    client.py    the control socket from the CLI's side: find or start the node, send it
                 typed requests
    follow.py    polling loops (a download, a release being fetched), apart from drawing
    render.py    everything printed: JSON, text tables, progress bars, the trust tree
    metadata.py  obt share's metadata check and question
    torrents.py  share, get, list, unshare, remove
    play.py      play
    node.py      node start|id|stop|status, relay status, ratio
    trust.py     publish, trust add|remove|list|depth|graph, search
    mirror.py    mirror add|list|remove
    release.py   release keygen|make|publish|list, update check
    testnet.py   testnet up|down|status
    ui.py        ui (a one-time link into the node's web UI)

Data goes to stdout (one line, or one JSON document with ``--json``); progress, warnings
and errors go to stderr. Heavy modules (the node's parts, rich) are imported lazily;
nothing imports the CLI.
"""

from .main import main

__all__ = ["main"]
