"""Mirror sync: Swarm.merge/entries, the tracker's ``x-obt-trackers`` key, the sync
messages and change feed (mirror.core), and the origin's sync endpoint (mirror.origin)."""

from __future__ import annotations

import asyncio
import json
import time
import types

import bencodepy
import pytest

from onionshare_bt.errors import MalformedReply
from onionshare_bt.mirror import core as mcore
from onionshare_bt.mirror.origin import Origin
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core as tcore
from onionshare_bt.tracker.server import Served, TrackerServer

HASH = b"h" * 20
IH = "ab" * 20  # a 40-hex infohash
IH2 = "cd" * 20


def onion(i: int) -> str:
    return onion_from_pubkey(i.to_bytes(32, "big"))


SEED = onion_from_pubkey(b"\xee" * 32)
MIRROR = onion_from_pubkey(b"\xaa" * 32)
OTHER_MIRROR = onion_from_pubkey(b"\xbb" * 32)
#: the trusted identity onions whose credentials register MIRROR and OTHER_MIRROR
NODE = onion_from_pubkey(b"\xa1" * 32)
OTHER_NODE = onion_from_pubkey(b"\xb1" * 32)


def keys(peers) -> set[tuple[str, int]]:
    return {(o, p) for o, p, *_ in peers}


# -- 1. Swarm.merge / Swarm.entries ---------------------------------------------------------
def test_merge_newer_entry_replaces_older():
    swarm = tcore.PeerTable(ttl=1000)
    assert swarm.merge(HASH, [(onion(1), 80, 5, 100.0)], now=1000) == 1
    assert swarm.merge(HASH, [(onion(1), 80, 0, 10.0)], now=1000) == 1
    assert swarm.entries(HASH, now=1000) == [(onion(1), 80, 0, 10.0)]


def test_merge_older_entry_never_overwrites_fresher():
    swarm = tcore.PeerTable(ttl=1000)
    swarm.merge(HASH, [(onion(1), 80, 0, 10.0)], now=1000)
    assert swarm.merge(HASH, [(onion(1), 80, 7, 50.0)], now=1000) == 0
    assert swarm.entries(HASH, now=1000) == [(onion(1), 80, 0, 10.0)]
    # an announce seen here (age 0) is fresher than any merged entry with an age
    swarm.announce(tcore.Announce(HASH, b"p" * 20, onion(2), 81, 0, 0, 3, "", 0), now=1000)
    assert swarm.merge(HASH, [(onion(2), 81, 9, 1.0)], now=1000) == 0
    assert (onion(2), 81, 3, 0.0) in swarm.entries(HASH, now=1000)


def test_merge_stop_removes_and_unknown_stop_changes_nothing():
    swarm = tcore.PeerTable(ttl=1000)
    swarm.merge(HASH, [(onion(1), 80, 0, 0.0), (onion(2), 80, 0, 0.0)], now=10)
    assert swarm.merge(HASH, [(onion(1), 80, -1, 0.0)], now=10) == 1
    assert keys(swarm.entries(HASH, now=10)) == {(onion(2), 80)}
    assert swarm.merge(HASH, [(onion(3), 80, -1, 0.0)], now=10) == 0


def test_merge_stale_stop_does_not_remove_fresher_peer():
    swarm = tcore.PeerTable(ttl=1000)
    swarm.merge(HASH, [(onion(1), 80, 0, 0.0)], now=1000)  # seen here at 1000
    # a mirror's "stopped" for the same peer, 50 s old (seen at 950): older than ours
    assert swarm.merge(HASH, [(onion(1), 80, -1, 50.0)], now=1000) == 0
    assert keys(swarm.entries(HASH, now=1000)) == {(onion(1), 80)}


def test_merge_ignores_entries_older_than_ttl():
    swarm = tcore.PeerTable(ttl=100)
    assert swarm.merge(HASH, [(onion(1), 80, 0, 100.5), (onion(2), 80, 0, 99.0)],
                       now=1000) == 1
    assert keys(swarm.entries(HASH, now=1000)) == {(onion(2), 80)}


