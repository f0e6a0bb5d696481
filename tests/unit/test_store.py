"""The state store: files, transactions, tracker peers surviving a restart."""

from __future__ import annotations

import time

import pytest

from onionshare_bt.errors import StoreError
from onionshare_bt.store import OnionRow, Store, TorrentRow
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker.core import PeerTable


def row(tid: str = "ab" * 20) -> TorrentRow:
    return TorrentRow(id=tid, role="share", name="n", save_path="/x", target="/x",
                      torrent=b"d4:infodee", token="t" * 32, uri="http://x", state="seeding",
                      error=None, resume=None, added=time.time(), completed=None)


def test_files_are_private_and_rows_round_trip(tmp_path):
    store = Store(tmp_path / "home" / "state.sqlite3")
    store.torrents.add(row(), [OnionRow("a" * 56, "ED25519-V3:secret", "ab" * 20, "share")])
    assert (tmp_path / "home" / "state.sqlite3").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    store.close()
    again = Store(tmp_path / "home" / "state.sqlite3")
    assert again.torrents.get("ab" * 20).token == "t" * 32
    assert again.onions.of("ab" * 20)[0].key == "ED25519-V3:secret"
    assert "secret" not in repr(again.onions.all()[0])  # keys never reach a repr (logs)


def test_a_failed_insert_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.torrents.add(row(), [])
    with pytest.raises(StoreError):  # same onion twice: the whole insert rolls back
        store.torrents.add(row("cd" * 20), [OnionRow("b" * 56, "k", "cd" * 20, "share")] * 2)
    assert store.torrents.get("cd" * 20) is None and store.onions.all() == []


def test_tracker_peers_survive_a_restart_into_a_fresh_swarm(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.torrents.add(row(), [])
    peer_a, peer_b = onion_from_pubkey(b"\x01" * 32), onion_from_pubkey(b"\x02" * 32)
    store.peers.record("ab" * 20, peer_a, 6881, 100)
    store.peers.record("ab" * 20, peer_b, 6881, 0)
    store.peers.record("ab" * 20, peer_b, 6881, None)  # "stopped" forgets it
    saved = store.peers.of("ab" * 20, max_age=600)
    assert [(o, p, left) for o, p, left, _ in saved] == [(peer_a, 6881, 100)]
    swarm = PeerTable(ttl=600)
    swarm.restore(b"h" * 20, saved, now=1000.0)
    assert swarm.peers(b"h" * 20, now=1000.0) == [(peer_a, 6881)]
    assert swarm.peers(b"h" * 20, now=1000.0 + 700) == []  # and they still expire
    store.torrents.remove("ab" * 20)
    assert store.peers.of("ab" * 20, max_age=600) == []


def test_public_shares_are_published_shares_only(tmp_path):
    import dataclasses

    store = Store(tmp_path / "state.sqlite3")
    share, download = row("ab" * 20), dataclasses.replace(row("cd" * 20), role="download")
    for r in (share, download, row("ef" * 20)):
        store.torrents.add(r, [])
    store.catalogue.publish(share.id, True)
    store.catalogue.publish(download.id, True)
    assert store.catalogue.shares() == {share.id}
    store.catalogue.publish(share.id, False)
    assert store.catalogue.shares() == set()


def test_ten_thousand_announces_leave_at_most_the_cap_and_no_expired_rows(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.torrents.add(row(), [])
    store.torrents.add(row("cd" * 20), [])
    now = 1_000_000.0
    # an old swarm of another torrent: expired long before the flood starts
    for i in range(50):
        store.peers.record("cd" * 20, onion_from_pubkey(bytes([1, i]) + b"\x00" * 30), 80, 0,
                           ttl=210, cap=1000, now=now - 10_000)
    assert store.peers.count() == 50
    for i in range(10_000):
        store.peers.record("ab" * 20, onion_from_pubkey(i.to_bytes(32, "big")), 6881, 1,
                           ttl=210, cap=1000, now=now + i * 0.01)
    rows = store.db.execute("SELECT onion, seen FROM tracker_peers").fetchall()
    assert len(rows) == store.peers.count() == 1000  # the cap, and nothing of "cd" left
    newest = {onion_from_pubkey(i.to_bytes(32, "big")) for i in range(9000, 10_000)}
    assert {r[0] for r in rows} == newest  # the most recent announces are what is kept


def test_expired_peers_are_deleted_on_the_next_write_of_any_torrent(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.torrents.add(row(), [])
    store.torrents.add(row("cd" * 20), [])
    peer_a, peer_b = onion_from_pubkey(b"\x01" * 32), onion_from_pubkey(b"\x02" * 32)
    store.peers.record("ab" * 20, peer_a, 80, 0, ttl=100, now=1000.0)
    store.peers.record("ab" * 20, peer_b, 80, 0, ttl=100, now=1050.0)
    assert store.peers.count() == 2
    store.peers.record("cd" * 20, peer_a, 80, 0, ttl=100, now=1120.0)  # peer_a (1000) expired
    left = store.db.execute("SELECT torrent_id, onion FROM tracker_peers").fetchall()
    assert sorted(map(tuple, left)) == sorted([("ab" * 20, peer_b), ("cd" * 20, peer_a)])
    # a batch with stops prunes too, and the default limits apply without arguments
    assert store.peers.ttl > 0 and store.peers.cap >= 1
    store.peers.record_many("ab" * 20, [(peer_b, 80, None)], now=1121.0)
    assert store.peers.count() == 1


def test_peers_older_than_a_day_are_gone_when_the_store_opens(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.torrents.add(row(), [])
    store.peers.record("ab" * 20, onion_from_pubkey(b"\x01" * 32), 80, 0, ttl=10**9,
                       now=time.time() - 2 * 86400)
    assert store.peers.count() == 1
    store.close()
    assert Store(tmp_path / "s.sqlite3").peers.count() == 0


def test_is_trusted(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    onion = onion_from_pubkey(b"\x05" * 32)
    assert not store.trust.has(onion)
    store.trust.add(onion)
    assert store.trust.has(onion) and not store.trust.has(onion_from_pubkey(b"\x06" * 32))
