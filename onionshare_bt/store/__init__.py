"""The node's state: one SQLite database (WAL) in the node's home, file mode 0600.

:class:`Store` opens it, brings its schema up to date (:mod:`.migrations`) and offers one
object per part's tables:

========================  ===================  ============================================
attribute                 module               tables
========================  ===================  ============================================
``torrents``              :mod:`.torrents`     ``torrents`` (shares and downloads)
``trackers``              :mod:`.torrents`     ``trackers`` (other trackers of a download)
``onions``                :mod:`.onions`       ``onions`` (onion service keys)
``peers``                 :mod:`.peers`        ``tracker_peers`` (live peers for a restart)
``trust``                 :mod:`.trust`        ``trust``, ``trust_settings``
``catalogue``             :mod:`.trust`        ``catalogue`` (the public catalogue)
``identity``              :mod:`.trust`        ``identity`` (identity key, public token)
``ledger``                :mod:`.ledger`       ``ledger``, ``relay_days``
``mirrors``               :mod:`.mirrors`      ``mirrors``, ``mirror_items``, ``mirror_peers``
``releases``              :mod:`.releases`     ``releases``
========================  ===================  ============================================

:mod:`.core` holds the connection, transactions and the schema version. Every change is
one transaction; the store is synchronous (each call is a few small statements, cheap
enough to run on the event loop).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreError
from .core import Database
from .ledger import Ledger, LedgerRow
from .migrations import SCHEMA_VERSION, migrate
from .mirrors import MirrorItemRow, MirrorRow, Mirrors
from .onions import OnionRow, Onions
from .peers import MAX_PEER_AGE, PEER_CAP, PEER_TTL, TrackerPeers
from .releases import ReleaseRow, Releases
from .torrents import TorrentRow, Torrents, Trackers
from .trust import Catalogue, Identity, Trust

__all__ = [
    "MAX_PEER_AGE", "PEER_CAP", "PEER_TTL", "SCHEMA_VERSION", "LedgerRow", "MirrorItemRow",
    "MirrorRow", "OnionRow", "ReleaseRow", "Store", "TorrentRow",
]


class Store:
    """Open (and create, or upgrade) the database at ``path``.

    :raises StoreTooNew: the database was made by a newer obt (it is left untouched)
    :raises StoreError: when the file cannot be opened or is not an obt database
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = Database(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc
        self.onions = Onions(self.db)
        self.torrents = Torrents(self.db, self.onions)
        self.trackers = Trackers(self.db)
        self.peers = TrackerPeers(self.db)
        self.trust = Trust(self.db)
        self.catalogue = Catalogue(self.db)
        self.identity = Identity(self.db)
        self.ledger = Ledger(self.db)
        self.mirrors = Mirrors(self.db)
        self.releases = Releases(self.db)
        try:
            with self.db.transaction():
                migrate(self.db)
                self.peers.forget_stale()
        except StoreError:
            self.db.close()
            raise
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return self.db.user_version

    def close(self) -> None:
        self.db.close()