def test_merge_cap_evicts_the_stalest():
    swarm = tcore.PeerTable(ttl=1000, max_peers=3)
    swarm.merge(HASH, [(onion(1), 80, 0, 30.0), (onion(2), 80, 0, 90.0),
                       (onion(3), 80, 0, 60.0)], now=1000)
    assert swarm.merge(HASH, [(onion(4), 80, 0, 5.0)], now=1000) == 1
    assert swarm.size(HASH) == 3
    assert keys(swarm.entries(HASH, now=1000)) == {(onion(1), 80), (onion(3), 80),
                                                    (onion(4), 80)}
    swarm.merge(HASH, [(onion(5), 80, 0, 1.0)], now=1000)
    assert keys(swarm.entries(HASH, now=1000)) == {(onion(1), 80), (onion(4), 80),
                                                    (onion(5), 80)}


def test_expiry_after_out_of_order_merge_drops_exactly_the_expired():
    swarm = tcore.PeerTable(ttl=200)
    # ages out of order: seen at 990, 900, 950, 850, 980
    swarm.merge(HASH, [(onion(1), 80, 0, 10.0), (onion(2), 80, 0, 100.0),
                       (onion(3), 80, 0, 50.0), (onion(4), 80, 0, 150.0),
                       (onion(5), 80, 0, 20.0)], now=1000)
    # an announce after the merge, then another out-of-order merge
    swarm.announce(tcore.Announce(HASH, b"p" * 20, onion(6), 80, 0, 0, 0, "", 0), now=1000)
    swarm.merge(HASH, [(onion(7), 80, 0, 120.0)], now=1000)  # seen at 880
    # at 1120: ages 130, 220, 170, 270, 140, 120, 240 -> 2, 4 and 7 are past ttl=200
    assert set(swarm.peers(HASH, now=1120)) == {(onion(1), 80), (onion(3), 80),
                                                (onion(5), 80), (onion(6), 80)}
    assert swarm.size(HASH) == 4
    # at 1175: onion(3) (seen 950, age 225) goes too; 5 (age 195), 1 and 6 stay
    assert set(swarm.peers(HASH, now=1175)) == {(onion(1), 80), (onion(5), 80),
                                                (onion(6), 80)}
    assert swarm.size(HASH) == 3


def test_entries_list_fixed_seeders_first_with_age_zero():
    swarm = tcore.PeerTable(ttl=1000)
    swarm.set_fixed(HASH, [(SEED, 9000)])
    swarm.merge(HASH, [(onion(1), 80, 5, 40.0), (onion(2), 81, 0, 10.0)], now=1000)
    swarm.merge(HASH, [(SEED, 9000, 3, 5.0)], now=1000)  # never listed twice
    entries = swarm.entries(HASH, now=1010)
    assert entries[0] == (SEED, 9000, 0, 0.0)
    assert sorted(entries[1:]) == sorted([(onion(1), 80, 5, 50.0), (onion(2), 81, 0, 20.0)])
    assert len(entries) == 3


# -- 2. tracker reply: x-obt-trackers -------------------------------------------------------
def test_reply_trackers_round_trip():
    trackers = [onion(1), onion(2)]
    body = tcore.reply([(onion(3), 80)], 60, 1, 0, trackers=trackers)
    parsed = tcore.parse_reply(body)
    assert parsed.trackers == (onion(1), onion(2))
    assert parsed.peers == ((onion(3), 80),)
    assert tcore.parse_reply(tcore.reply([], 60, 0, 0)).trackers == ()
    assert tcore.TRACKERS_KEY not in bencodepy.decode(tcore.reply([], 60, 0, 0))


