"""The swarm's tables: ``torrents`` (this node's shares and downloads) and ``trackers``
(other trackers a download learnt of, its share's mirrors).

A share is *open* when its sharer let standard BitTorrent clients in (see
:mod:`onionshare_bt.tracker.core`). A torrent's onion keys are in :mod:`.onions` and its
tracker's saved peers in :mod:`.peers`; both go with the torrent (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import dataclasses
import time

from ..errors import StoreError
from .core import Database, columns, insert, select
from .onions import OnionRow, Onions


@dataclasses.dataclass(frozen=True)
class TorrentRow:
    id: str
    role: str
    name: str
    save_path: str
    target: str
    torrent: bytes
    token: str
    uri: str
    state: str
    error: str | None
    resume: bytes | None
    added: float
    completed: float | None
    #: a share that admits standard clients (announces without an onion); 0 or 1
    open: int = 0


_COLUMNS = columns(TorrentRow)
_SELECT = select("torrents", _COLUMNS)
#: what :meth:`Torrents.update` may change
UPDATABLE = frozenset({"state", "error", "resume", "save_path", "completed", "name", "open"})


class Torrents:
    """The ``torrents`` table."""

    def __init__(self, db: Database, onions: Onions) -> None:
        self._db, self._onions = db, onions

    def add(self, row: TorrentRow, onions: list[OnionRow]) -> None:
        """Insert a torrent and its onion keys in one transaction."""
        with self._db.transaction():
            self._db.execute(insert("torrents", _COLUMNS), dataclasses.asdict(row))
            for onion in onions:
                self._onions.add(onion)

    def update(self, torrent_id: str, **changes) -> None:
        """Change some of a torrent's :data:`UPDATABLE` columns."""
        if not changes or set(changes) - UPDATABLE:
            raise StoreError(f"bad update of torrent fields {sorted(changes)}")
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        with self._db.transaction():
            self._db.execute(f"UPDATE torrents SET {sets} WHERE id = :torrent_id",
                             {**changes, "torrent_id": torrent_id})

    def remove(self, torrent_id: str) -> None:
        """Delete a torrent with its onions, saved peers, trackers and catalogue entry."""
        with self._db.transaction():
            self._db.execute("DELETE FROM torrents WHERE id = ?", (torrent_id,))

    def get(self, torrent_id: str) -> TorrentRow | None:
        row = self._db.execute(f"{_SELECT} WHERE id = ?", (torrent_id,)).fetchone()
        return TorrentRow(**dict(row)) if row else None

    def all(self, role: str | None = None) -> list[TorrentRow]:
        """Every torrent (of ``role``, "share" or "download"), oldest first."""
        if role:
            rows = self._db.execute(f"{_SELECT} WHERE role = ? ORDER BY added", (role,))
        else:
            rows = self._db.execute(f"{_SELECT} ORDER BY added")
        return [TorrentRow(**dict(r)) for r in rows]

    def find_download(self, uri: str) -> TorrentRow | None:
        row = self._db.execute(f"{_SELECT} WHERE role = 'download' AND uri = ?",
                               (uri,)).fetchone()
        return TorrentRow(**dict(row)) if row else None


class Trackers:
    """The ``trackers`` table: other trackers of a download (mirrors of its share)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def of(self, torrent_id: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT onion FROM trackers WHERE torrent_id = ? ORDER BY added", (torrent_id,))]

    def add(self, torrent_id: str, onion: str, limit: int) -> bool:
        """Remember another tracker of a download (at most ``limit``); True if new."""
        with self._db.transaction():
            count = self._db.execute("SELECT COUNT(*) FROM trackers WHERE torrent_id = ?",
                                     (torrent_id,)).fetchone()[0]
            if count >= limit:
                return False
            cur = self._db.execute(
                "INSERT OR IGNORE INTO trackers (torrent_id, onion, added) "
                "VALUES (:torrent_id, :onion, :added)",
                {"torrent_id": torrent_id, "onion": onion, "added": time.time()})
        return cur.rowcount == 1
