"""The store's core: transactions that nest and roll back whole, the schema version kept in
the file, named columns, and every row dataclass matching its table."""

from __future__ import annotations

import dataclasses

import pytest

from onionshare_bt.errors import StoreError
from onionshare_bt.store import (SCHEMA_VERSION, LedgerRow, MirrorItemRow, MirrorRow, OnionRow,
                                 ReleaseRow, Store, TorrentRow)
from onionshare_bt.store.core import Database, insert


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "s.sqlite3")
    database.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    yield database
    database.close()


def rows(db) -> list[tuple]:
    return [tuple(r) for r in db.execute("SELECT a, b FROM t ORDER BY a")]


def test_a_nested_transaction_joins_the_outer_one_and_rolls_back_with_it(db):
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.execute(insert("t", ("a", "b")), {"a": 1, "b": "x"})
            with db.transaction():  # joins: nothing is committed here
                db.execute(insert("t", ("a", "b")), {"a": 2, "b": "y"})
            raise RuntimeError("after the inner block")
    assert rows(db) == []
    with db.transaction():
        with db.transaction():
            db.execute(insert("t", ("a", "b")), {"a": 3, "b": "z"})
    assert rows(db) == [(3, "z")]


def test_an_sqlite_error_rolls_back_and_leaves_as_a_store_error(db):
    with pytest.raises(StoreError, match="UNIQUE"):
        with db.transaction():
            db.execute(insert("t", ("a", "b")), {"a": 1, "b": "x"})
            db.execute(insert("t", ("a", "b")), {"a": 1, "b": "again"})
    assert rows(db) == []
    with db.transaction():  # the connection is usable again
        db.execute(insert("t", ("a", "b"), replace=True), {"a": 1, "b": "x"})
    assert rows(db) == [(1, "x")]


def test_the_version_is_part_of_the_transaction(db):
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.user_version = 42
            raise RuntimeError
    assert db.user_version == 0


def test_insert_names_every_column():
    assert insert("t", ("a", "b")) == "INSERT INTO t (a, b) VALUES (:a, :b)"


@pytest.mark.parametrize("row_class, table", [
    (TorrentRow, "torrents"), (OnionRow, "onions"), (ReleaseRow, "releases"),
    (MirrorRow, "mirrors"), (MirrorItemRow, "mirror_items")])
def test_each_row_dataclass_has_its_tables_columns(tmp_path, row_class, table):
    store = Store(tmp_path / "s.sqlite3")
    assert [f.name for f in dataclasses.fields(row_class)] == store.db.columns(table)


def test_the_ledger_row_has_the_ledger_tables_columns(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    assert ["id"] + [f.name for f in dataclasses.fields(LedgerRow)] == store.db.columns("ledger")


def test_a_new_database_is_at_the_current_version_without_meta(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    assert store.schema_version == SCHEMA_VERSION
    assert "meta" not in store.db.tables()


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    (tmp_path / "s.sqlite3").write_bytes(b"not a database, but long enough to look " * 4)
    with pytest.raises(StoreError, match="cannot open the state database"):
        Store(tmp_path / "s.sqlite3")


def test_two_stores_on_one_file_see_each_others_writes(tmp_path):
    one, two = Store(tmp_path / "s.sqlite3"), Store(tmp_path / "s.sqlite3")
    one.trust.set_depth(4)
    assert two.trust.depth() == 4