def test_reply_caps_trackers_it_sends():
    body = tcore.reply([], 60, 0, 0, trackers=[onion(i) for i in range(20)])
    assert len(bencodepy.decode(body)[tcore.TRACKERS_KEY]) == tcore.MAX_TRACKERS
    assert tcore.parse_reply(body).trackers == tuple(onion(i)
                                                     for i in range(tcore.MAX_TRACKERS))


def _raw_reply(trackers) -> bytes:
    return bencodepy.encode({b"interval": 60, b"peers": [], tcore.TRACKERS_KEY: trackers})


def test_parse_reply_drops_malformed_trackers():
    good = onion(1)
    bad_checksum = good[:-2] + ("a" if good[-2] != "a" else "b") + good[-1]
    raw = [5, [b"x"], b"junk", f"{bad_checksum}.onion".encode(), f"{good}.onion".encode(),
           good.upper().encode(), f"{onion(2)}.onion".encode()]
    assert tcore.parse_reply(_raw_reply(raw)).trackers == (good, onion(2))
    # not a list at all
    assert tcore.parse_reply(_raw_reply(b"abc")).trackers == ()
    assert tcore.parse_reply(_raw_reply({b"a": 1})).trackers == ()


def test_parse_reply_caps_trackers():
    raw = [f"{onion(i)}.onion".encode() for i in range(30)]
    parsed = tcore.parse_reply(_raw_reply(raw))
    assert len(parsed.trackers) == tcore.MAX_TRACKERS
    assert parsed.trackers == tuple(onion(i) for i in range(tcore.MAX_TRACKERS))


# -- 3. mirror core parsing -----------------------------------------------------------------
def _req(**fields) -> bytes:
    data = {"mirror": MIRROR, "epoch": "00ff", "since": 3, "wait": 1.5, "peers": []}
    data.update(fields)
    return json.dumps(data).encode()


def _reply(**fields) -> bytes:
    data = {"epoch": "00ff", "seq": 3, "full": False, "catalogue": "ab", "peers": []}
    data.update(fields)
    return json.dumps(data).encode()


def test_parse_request_accepts_a_good_request():
    req = mcore.parse_request(_req(peers=[[IH, onion(1), 80, 0, 1.5]]))
    assert req == mcore.SyncRequest(MIRROR, "00ff", 3, 1.5,
                                    (mcore.Update(IH, onion(1), 80, 0, 1.5),))


def test_encode_request_round_trip():
    peers = [mcore.Update(IH, onion(1), 80, 0, 1.25), mcore.Update(IH2, onion(2), 65535, -1, 0.0)]
    body = mcore.encode_request(MIRROR, "0123abcd", 42, 12.5, peers)
    assert mcore.parse_request(body) == mcore.SyncRequest(MIRROR, "0123abcd", 42, 12.5,
                                                          tuple(peers))


def test_encode_reply_round_trip():
    reply = mcore.SyncReply("beef", 7, True, mcore.catalogue_digest([IH]),
                            (mcore.Update(IH, onion(1), 80, 3, 2.0),))
    assert mcore.parse_reply(json.dumps(mcore.encode_reply(reply)).encode()) == reply


@pytest.mark.parametrize("body", [
    b"not json", b"", b"[1, 2]", b"\"mirror\"", b"null", b"[" * 100_000,
], ids=["garbage", "empty", "list", "string", "null", "deep"])
@pytest.mark.parametrize("parse", [mcore.parse_request, mcore.parse_reply])
def test_parse_refuses_non_objects(parse, body):
    with pytest.raises(MalformedReply):
        parse(body)


@pytest.mark.parametrize("parse,make", [(mcore.parse_request, _req),
                                        (mcore.parse_reply, _reply)])
def test_parse_refuses_oversized(parse, make):
    body = make(pad="x" * mcore.MAX_MESSAGE)
    assert len(body) > mcore.MAX_MESSAGE
    with pytest.raises(MalformedReply):
        parse(body)


