"""The node's operations: one typed operation per verb, for every face of the node.

::

    operations.py Operations: every operation of a running node, by request type;
                  Dispatch: the control socket's table, Operations' and the web UI's
                  own (ui_link, run by :class:`~onionshare_bt.ui.server.UiServer`)
    requests.py   every operation's name and typed request (the table client and server
                  share), and the one place arguments are checked
    results.py    what each operation returns (TypedDicts of the JSON it sends)
    torrents.py   share, share_preview, get, list, torrent, torrent_file, peers, play, open,
                  unshare, remove, pause, resume
    node.py       status, stop, relay_status, ratio, settings, settings_set
    trust.py      node_id, publish, published, catalogue, trust_*, search, mirror_*,
                  release_*, update_check
    casts.py      cast, cast_stop, listen, listen_stop, casts

:class:`Operations` is composed of the node's parts, given at construction (it is not a
mixin of the node). Callers in the node's process (the web UI, :mod:`onionshare_bt.ui`)
build a request and ``await ops.run(request)``; the control socket hands ``Dispatch.call``
the name and JSON arguments it read, which :func:`requests.parse` turns into that request
first. Nothing is filled in after construction: the UI, built on the operations, brings
its one operation to the dispatch itself.

This package's ``__init__`` imports nothing: a client (the CLI) loads :mod:`.requests`
alone, without the node's parts.
"""
