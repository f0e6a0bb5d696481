"""The ``onions`` table: the keys of the onion services that serve this node's shares and
seed its downloads. They never leave this file and never reach a log (nor a ``repr``)."""

from __future__ import annotations

import dataclasses

from .core import Database, columns, insert, select


@dataclasses.dataclass(frozen=True)
class OnionRow:
    address: str
    key: str = dataclasses.field(repr=False)
    torrent_id: str
    #: "share" (the share's own onion) or "seed" (a download seeding back)
    purpose: str


_COLUMNS = columns(OnionRow)
_SELECT = select("onions", _COLUMNS)


class Onions:
    """The ``onions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[OnionRow]:
        return [OnionRow(**dict(r)) for r in self._db.execute(_SELECT)]

    def of(self, torrent_id: str) -> list[OnionRow]:
        return [OnionRow(**dict(r)) for r in self._db.execute(
            f"{_SELECT} WHERE torrent_id = ?", (torrent_id,))]

    def add(self, onion: OnionRow) -> None:
        with self._db.transaction():
            self._db.execute(insert("onions", _COLUMNS), dataclasses.asdict(onion))

    def remove(self, address: str) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM onions WHERE address = ?", (address,))
