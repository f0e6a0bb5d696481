"""The node's management web UI: served by the node, in its process and event loop.

::

    server.py    the aiohttp server on 127.0.0.1 (ephemeral port), its guard (Host, session
                 cookie, Origin, CSRF) and routes; ``obt ui --onion`` publishes it on an
                 onion service of its own
    security.py  one-time link tokens, sessions, the Host and Origin checks, the headers
                 every answer carries (pure)
    pages.py     every page and form: each runs the node's operations (the typed requests
                 of :mod:`onionshare_bt.ops.requests`, the CLI's own) and redirects after a
                 POST; ``/events`` streams live figures as server-sent events
    html.py      the pages' HTML, every value escaped (pure)
    graph.py     the trust graph as an inline SVG picture (pure)
    static/      ui.js (live updates, optional: everything works with JavaScript off) and
                 ui.css; no build step

The UI is a face of the node like the control socket: it sits on the node's floor
(tests/unit/test_layering.py) and reaches the parts only through the operations.
"""
