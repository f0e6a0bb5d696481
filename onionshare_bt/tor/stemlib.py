"""The one place stem is imported from, with its logger tamed (for :mod:`.client`, and for
the test network's authorities in :mod:`onionshare_bt.testnet.watch`).

stem sets its own logger to TRACE on import, and at TRACE it logs every control
message, including ``ADD_ONION`` private keys. Capping it at WARNING keeps keys (and
stem's chatter) out of any handler the CLI installs.
"""

from __future__ import annotations

import logging

import stem
import stem.connection
import stem.control
import stem.response.events
from stem.control import EventType

logging.getLogger("stem").setLevel(logging.WARNING)

__all__ = ["EventType", "stem"]
