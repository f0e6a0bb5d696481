"""What a node's identity onion speaks (pure: constants only).

The identity onion (:mod:`.server`) serves ``/node``, the public catalogue and the route
mirrors sync through (``POST /public/<token>/sync``); the mirror part
(:mod:`onionshare_bt.mirror`) builds on the limits of that route, never the other way round.
"""

from __future__ import annotations

__all__ = ["MAX_SYNC_REQUEST", "PROTOCOL", "SYNC_HEADER"]

#: the version of the ``/node`` document
PROTOCOL = 1
#: the largest sync request body the identity onion reads (a mirror's push fits in it)
MAX_SYNC_REQUEST = 128 * 1024
#: the header that carries a mirror's credential on a sync call
SYNC_HEADER = "X-Obt-Mirror-Auth"
