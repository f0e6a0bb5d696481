"""An existing node's database upgrades in place: one made by the store of b1e6838 (kept
verbatim in :mod:`tests.unit.legacy.store_b1e6838`), every table filled, including ``meta``,
is opened by the store package and keeps every share's URI, every key, download, trust
entry, ledger total, mirror and release. Opening it again changes nothing; a step that fails
leaves the file as it was; a database from a newer obt is refused, untouched."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from onionshare_bt.errors import StoreError, StoreTooNew
from onionshare_bt.store import SCHEMA_VERSION, LedgerRow, Store
from onionshare_bt.store import migrations
from onionshare_bt.store.core import Database
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.uri import ShareURI, new_token, parse_uri

from .legacy import store_b1e6838 as old


def onion(i: int) -> str:
    return onion_from_pubkey(bytes([i]) * 32)


NODE, SOURCE, MIRROR_ONION = onion(1), onion(2), onion(3)
SHARES = [(f"{i:02x}" * 20, onion(10 + i), new_token()) for i in range(3)]
DOWNLOAD = ("dd" * 20, onion(20), new_token())
NOW = time.time()


def share_row(tid: str, address: str, token: str, open_: int) -> old.TorrentRow:
    uri = str(ShareURI(address, "private", token))
    return old.TorrentRow(id=tid, role="share", name=f"share {tid[:4]}", save_path=f"/s/{tid}",
                          target=f"/s/{tid}", torrent=b"d4:infod4:name1:xee" + tid.encode(),
                          token=token, uri=uri, state="seeding", error=None,
                          resume=b"resume " + tid.encode(), added=NOW + int(tid[:2], 16),
                          completed=None, open=open_)


def fill(path) -> dict:
    """A node's database as b1e6838 wrote it, every table and every meta key filled; returns
    what the new store must find."""
    store = old.Store(path)
    keys = {}
    for n, (tid, address, token) in enumerate(SHARES):
        keys[address] = f"ED25519-V3:share-key-{n}"
        store.add_torrent(share_row(tid, address, token, 0),
                          [old.OnionRow(address, keys[address], tid, "share")])
    store.update_torrent(SHARES[1][0], open=1)
    tid, source_onion, token = DOWNLOAD
    uri = str(ShareURI(source_onion, "private", token))
    store.add_torrent(old.TorrentRow(
        id=tid, role="download", name="a download", save_path="/staging/dd", target="/home/dl",
        torrent=b"d4:infod4:name2:dlee", token=token, uri=uri, state="complete",
        error=None, resume=b"download resume", added=NOW + 100, completed=NOW + 200), [])
    seed = onion(21)
    keys[seed] = "ED25519-V3:seed-key"
    store.add_onion(old.OnionRow(seed, keys[seed], tid, "seed"))
    store.add_tracker(tid, MIRROR_ONION, limit=4)
    store.record_peer(SHARES[0][0], onion(30), 6881, 1234)
    store.trust(SOURCE)
    store.trust(onion(4))
    store.publish(SHARES[0][0], True)
    store.set_meta("node.key", "ED25519-V3:identity-key")
    store.set_meta("node.public_token", "p" * 32)
    store.set_meta("trust.depth", "3")
    store.save_ledger({"ledger.boot": "b00t", "ledger.last_written": 4096,
                       "ledger.relayed": 10_000_000, "ratio.used": 7_000_000},
                      "2026-12-01", 6_000_000)
    store.save_ledger({"ledger.boot": "b00t", "ledger.last_written": 8192,
                       "ledger.relayed": 14_000_000, "ratio.used": 7_500_000},
                      "2026-12-02", 4_000_000)
    store.put_release(old.ReleaseRow("r" * 64, "1.2.3", b"manifest", b"sig", "http://u", SOURCE,
                                     tid, "verified", None, "/releases/1.2.3", NOW))
    store.put_release(old.ReleaseRow("s" * 64, "1.2.4", b"m2", b"s2", "http://v", onion(5),
                                     None, "refused", "bad signature", None, NOW + 1))
    store.add_mirror(old.MirrorRow(SOURCE, MIRROR_ONION, "ED25519-V3:mirror-key", "t" * 32,
                                   "/public/" + "c" * 32, 1, "digest", NOW),
                     [old.MirrorItemRow(SOURCE, "ee" * 20, "item", 10, 1, "http://item",
                                        b"torrent", NOW)])
    store.save_mirror_peers(SOURCE, {"ee" * 20: [(onion(31), 80, 0, 5.0)]})
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'table'")}
    for table in tables:  # every table has something in it
        assert store._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
    store.close()
    return {"keys": keys, "tables": tables}


def dump(path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [*db.iterdump(), f"user_version {db.execute('PRAGMA user_version').fetchone()}"]
    finally:
        db.close()


def test_a_b1e6838_database_is_upgraded_and_keeps_everything(tmp_path):
    path = tmp_path / "state.sqlite3"
    made = fill(path)
    assert len(made["tables"]) == 12  # meta and the eleven others, as b1e6838 had them
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert "meta" not in store.db.tables()
    # every share keeps its token and the parts of its URI, its state and resume data
    for tid, address, token in SHARES:
        row = store.torrents.get(tid)
        uri = parse_uri(row.uri)
        assert (row.role, row.token, uri.onion, uri.kind, uri.token) == (
            "share", token, address, "private", token)
        assert row.resume == b"resume " + tid.encode() and row.state == "seeding"
    assert [store.torrents.get(t).open for t, _, _ in SHARES] == [0, 1, 0]
    download = store.torrents.find_download(str(ShareURI(DOWNLOAD[1], "private", DOWNLOAD[2])))
    assert (download.id, download.target, download.state, download.completed) == (
        DOWNLOAD[0], "/home/dl", "complete", NOW + 200)
    assert [r.id for r in store.torrents.all("share")] == [t for t, _, _ in SHARES]
    # onion keys, the download's other tracker, the saved tracker peers
    assert {o.address: o.key for o in store.onions.all()} == made["keys"]
    assert [o.purpose for o in store.onions.of(DOWNLOAD[0])] == ["seed"]
    assert store.trackers.of(DOWNLOAD[0]) == [MIRROR_ONION]
    assert [p[:3] for p in store.peers.of(SHARES[0][0], max_age=600)] == [(onion(30), 6881,
                                                                            1234)]
    # trust, the public catalogue, and what meta held: typed now
    assert store.trust.all() == [SOURCE, onion(4)] and store.trust.has(SOURCE)
    assert store.catalogue.shares() == {SHARES[0][0]}
    assert [(t, d) for t, _, d in store.catalogue.all()] == [(SHARES[0][0], "")]  # step 4
    assert store.identity.key() == "ED25519-V3:identity-key"
    assert store.identity.public_token() == "p" * 32
    assert store.trust.depth() == 3
    # the ledger's totals and the relayed days
    assert store.ledger.load() == LedgerRow(boot="b00t", last_written=8192,
                                            relayed=14_000_000, used=7_500_000)
    assert (store.ledger.relayed_on("2026-12-01"), store.ledger.relayed_on("2026-12-02")) == (
        6_000_000, 4_000_000)
    # releases and mirrors
    assert [(r.id, r.version, r.state, r.reason, r.torrent_id) for r in store.releases.all()] == [
        ("r" * 64, "1.2.3", "verified", None, DOWNLOAD[0]),
        ("s" * 64, "1.2.4", "refused", "bad signature", None)]
    assert store.releases.get("r" * 64).manifest == b"manifest"
    mirror = store.mirrors.get(SOURCE)
    assert (mirror.address, mirror.key, mirror.follow, mirror.digest) == (
        MIRROR_ONION, "ED25519-V3:mirror-key", 1, "digest")
    assert [i.infohash for i in store.mirrors.items(SOURCE)] == ["ee" * 20]
    assert [p[:3] for p in store.mirrors.peers(SOURCE, "ee" * 20, 600)] == [(onion(31), 80, 0)]
    store.close()


def test_opening_an_upgraded_database_again_changes_nothing(tmp_path):
    path = tmp_path / "state.sqlite3"
    fill(path)
    Store(path).close()
    once = dump(path)
    Store(path).close()
    assert dump(path) == once


def test_an_upgraded_database_has_the_schema_of_a_new_one(tmp_path):
    fill(tmp_path / "old.sqlite3")
    upgraded, new = Store(tmp_path / "old.sqlite3"), Store(tmp_path / "new.sqlite3")

    def schema(store):
        tables = sorted(store.db.tables())
        return {t: [tuple(r) for r in store.db.execute(f"PRAGMA table_info({t})")]
                for t in tables}, sorted(r[0] for r in store.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"))

    assert schema(upgraded) == schema(new)
    assert upgraded.schema_version == new.schema_version == SCHEMA_VERSION


def test_a_new_store_writes_to_an_upgraded_database(tmp_path):
    path = tmp_path / "state.sqlite3"
    fill(path)
    store = Store(path)
    store.trust.set_depth(2)
    store.identity.set_public_token("q" * 32)
    store.ledger.save(LedgerRow("b00t", 9000, 14_000_808, 7_500_000), "2026-12-02", 808)
    store.torrents.remove(SHARES[0][0])  # its onion, peers and catalogue entry go with it
    store.close()
    again = Store(path)
    assert (again.trust.depth(), again.identity.public_token()) == (2, "q" * 32)
    assert again.ledger.relayed_on("2026-12-02") == 4_000_808
    assert again.catalogue.shares() == set() and again.onions.of(SHARES[0][0]) == []
    assert again.peers.of(SHARES[0][0], max_age=600) == []


def test_a_failing_step_leaves_the_database_as_it_was(tmp_path):
    path = tmp_path / "state.sqlite3"
    fill(path)
    before = dump(path)

    def boom(db):
        db.execute("ALTER TABLE torrents DROP COLUMN token")
        raise sqlite3.OperationalError("a step that fails half way")

    db = Database(path)
    with pytest.raises(StoreError, match="half way"):
        migrations.migrate(db, migrations.STEPS + (migrations.Step(4, "boom", boom),))
    db.close()
    assert dump(path) == before  # still b1e6838's: meta, its version, every column
    assert Store(path).torrents.get(SHARES[0][0]).token == SHARES[0][2]


def test_a_database_from_a_newer_obt_is_refused_untouched(tmp_path):
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("CREATE TABLE from_the_future (x)")
    db.commit()
    db.close()
    before = dump(path)
    with pytest.raises(StoreTooNew) as caught:
        Store(path)
    assert f"schema version {SCHEMA_VERSION + 1}" in caught.value.message
    assert caught.value.hint and isinstance(caught.value, StoreError)
    assert dump(path) == before


def test_obt_node_start_on_a_newer_database_says_so_and_exits_1(tmp_path):
    home = tmp_path / "home"
    Store(home / "state.sqlite3").close()
    db = sqlite3.connect(home / "state.sqlite3")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    env = {**os.environ, "OBT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "80"}
    for name in ("OBT_NETWORK", "OBT_TOR"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "onionshare_bt", "node", "start", "--no-relay"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"obt: error: the state database {home / 'state.sqlite3'} "
                                  f"has schema version {SCHEMA_VERSION + 1}; this obt knows "
                                  f"versions up to {SCHEMA_VERSION}"), done.stderr
    assert "obt: hint: Run the newer obt" in done.stderr and "Traceback" not in done.stderr
    db = sqlite3.connect(home / "state.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_a_version_1_database_made_by_b1e6838_shapes_is_brought_up_too(tmp_path):
    """A version-1 database (no ``torrents.open``, and none of the tables later obt added)
    gets every table on the way up."""
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1'), ('trust.depth', '2');
        CREATE TABLE torrents (
            id TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('share', 'download')),
            name TEXT NOT NULL, save_path TEXT NOT NULL, target TEXT NOT NULL,
            torrent BLOB NOT NULL, token TEXT NOT NULL, uri TEXT NOT NULL, state TEXT NOT NULL,
            error TEXT, resume BLOB, added REAL NOT NULL, completed REAL);
        INSERT INTO torrents VALUES ('ab', 'share', 'n', '/x', '/x', x'00', 't', 'u', 'seeding',
                                     NULL, NULL, 1.0, NULL);
    """)
    db.close()
    store = Store(path)
    assert store.torrents.get("ab").open == 0 and store.trust.depth() == 2
    assert store.identity.key() is None and store.ledger.load() == LedgerRow()
    new = Store(tmp_path / "new.sqlite3")
    assert store.db.tables() == new.db.tables()


def test_a_version_3_database_gains_descriptions_and_keeps_its_catalogue(tmp_path):
    """Step 4 on a database made by the obt before it (schema 3): the catalogue keeps its
    entries, each with no description, and takes descriptions from then on."""
    path = tmp_path / "state.sqlite3"
    db = Database(path)
    assert migrations.migrate(db, migrations.STEPS[:2]) == 0  # a new one, made as version 3
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("INSERT INTO catalogue (torrent_id, added) VALUES ('ab', 1.0)")
    assert db.user_version == 3
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION == 4
    assert store.catalogue.all() == [("ab", 1.0, "")]
    store.catalogue.publish("ab", True, "Lisbon trams")
    assert store.catalogue.all() == [("ab", 1.0, "Lisbon trams")]
