"""The mirror part's tables: ``mirrors`` (the nodes this node mirrors, with the key of the
onion serving each mirror), ``mirror_items`` (the torrents copied from each source's
catalogue) and ``mirror_peers`` (each mirror's peer lists, kept for a restart). Items and
peers go with their mirror (``ON DELETE CASCADE``)."""

from __future__ import annotations

import dataclasses
import time

from ..errors import StoreError
from .core import Database, columns, insert, select


@dataclasses.dataclass(frozen=True)
class MirrorRow:
    source: str
    address: str
    key: str = dataclasses.field(repr=False)
    token: str = dataclasses.field(repr=False)
    catalogue: str = dataclasses.field(repr=False)
    follow: int = 0
    digest: str = ""
    added: float = 0.0


@dataclasses.dataclass(frozen=True)
class MirrorItemRow:
    source: str
    infohash: str
    name: str
    size: int
    files: int
    uri: str
    torrent: bytes = dataclasses.field(repr=False)
    added: float = 0.0


_MIRROR = columns(MirrorRow)
_ITEM = columns(MirrorItemRow)
_PEER_INSERT = ("INSERT OR REPLACE INTO mirror_peers "
                "(source, infohash, onion, port, left_bytes, seen) "
                "VALUES (:source, :infohash, :onion, :port, :left_bytes, :seen)")
#: what :meth:`Mirrors.update` may change
UPDATABLE = frozenset({"follow", "digest"})


class Mirrors:
    """The ``mirrors``, ``mirror_items`` and ``mirror_peers`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- mirrors ------------------------------------------------------------------------
    def add(self, row: MirrorRow, items: list[MirrorItemRow]) -> None:
        """Insert a mirror and its items in one transaction."""
        with self._db.transaction():
            self._db.execute(insert("mirrors", _MIRROR), dataclasses.asdict(row))
            for item in items:
                self._db.execute(insert("mirror_items", _ITEM), dataclasses.asdict(item))

    def all(self) -> list[MirrorRow]:
        return [MirrorRow(**dict(r)) for r in
                self._db.execute(f"{select('mirrors', _MIRROR)} ORDER BY added")]

    def get(self, source: str) -> MirrorRow | None:
        row = self._db.execute(f"{select('mirrors', _MIRROR)} WHERE source = ?",
                               (source,)).fetchone()
        return MirrorRow(**dict(row)) if row else None

    def update(self, source: str, **changes) -> None:
        """Change a mirror's :data:`UPDATABLE` columns."""
        if not changes or set(changes) - UPDATABLE:
            raise StoreError(f"bad update of mirror fields {sorted(changes)}")
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        with self._db.transaction():
            self._db.execute(f"UPDATE mirrors SET {sets} WHERE source = :source",
                             {**changes, "source": source})

    def remove(self, source: str) -> None:
        """Delete a mirror with its items and peers."""
        with self._db.transaction():
            self._db.execute("DELETE FROM mirrors WHERE source = ?", (source,))

    # -- items --------------------------------------------------------------------------
    def items(self, source: str) -> list[MirrorItemRow]:
        return [MirrorItemRow(**dict(r)) for r in self._db.execute(
            f"{select('mirror_items', _ITEM)} WHERE source = ? ORDER BY added", (source,))]

    def add_item(self, item: MirrorItemRow) -> None:
        with self._db.transaction():
            self._db.execute(insert("mirror_items", _ITEM, replace=True),
                             dataclasses.asdict(item))

    def remove_item(self, source: str, infohash: str) -> None:
        """Delete an item and its saved peers."""
        with self._db.transaction():
            for table in ("mirror_items", "mirror_peers"):
                self._db.execute(f"DELETE FROM {table} WHERE source = ? AND infohash = ?",
                                 (source, infohash))

    # -- peers --------------------------------------------------------------------------
    def save_peers(self, source: str,
                   peers: dict[str, list[tuple[str, int, int, float]]]) -> None:
        """Replace a mirror's saved peers: ``{infohash: [(onion, port, left, age)]}``."""
        now = time.time()
        with self._db.transaction():
            self._db.execute("DELETE FROM mirror_peers WHERE source = ?", (source,))
            self._db.executemany(_PEER_INSERT, [
                {"source": source, "infohash": ih, "onion": o, "port": p, "left_bytes": left,
                 "seen": now - age}
                for ih, entries in peers.items() for o, p, left, age in entries])

    def peers(self, source: str, infohash: str, max_age: float
              ) -> list[tuple[str, int, int, float]]:
        """An item's peers seen within ``max_age`` seconds: ``(onion, port, left, age)``."""
        now = time.time()
        rows = self._db.execute(
            "SELECT onion, port, left_bytes, seen FROM mirror_peers "
            "WHERE source = ? AND infohash = ? AND seen >= ?", (source, infohash, now - max_age))
        return [(r["onion"], r["port"], r["left_bytes"], now - r["seen"]) for r in rows]
