"""A swarm entry belongs to the peer_id that announced it: nobody else's announce, nor a
mirror's merged "stopped", removes or overwrites it; merges never evict fresher peers and
stay cheap (a maximal mirror push is measured against a 50 ms budget of loop time)."""

from __future__ import annotations

import json
import secrets
import time
import types

import pytest

from onionshare_bt.mirror import auth
from onionshare_bt.mirror import core as mcore
from onionshare_bt.mirror.origin import Origin
from onionshare_bt.store import Store, TorrentRow
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core
from onionshare_bt.tracker.server import Served, TrackerServer
from onionshare_bt.trust.identity import SigningKey, expand_seed

HASH = b"h" * 20
VICTIM_ID, ATTACKER_ID = b"v" * 20, b"a" * 20


def onion(i: int) -> str:
    return onion_from_pubkey(i.to_bytes(32, "big"))


def ann(i: int, peer_id: bytes = VICTIM_ID, event: str = "", left: int = 7,
        port: int = 80) -> core.Announce:
    return core.Announce(HASH, peer_id, onion(i), port, 0, 0, left, event, numwant=50)


def entry(swarm: core.PeerTable, i: int, now: float):
    return next(((o, p, left) for o, p, left, _ in swarm.entries(HASH, now) if o == onion(i)),
                None)


def test_a_forged_stop_from_another_peer_id_removes_nothing():
    swarm = core.PeerTable(ttl=100)
    assert swarm.record(ann(1), now=0)
    assert not swarm.record(ann(1, ATTACKER_ID, event="stopped"), now=1)
    assert entry(swarm, 1, 2) == (onion(1), 80, 7)
    # positive control: the owner's own stop does remove it
    assert swarm.record(ann(1, event="stopped"), now=3)
    assert entry(swarm, 1, 4) is None


def test_another_peer_id_cannot_overwrite_left_nor_refresh_the_entry():
    swarm = core.PeerTable(ttl=100)
    swarm.record(ann(1, left=7), now=0)
    assert not swarm.record(ann(1, ATTACKER_ID, left=0), now=50)
    assert entry(swarm, 1, 60) == (onion(1), 80, 7)
    assert swarm.peers(HASH, now=101) == []  # not refreshed by the attacker: it expired


def test_an_expired_entry_is_free_for_the_next_announcer():
    swarm = core.PeerTable(ttl=100)
    swarm.record(ann(1), now=0)
    assert swarm.record(ann(1, ATTACKER_ID, left=3), now=101)
    assert entry(swarm, 1, 102) == (onion(1), 80, 3)
    assert not swarm.record(ann(1, event="stopped"), now=103)  # now the old owner is other


def test_an_announce_is_still_answered_when_it_changes_nothing():
    swarm = core.PeerTable(ttl=100)
    swarm.set_fixed(HASH, [(onion(9), 80)])
    swarm.announce(ann(1), now=0)
    assert swarm.announce(ann(1, ATTACKER_ID, event="stopped"), now=1) == [(onion(9), 80)]


def test_negative_left_is_never_recorded():
    swarm = core.PeerTable(ttl=100)
    assert not swarm.record(ann(1, left=-1), now=0)
    assert swarm.size(HASH) == 0
    with pytest.raises(core.AnnounceError):
        core.parse_announce("info_hash=" + "a" * 20 + "&peer_id=" + "b" * 20
                            + f"&ip={onion(1)}.onion&port=80&left=-1")


def test_restored_entries_are_claimed_by_their_first_announcer():
    swarm = core.PeerTable(ttl=100)
    swarm.restore(HASH, [(onion(1), 80, 7, 10.0), (onion(2), 80, -1, 1.0)], now=100)
    assert [o for o, _ in swarm.peers(HASH, now=100)] == [onion(1)]  # left=-1 never restored
    assert swarm.record(ann(1, ATTACKER_ID, left=0), now=101)
    assert not swarm.record(ann(1, VICTIM_ID, event="stopped"), now=102)


def test_a_merged_stop_removes_synced_entries_only():
    swarm = core.PeerTable(ttl=1000)
    swarm.record(ann(1), now=100)  # announced here
    swarm.merge(HASH, [(onion(2), 80, 0, 0.0)], now=100)  # synced from a mirror
    assert swarm.merge(HASH, [(onion(1), 80, -1, 0.0), (onion(2), 80, -1, 0.0)], now=200) == 1
    assert {o for o, _ in swarm.peers(HASH, now=200)} == {onion(1)}


def test_announces_here_do_not_take_over_synced_entries():
    swarm = core.PeerTable(ttl=1000)
    swarm.merge(HASH, [(onion(2), 80, 9, 0.0)], now=100)
    assert not swarm.record(ann(2, ATTACKER_ID, event="stopped"), now=101)
    assert entry(swarm, 2, 102) == (onion(2), 80, 9)


def test_a_merge_refreshes_an_announced_entry_but_keeps_its_owner():
    swarm = core.PeerTable(ttl=1000)
    swarm.record(ann(1, left=7), now=100)
    assert swarm.merge(HASH, [(onion(1), 80, 0, 0.0)], now=150) == 1
    assert entry(swarm, 1, 150) == (onion(1), 80, 0)
    assert not swarm.record(ann(1, ATTACKER_ID, event="stopped"), now=151)
    assert swarm.record(ann(1, event="stopped"), now=152)


