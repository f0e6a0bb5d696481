"""The trust part's tables: ``trust`` (the nodes this node trusts) with ``trust_settings``
(how far the trust walk goes), ``catalogue`` (the shares in the public catalogue) and
``identity`` (the identity onion's key, which never leaves this file, and the public
catalogue's token). The settings are one typed row each."""

from __future__ import annotations

import time

from .core import Database


class Trust:
    """The ``trust`` and ``trust_settings`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[str]:
        """The trusted onions (56 characters, no ".onion"), oldest first."""
        return [r[0] for r in self._db.execute("SELECT onion FROM trust ORDER BY added")]

    def has(self, onion: str) -> bool:
        return self._db.execute("SELECT 1 FROM trust WHERE onion = ?",
                                (onion,)).fetchone() is not None

    def add(self, onion: str) -> bool:
        """Trust ``onion``; False if it was trusted already."""
        with self._db.transaction():
            cur = self._db.execute("INSERT OR IGNORE INTO trust (onion, added) "
                                   "VALUES (:onion, :added)",
                                   {"onion": onion, "added": time.time()})
        return cur.rowcount == 1

    def remove(self, onion: str) -> bool:
        """Trust ``onion`` no more; False if it was not trusted."""
        with self._db.transaction():
            cur = self._db.execute("DELETE FROM trust WHERE onion = ?", (onion,))
        return cur.rowcount == 1

    def depth(self) -> int:
        """How many hops the trust walk goes (1 until set)."""
        row = self._db.execute("SELECT depth FROM trust_settings WHERE id = 1").fetchone()
        return int(row[0]) if row else 1

    def set_depth(self, depth: int) -> None:
        with self._db.transaction():
            self._db.execute("INSERT INTO trust_settings (id, depth) VALUES (1, :depth) "
                             "ON CONFLICT (id) DO UPDATE SET depth = excluded.depth",
                             {"depth": int(depth)})


class Catalogue:
    """The ``catalogue`` table: this node's shares in its public catalogue."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[tuple[str, float, str]]:
        """``(torrent_id, added, description)`` of every published torrent, oldest first."""
        return [(r[0], r[1], r[2]) for r in self._db.execute(
            "SELECT torrent_id, added, description FROM catalogue ORDER BY added")]

    def shares(self) -> set[str]:
        """Ids of the shares in the public catalogue (one query: it runs on every announce)."""
        return {r[0] for r in self._db.execute(
            "SELECT c.torrent_id FROM catalogue c JOIN torrents t ON t.id = c.torrent_id "
            "WHERE t.role = 'share'")}

    def publish(self, torrent_id: str, public: bool, description: str | None = None) -> None:
        """Put a torrent in the public catalogue (``public``) or take it out.

        :param description: its text in the catalogue (None: as it was, or none)
        """
        with self._db.transaction():
            if public:
                self._db.execute("INSERT OR IGNORE INTO catalogue (torrent_id, added) "
                                 "VALUES (:torrent_id, :added)",
                                 {"torrent_id": torrent_id, "added": time.time()})
                if description is not None:
                    self._db.execute("UPDATE catalogue SET description = :description "
                                     "WHERE torrent_id = :torrent_id",
                                     {"torrent_id": torrent_id, "description": description})
            else:
                self._db.execute("DELETE FROM catalogue WHERE torrent_id = ?", (torrent_id,))


class Identity:
    """The ``identity`` row: the identity onion's key and the public catalogue's token."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _get(self, column: str) -> str | None:
        row = self._db.execute(f"SELECT {column} FROM identity WHERE id = 1").fetchone()
        return row[0] if row and row[0] else None

    def _set(self, column: str, value: str) -> None:
        with self._db.transaction():
            self._db.execute(f"INSERT INTO identity (id, {column}) VALUES (1, :value) "
                             f"ON CONFLICT (id) DO UPDATE SET {column} = excluded.{column}",
                             {"value": value})

    def key(self) -> str | None:
        """The identity onion's key (tor's ``ED25519-V3:…``), None until one is made."""
        return self._get("key")

    def set_key(self, key: str) -> None:
        self._set("key", key)

    def public_token(self) -> str | None:
        """The public catalogue's token, None until one is made."""
        return self._get("public_token")

    def set_public_token(self, token: str) -> None:
        self._set("public_token", token)