@pytest.mark.parametrize("fields", [
    {"mirror": None}, {"mirror": "abc"}, {"mirror": onion(1)[:-1] + "a"},
    {"mirror": onion(1) + ".onion"}, {"mirror": " " + onion(1)[1:]}, {"mirror": 5},
    {"epoch": "XYZ"}, {"epoch": "0" * 33}, {"epoch": 12}, {"epoch": None},
    {"since": -1}, {"since": True}, {"since": 1.5}, {"since": "3"}, {"since": 2**63},
    {"wait": mcore.MAX_WAIT + 0.1}, {"wait": -1}, {"wait": True}, {"wait": "1"},
    {"peers": "x"}, {"peers": {"a": 1}},
], ids=repr)
def test_parse_request_refuses(fields):
    with pytest.raises(MalformedReply):
        mcore.parse_request(_req(**fields))


def test_parse_request_missing_mirror_refused():
    with pytest.raises(MalformedReply):
        mcore.parse_request(json.dumps({"epoch": "", "since": 0}).encode())


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_parse_request_refuses_nan_wait(literal):
    body = _req().replace(b'"wait": 1.5', f'"wait": {literal}'.encode())
    assert literal.encode() in body
    with pytest.raises(MalformedReply):
        mcore.parse_request(body)


def test_parse_updates_refuses_nan_age_entry():
    body = _req(peers=[[IH, onion(1), 80, 0, 1.0]]).replace(b"1.0]", b"NaN]")
    assert mcore.parse_request(body).peers == ()


def test_parse_request_defaults():
    req = mcore.parse_request(json.dumps({"mirror": MIRROR}).encode())
    assert (req.epoch, req.since, req.wait, req.peers) == ("", 0, 0.0, ())


@pytest.mark.parametrize("fields", [
    {"seq": None}, {"seq": -1}, {"seq": True}, {"seq": 1.0}, {"epoch": None},
    {"epoch": "G"}, {"catalogue": "XYZ"}, {"catalogue": "a" * 65}, {"catalogue": 1},
    {"peers": None},
], ids=repr)
def test_parse_reply_refuses(fields):
    with pytest.raises(MalformedReply):
        mcore.parse_reply(_reply(**fields))


def test_parse_reply_full_only_when_true():
    assert mcore.parse_reply(_reply(full=True)).full is True
    assert mcore.parse_reply(_reply(full=1)).full is False
    assert mcore.parse_reply(_reply(full="true")).full is False


def test_parse_updates_drops_malformed_keeps_good():
    good = [[IH, onion(1), 80, 0, 0.0], [IH2, onion(2), 65535, -1, 86400],
            [IH, onion(3), 1, 2**63 - 1, 3.5]]
    bad = [
        ["ab" * 19, onion(1), 80, 0, 0.0],          # 38 hex
        ["AB" * 20, onion(1), 80, 0, 0.0],          # uppercase hex
        ["zz" * 20, onion(1), 80, 0, 0.0],          # not hex
        [7, onion(1), 80, 0, 0.0],                  # not a string
        [IH, onion(1)[:-1] + "a", 80, 0, 0.0],      # bad checksum (or other char)
        [IH, "abc", 80, 0, 0.0],                    # short onion
        [IH, onion(1) + ".onion", 80, 0, 0.0],      # suffix
        [IH, onion(1), 0, 0, 0.0],                  # port 0
        [IH, onion(1), 65536, 0, 0.0],              # port too high
        [IH, onion(1), True, 0, 0.0],               # bool port
        [IH, onion(1), 80.0, 0, 0.0],               # float port
        [IH, onion(1), 80, -2, 0.0],                # left < -1
        [IH, onion(1), 80, True, 0.0],              # bool left
        [IH, onion(1), 80, 0, -0.5],                # negative age
        [IH, onion(1), 80, 0, mcore.MAX_AGE + 1],   # too old
        [IH, onion(1), 80, 0, False],               # bool age
        [IH, onion(1), 80, 0],                      # too short
        [IH, onion(1), 80, 0, 0.0, 1],              # too long
        "abcde", 5, None, {"a": 1},                 # not lists
    ]
    assert onion(1)[:-1] + "a" != onion(1)
    mixed = bad[:10] + good[:1] + bad[10:] + good[1:]
    out = mcore.parse_updates(mixed)
    assert [u.as_list() for u in out] == [
        [IH, onion(1), 80, 0, 0.0], [IH2, onion(2), 65535, -1, 86400.0],
        [IH, onion(3), 1, 2**63 - 1, 3.5]]
    assert all(isinstance(u.age, float) for u in out)


