"""The ``tracker_peers`` table: the live peers of this node's trackers that a restart needs
to give its swarms back (see :meth:`onionshare_bt.tracker.core.PeerTable.restore`).

It holds no history: every write prunes rows older than the swarm's expiry (of every
torrent) and keeps each torrent's most recent :attr:`TrackerPeers.cap` rows; rows older than
a day are deleted when the store opens.
"""

from __future__ import annotations

import time

from .core import Database

#: tracker peers older than this are deleted (the swarm's expiry at the default announce
#: interval: 3 * 60 + 30 s); the node can set :attr:`TrackerPeers.ttl` to its tracker's
PEER_TTL = 210.0
#: tracker peers kept per torrent (the tracker's default max peers)
PEER_CAP = 1000
#: saved tracker peers older than this are deleted when the store opens
MAX_PEER_AGE = 86400.0

_INSERT = ("INSERT OR REPLACE INTO tracker_peers (torrent_id, onion, port, left_bytes, seen) "
           "VALUES (:torrent_id, :onion, :port, :left_bytes, :seen)")


class TrackerPeers:
    """The ``tracker_peers`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        #: saved tracker peers expire after this many seconds (see :meth:`record_many`)
        self.ttl = PEER_TTL
        #: saved tracker peers kept per torrent
        self.cap = PEER_CAP

    def forget_stale(self, now: float | None = None) -> None:
        """Delete what is older than :data:`MAX_PEER_AGE` (no swarm outlives a day of
        silence; run when the store opens)."""
        now = time.time() if now is None else now
        with self._db.transaction():
            self._db.execute("DELETE FROM tracker_peers WHERE seen < ?", (now - MAX_PEER_AGE,))

    def record(self, torrent_id: str, onion: str, port: int, left: int | None, *,
               ttl: float | None = None, cap: int | None = None,
               now: float | None = None) -> None:
        """Remember a peer's announce; ``left=None`` (a "stopped" event) forgets it.

        Only what a restart needs is kept (see :meth:`record_many`).
        """
        self.record_many(torrent_id, [(onion, port, left)], ttl=ttl, cap=cap, now=now)

    def record_many(self, torrent_id: str, peers: list[tuple[str, int, int | None]], *,
                    ttl: float | None = None, cap: int | None = None,
                    now: float | None = None) -> None:
        """Remember several peers of one torrent in one transaction, ``(onion, port, left)``
        each (``left=None`` forgets the peer), and prune.

        Rows older than ``ttl`` (the swarm's expiry) are deleted, of every torrent, and each
        torrent keeps its ``cap`` most recent rows (the tracker's max peers). Both default to
        :attr:`ttl` and :attr:`cap`.

        :param now: wall-clock seconds (injectable for tests)
        """
        ttl = self.ttl if ttl is None else ttl
        cap = self.cap if cap is None else cap
        now = time.time() if now is None else now
        gone = [{"torrent_id": torrent_id, "onion": o, "port": p}
                for o, p, left in peers if left is None]
        kept = [{"torrent_id": torrent_id, "onion": o, "port": p, "left_bytes": left,
                 "seen": now} for o, p, left in peers if left is not None]
        with self._db.transaction():
            self._db.executemany(
                "DELETE FROM tracker_peers "
                "WHERE torrent_id = :torrent_id AND onion = :onion AND port = :port", gone)
            self._db.executemany(_INSERT, kept)
            self._db.execute("DELETE FROM tracker_peers WHERE seen < ?", (now - ttl,))
            if kept:
                self._db.execute(
                    "DELETE FROM tracker_peers WHERE rowid IN (SELECT rowid FROM tracker_peers"
                    " WHERE torrent_id = ? ORDER BY seen DESC LIMIT -1 OFFSET ?)",
                    (torrent_id, cap))

    def of(self, torrent_id: str, max_age: float) -> list[tuple[str, int, int, float]]:
        """Peers seen within ``max_age`` seconds: ``(onion, port, left, age)``."""
        now = time.time()
        rows = self._db.execute(
            "SELECT onion, port, left_bytes, seen FROM tracker_peers "
            "WHERE torrent_id = ? AND seen >= ?", (torrent_id, now - max_age))
        return [(r["onion"], r["port"], r["left_bytes"], now - r["seen"]) for r in rows]

    def count(self) -> int:
        """How many tracker peers are saved, over every torrent."""
        return self._db.execute("SELECT COUNT(*) FROM tracker_peers").fetchone()[0]