def test_merged_values_below_minus_one_are_dropped():
    swarm = core.PeerTable(ttl=1000)
    swarm.merge(HASH, [(onion(1), 80, 0, 0.0)], now=10)
    assert swarm.merge(HASH, [(onion(1), 80, -2, 0.0), (onion(3), 80, -5, 0.0)], now=10) == 0
    assert swarm.size(HASH) == 1


def test_a_merge_never_evicts_a_fresher_peer():
    swarm = core.PeerTable(ttl=1000, max_peers=100)
    for i in range(100):
        swarm.record(ann(i), now=500 + i)  # real peers seen at 500..599
    # a push of 500 entries, all older than every real peer: nothing changes
    stale = [(onion(1000 + i), 80, 0, 600.0) for i in range(500)]  # seen at 400
    assert swarm.merge(HASH, stale, now=1000) == 0
    assert {o for o, _ in swarm.peers(HASH, now=1000)} == {onion(i) for i in range(100)}
    # a push fresher than half of them replaces exactly the stalest half
    fresh = [(onion(2000 + i), 80, 0, 450.0) for i in range(50)]  # seen at 550
    assert swarm.merge(HASH, fresh, now=1000) == 50
    kept = {o for o, _ in swarm.peers(HASH, now=1000)}
    assert kept == {onion(i) for i in range(50, 100)} | {onion(2000 + i) for i in range(50)}


def test_a_merge_keeps_the_newest_of_duplicates_and_the_order_of_expiry():
    swarm = core.PeerTable(ttl=100)
    assert swarm.merge(HASH, [(onion(1), 80, 5, 50.0), (onion(1), 80, 0, 10.0),
                              (onion(2), 80, 0, 90.0)], now=1000) == 2
    assert entry(swarm, 1, 1000) == (onion(1), 80, 0)
    assert swarm.peers(HASH, now=1015) == [(onion(1), 80)]  # onion(2) (seen 910) expired


# -- the maximal push, timed --------------------------------------------------------------------
IH = "ab" * 20
ORIGIN_KEY = SigningKey(expand_seed(b"\x31" * 32))
MIRROR_NODE = SigningKey(expand_seed(b"\x32" * 32))
MIRROR = onion_from_pubkey(b"\x33" * 32)


@pytest.fixture
async def full_origin(tmp_path):
    """An origin whose public share's swarm is full of real peers, on a real store."""
    store = Store(tmp_path / "state.sqlite3")
    store.torrents.add(TorrentRow(id=IH, role="share", name="n", save_path="/x", target="/x",
                                  torrent=b"t", token="t" * 32, uri="http://x", state="seeding",
                                  error=None, resume=None, added=time.time(), completed=None),
                       [])
    store.trust.add(MIRROR_NODE.onion)
    tracker = TrackerServer(interval=60)
    await tracker.start()
    port = await tracker.listen()
    tracker.attach(port, Served(IH, "tok", b"t", (bytes.fromhex(IH),)))
    now = time.monotonic()
    for i in range(tracker.peers.max_peers):
        tracker.peers.record(core.Announce(bytes.fromhex(IH), b"p" * 20, onion(i), 80, 0, 0,
                                           1, "", 0), now)
    origin = Origin(types.SimpleNamespace(
        catalogue=types.SimpleNamespace(shares=lambda: {IH}), trust=store.trust,
        peers=store.peers), tracker)
    origin.onion = ORIGIN_KEY.onion
    yield origin, tracker, store
    await tracker.close()
    store.close()


async def test_a_maximal_push_evicts_no_fresher_peer(full_origin):
    origin, tracker, store = full_origin
    real = {o for o, *_ in tracker.entries(IH)}
    for round_ in range(3):
        peers = [mcore.Update(IH, onion(10_000 + round_ * 1000 + i), 80, 0, 1.0)
                 for i in range(mcore.MAX_PUSH)]
        body = mcore.encode_request(MIRROR, origin.feed.epoch, origin.feed.seq, 0.0, peers)
        header = auth.credential(MIRROR_NODE, ORIGIN_KEY.onion, MIRROR, body,
                                 int(time.time()), secrets.token_hex(16))
        reply = await origin.call(body, header)
        assert reply["registered"] is True and json.dumps(reply)
    # the pushed peers were seen 1 s ago: older than every real announce, so none evicted
    assert {o for o, *_ in tracker.entries(IH)} == real


async def test_a_fresh_maximal_push_is_merged_and_saved_in_one_go(full_origin):
    origin, tracker, store = full_origin
    peers = [mcore.Update(IH, onion(20_000 + i), 80, 0, 0.0) for i in range(mcore.MAX_PUSH)]
    time.sleep(0.01)  # the pushed peers are seen after every real announce
    body = mcore.encode_request(MIRROR, origin.feed.epoch, origin.feed.seq, 0.0, peers)
    header = auth.credential(MIRROR_NODE, ORIGIN_KEY.onion, MIRROR, body, int(time.time()),
                             secrets.token_hex(16))
    await origin.call(body, header)
    assert tracker.peers.size(bytes.fromhex(IH)) == tracker.peers.max_peers
    assert {onion(20_000 + i) for i in range(mcore.MAX_PUSH)} <= {
        o for o, *_ in tracker.entries(IH)}
    assert len(store.peers.of(IH, max_age=600)) == mcore.MAX_PUSH
    assert origin.feed.seq == mcore.MAX_PUSH
