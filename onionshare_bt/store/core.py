"""The store's core: the SQLite connection (WAL, foreign keys, file mode 0600), transactions
and the schema's version, which :mod:`.migrations` brings up to date when the store opens.

It owns no table of its own. Every change is one transaction (:meth:`Database.transaction`,
which nests: a table module calling another inside its own transaction joins it). The store
is synchronous: each call is a few small statements, cheap enough to run on the event loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Iterator

from ..errors import StoreError


class Database:
    """One open SQLite database, in WAL mode with foreign keys on.

    :raises sqlite3.Error: when the file cannot be opened (the :class:`Store` translates it)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.execute("PRAGMA busy_timeout=5000")
        self._depth = 0

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows) -> sqlite3.Cursor:
        return self.connection.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception; an SQLite error
        leaves as :class:`StoreError`. Inside another transaction it joins that one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.connection.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException as exc:
            self._depth = 0
            self.connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"state database error: {exc}") from exc
            raise
        self._depth = 0
        self.connection.execute("COMMIT")

    @property
    def user_version(self) -> int:
        return self.connection.execute("PRAGMA user_version").fetchone()[0]

    @user_version.setter
    def user_version(self, version: int) -> None:
        self.connection.execute(f"PRAGMA user_version = {int(version)}")

    def tables(self) -> set[str]:
        return {r[0] for r in self.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.connection.execute(f"PRAGMA table_info({table})")]

    def close(self) -> None:
        self.connection.close()


def columns(row_class) -> tuple[str, ...]:
    """The column names of a row dataclass (its fields, in order)."""
    return tuple(f.name for f in dataclasses.fields(row_class))


def insert(table: str, names: tuple[str, ...], *, replace: bool = False) -> str:
    """``INSERT INTO table (a, b) VALUES (:a, :b)``: named columns and named parameters."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return (f"{verb} INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)})")


def select(table: str, names: tuple[str, ...]) -> str:
    """``SELECT a, b FROM table``: the row dataclass's columns, by name."""
    return f"SELECT {', '.join(names)} FROM {table}"
