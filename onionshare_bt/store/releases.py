"""The release part's table: ``releases`` (signed release manifests this node published,
fetched or refused, with where each is held)."""

from __future__ import annotations

import dataclasses

from .core import Database, columns, insert, select


@dataclasses.dataclass(frozen=True)
class ReleaseRow:
    #: sha256 of the signed manifest, signature and URI offered
    id: str
    version: str
    manifest: bytes = dataclasses.field(repr=False)
    signature: bytes = dataclasses.field(repr=False)
    uri: str = ""
    #: the node that offered it ("" for this node's own publish)
    source: str = ""
    torrent_id: str | None = None
    #: "fetching", "verified" or "refused"
    state: str = "fetching"
    reason: str | None = None
    path: str | None = None
    added: float = 0.0


_COLUMNS = columns(ReleaseRow)
_SELECT = select("releases", _COLUMNS)


class Releases:
    """The ``releases`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, row: ReleaseRow) -> None:
        """Insert a release, or replace the one with its id."""
        with self._db.transaction():
            self._db.execute(insert("releases", _COLUMNS, replace=True),
                             dataclasses.asdict(row))

    def all(self) -> list[ReleaseRow]:
        return [ReleaseRow(**dict(r)) for r in self._db.execute(f"{_SELECT} ORDER BY added")]

    def get(self, release_id: str) -> ReleaseRow | None:
        row = self._db.execute(f"{_SELECT} WHERE id = ?", (release_id,)).fetchone()
        return ReleaseRow(**dict(row)) if row else None