def test_parse_updates_keeps_onions_canonical():
    out = mcore.parse_updates([[IH, onion(1).upper(), 80, 0, 0.0]])
    assert all(u.onion == u.onion.lower() for u in out)
    req = mcore.parse_request(_req(mirror=MIRROR.upper()))
    assert req.mirror == MIRROR


def test_parse_updates_refuses_too_many():
    entry = [IH, onion(1), 80, 0, 0.0]
    assert len(mcore.parse_updates([entry] * mcore.MAX_ENTRIES)) == mcore.MAX_ENTRIES
    with pytest.raises(MalformedReply):
        mcore.parse_updates([entry] * (mcore.MAX_ENTRIES + 1))
    with pytest.raises(MalformedReply):
        mcore.parse_request(_req(peers=[entry] * (mcore.MAX_ENTRIES + 1)))


def test_catalogue_digest_ignores_order():
    assert mcore.catalogue_digest([IH, IH2]) == mcore.catalogue_digest([IH2, IH])
    assert mcore.catalogue_digest([IH]) != mcore.catalogue_digest([IH, IH2])
    assert len(mcore.catalogue_digest([])) == 32


# -- 4. Feed --------------------------------------------------------------------------------
def U(i: int, left: int = 0, age: float = 0.0, ih: str = IH, port: int = 80) -> mcore.Update:
    return mcore.Update(ih, onion(i), port, left, age)


def test_feed_changes_after_since_newest_per_peer_excluding_origin():
    feed = mcore.Feed()
    assert feed.changes(0, "x", now=0) == []
    feed.add("", U(1, left=5), now=100)           # 1
    feed.add(MIRROR, U(2), now=100)               # 2
    feed.add("", U(1, left=0, age=2.0), now=110)  # 3: newer for peer 1
    feed.add(OTHER_MIRROR, U(3), now=110)         # 4
    feed.add(MIRROR, U(4), now=111)               # 5
    assert feed.seq == 5
    assert feed.changes(0, "x", now=120) == [
        U(2, age=20.0), U(1, left=0, age=12.0), U(3, age=10.0), U(4, age=9.0)]
    assert feed.changes(0, MIRROR, now=120) == [U(1, left=0, age=12.0), U(3, age=10.0)]
    assert feed.changes(3, "x", now=120) == [U(3, age=10.0), U(4, age=9.0)]
    assert feed.changes(5, "x", now=120) == []
    # the newest change wins even when the excluded origin made it
    feed.add(MIRROR, U(3, left=-1), now=120)      # 6
    assert feed.changes(3, MIRROR, now=120) == []
    assert feed.changes(3, "x", now=120) == [U(4, age=9.0), U(3, left=-1)]


def test_feed_changes_none_beyond_seq_and_when_fallen_out():
    feed = mcore.Feed(capacity=2)
    assert feed.changes(1, "x", now=0) is None
    for i in range(1, 5):
        feed.add("", U(i), now=0)  # log keeps seq 3 and 4
    assert feed.changes(5, "x", now=0) is None
    assert feed.changes(0, "x", now=0) is None
    assert feed.changes(1, "x", now=0) is None
    assert feed.changes(2, "x", now=0) == [U(3), U(4)]
    assert feed.changes(3, "x", now=0) == [U(4)]
    assert feed.changes(4, "x", now=0) == []


def test_feed_touch_advances_seq():
    feed = mcore.Feed()
    feed.add("", U(1), now=0)
    feed.touch()
    assert feed.seq == 2
    assert feed.changes(1, "x", now=0) == []
    assert feed.changes(2, "x", now=0) == []
    assert feed.changes(3, "x", now=0) is None


def test_feed_epochs_differ():
    assert mcore.Feed().epoch != mcore.Feed().epoch


async def test_feed_wait_returns_at_once_when_moved():
    feed = mcore.Feed()
    feed.add("", U(1), now=0)
    start = time.monotonic()
    await asyncio.wait_for(feed.wait(0, 5.0), 1.0)
    await asyncio.wait_for(feed.wait(7, 5.0), 1.0)  # any other position
    await asyncio.wait_for(feed.wait(1, 0), 1.0)     # no timeout at all
    assert time.monotonic() - start < 0.5


async def test_feed_wait_wakes_on_add_from_another_task():
    feed = mcore.Feed()

    async def later():
        await asyncio.sleep(0.05)  # while the wait below is under way: what is tested
        feed.add("", U(1), now=0)

    task = asyncio.create_task(later())
    start = time.monotonic()
    await asyncio.wait_for(feed.wait(0, 5.0), 2.0)
    assert time.monotonic() - start < 1.0
    assert feed.seq == 1
    await task


async def test_feed_wait_wakes_on_touch():
    feed = mcore.Feed()
    asyncio.get_running_loop().call_later(0.05, feed.touch)
    start = time.monotonic()
    await asyncio.wait_for(feed.wait(0, 5.0), 2.0)
    assert time.monotonic() - start < 1.0


async def test_feed_wait_times_out():
    feed = mcore.Feed()
    start = time.monotonic()
    await asyncio.wait_for(feed.wait(0, 0.05), 2.0)
    elapsed = time.monotonic() - start
    assert 0.04 <= elapsed < 1.0
    assert feed.seq == 0


# -- 5. Origin.sync with a real TrackerServer -----------------------------------------------
class FakeStore:
    def __init__(self, public: list[str], private: list[str] = ()) -> None:
        self.public, self.private = list(public), list(private)
        self.recorded: list[tuple] = []
        self.trusts = {NODE, OTHER_NODE}
        self.batches = 0
        self.catalogue = types.SimpleNamespace(shares=self.public_shares)
        self.trust = types.SimpleNamespace(all=self.trusted, has=self.is_trusted)
        self.torrents = types.SimpleNamespace(get=self.torrent)
        self.peers = types.SimpleNamespace(record_many=self.record_peers)

    def trusted(self):
        return sorted(self.trusts)

    def is_trusted(self, onion):
        return onion in self.trusts

    def public_shares(self):
        return set(self.public)

    def torrent(self, torrent_id):
        if torrent_id in self.public:
            return types.SimpleNamespace(role="share", torrent=b"d4:infod...ee:" + torrent_id.encode())
        if torrent_id in self.private:
            return types.SimpleNamespace(role="share", torrent=b"private")
        return None

    def record_peers(self, infohash, rows, ttl, cap):
        self.batches += 1
        self.recorded += [(infohash, onion, port, left) for onion, port, left in rows]


@pytest.fixture
async def origin_env():
    server = TrackerServer(interval=60)
    await server.start()
    try:
        port = await server.listen()
        server.attach(port, Served(IH, "tok1", b"t1", (bytes.fromhex(IH),),
                                   seeders=((SEED, 9000),)))
        server.attach(port, Served(IH2, "tok2", b"t2", (bytes.fromhex(IH2),)))
        store = FakeStore(public=[IH], private=[IH2])
        yield Origin(store, server), server, store
    finally:
        await server.close()


def _announce(server: TrackerServer, torrent_id: str, i: int, left: int = 0) -> None:
    share = server._find(torrent_id)
    server.peers.announce(tcore.Announce(share.info_hashes[0], b"p" * 20, onion(i), 80,
                                         0, 0, left, "", 0), time.monotonic())


def request(epoch: str = "", since: int = 0, wait: float = 0.0, peers=(),
            mirror: str = MIRROR) -> mcore.SyncRequest:
    return mcore.SyncRequest(mirror, epoch, since, wait, tuple(peers))


def parsed(reply: dict) -> mcore.SyncReply:
    return mcore.parse_reply(json.dumps(reply).encode())


async def test_wrong_epoch_gets_full_reply(origin_env):
    origin, server, _ = origin_env
    _announce(server, IH, 1, left=5)
    _announce(server, IH2, 2)  # private: never listed
    origin.announced(IH, onion(1), 80, 5)
    for epoch in ("", "0" * 16):
        reply = parsed(await origin.sync(request(epoch=epoch, since=1)))
        assert reply.full is True
        assert reply.epoch == origin.feed.epoch
        assert reply.seq == origin.feed.seq
        assert reply.catalogue == mcore.catalogue_digest([IH])
        assert [(u.infohash, u.onion, u.port, u.left) for u in reply.peers] == [
            (IH, SEED, 9000, 0), (IH, onion(1), 80, 5)]


async def test_pushed_public_peers_land_in_tracker_and_store(origin_env):
    origin, server, store = origin_env
    pushed = [mcore.Update(IH, onion(5), 6881, 7, 3.0),
              mcore.Update(IH2, onion(6), 6881, 0, 0.0),   # not public
              mcore.Update("ef" * 20, onion(7), 6881, 0, 0.0)]  # unknown
    reply = parsed(await origin.sync(request(epoch=origin.feed.epoch, peers=pushed), NODE))
    assert reply.full is False and reply.registered
    assert reply.peers == ()  # its own pushes do not come back
    entries = {(o, p): (left, age) for o, p, left, age in server.entries(IH)}
    assert entries[(onion(5), 6881)][0] == 7
    assert 3.0 <= entries[(onion(5), 6881)][1] < 10.0
    assert (onion(6), 6881) not in keys(server.entries(IH2))
    assert store.recorded == [(IH, onion(5), 6881, 7)]
    assert origin.feed.seq == 1

    # a pushed stop removes it and is recorded with left=None
    stop = mcore.Update(IH, onion(5), 6881, -1, 0.0)
    await origin.sync(request(epoch=origin.feed.epoch, since=1, peers=[stop]), NODE)
    assert (onion(5), 6881) not in keys(server.entries(IH))
    assert store.recorded[-1] == (IH, onion(5), 6881, None)

    # another mirror gets the pushed changes
    other = parsed(await origin.sync(request(epoch=origin.feed.epoch, since=0,
                                             mirror=OTHER_MIRROR)))
    assert [(u.onion, u.left) for u in other.peers] == [(onion(5), -1)]


async def test_pushed_peers_in_a_full_reply_too(origin_env):
    origin, server, _ = origin_env
    pushed = [mcore.Update(IH, onion(5), 6881, 0, 1.0)]
    reply = parsed(await origin.sync(request(epoch="", peers=pushed), NODE))
    assert reply.full is True
    assert (IH, onion(5), 6881) in {(u.infohash, u.onion, u.port) for u in reply.peers}
    assert (onion(5), 6881) in keys(server.entries(IH))


async def test_long_poll_wakes_on_announce(origin_env):
    origin, _, _ = origin_env
    first = parsed(await origin.sync(request()))
    assert first.full

    async def later():
        await asyncio.sleep(0.1)  # while the long poll below waits: what is tested
        origin.announced(IH, onion(3), 80, 0)
        origin.announced(IH2, onion(4), 80, 0)  # private: not in the feed

    task = asyncio.create_task(later())
    start = time.monotonic()
    reply = parsed(await asyncio.wait_for(
        origin.sync(request(epoch=first.epoch, since=first.seq, wait=2)), 5))
    elapsed = time.monotonic() - start
    await task
    assert elapsed < 1.0
    assert reply.full is False
    assert [(u.infohash, u.onion, u.left) for u in reply.peers] == [(IH, onion(3), 0)]
    assert reply.seq == origin.feed.seq == 1

    # the next call starts after that seq: nothing new, returns at its (short) deadline
    nxt = parsed(await origin.sync(request(epoch=reply.epoch, since=reply.seq, wait=0.1)))
    assert nxt.peers == () and nxt.full is False and nxt.seq == reply.seq

    # a stop reaches it too
    origin.announced(IH, onion(3), 80, None)
    stop = parsed(await origin.sync(request(epoch=reply.epoch, since=reply.seq, wait=2)))
    assert [(u.onion, u.left) for u in stop.peers] == [(onion(3), -1)]


async def test_long_poll_ignores_the_mirrors_own_pushes(origin_env):
    origin, server, _ = origin_env
    epoch, seq = origin.feed.epoch, origin.feed.seq
    wait = 0.6

    async def push():
        await asyncio.sleep(0.1)  # while the long poll below waits: what is tested
        own = parsed(await origin.sync(request(epoch=epoch, since=seq, peers=[
            mcore.Update(IH, onion(8), 80, 0, 0.0)]), NODE))
        assert own.peers == ()

    task = asyncio.create_task(push())
    start = time.monotonic()
    reply = parsed(await asyncio.wait_for(
        origin.sync(request(epoch=epoch, since=seq, wait=wait)), 5))
    elapsed = time.monotonic() - start
    await task
    assert elapsed >= wait - 0.05
    assert elapsed < wait + 1.0
    assert reply.full is False
    assert reply.peers == ()
    assert reply.seq == origin.feed.seq == 1  # the push moved the feed on
    assert (onion(8), 80) in keys(server.entries(IH))


async def test_long_poll_wakes_on_catalogue_change(origin_env):
    origin, _, store = origin_env
    first = parsed(await origin.sync(request()))

    def publish():
        store.public.append(IH2)
        store.private.remove(IH2)
        origin.catalogue_changed()

    asyncio.get_running_loop().call_later(0.05, publish)
    start = time.monotonic()
    reply = parsed(await origin.sync(request(epoch=first.epoch, since=first.seq, wait=2)))
    assert time.monotonic() - start < 1.0
    assert reply.catalogue == mcore.catalogue_digest([IH, IH2]) != first.catalogue


async def test_stale_or_future_since_gets_full_reply(origin_env):
    origin, _, _ = origin_env
    reply = parsed(await origin.sync(request(epoch=origin.feed.epoch, since=99, wait=2)))
    assert reply.full is True


async def test_trackers_name_a_synced_mirror_for_public_ids_only(origin_env):
    origin, _, _ = origin_env
    assert origin.trackers(IH) == []
    await origin.sync(request())  # no credential: read-only, never named
    assert origin.trackers(IH) == []
    await origin.sync(request(), NODE)
    assert origin.trackers(IH) == [MIRROR]
    assert origin.trackers(IH2) == []
    assert origin.trackers("ef" * 20) == []
    await origin.sync(request(mirror=OTHER_MIRROR), OTHER_NODE)
    assert origin.trackers(IH) == [MIRROR, OTHER_MIRROR]  # longest-standing first


async def test_torrent_only_for_public_ids(origin_env):
    origin, _, _ = origin_env
    assert origin.torrent(IH) == b"d4:infod...ee:" + IH.encode()
    assert origin.torrent(IH2) is None
    assert origin.torrent("ef" * 20) is None


async def test_announced_feeds_only_public_ids(origin_env):
    origin, _, _ = origin_env
    origin.announced(IH2, onion(1), 80, 0)
    assert origin.feed.seq == 0
    origin.announced(IH, onion(1), 80, None)
    assert origin.feed.changes(0, "x", now=time.monotonic())[0].left == -1
