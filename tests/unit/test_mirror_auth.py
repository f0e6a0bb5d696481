"""The mirror credential (mirror.auth) and the origin's use of it (Origin.call): only a
node the origin trusts may push peers or be named as a mirror; reading stays open."""

from __future__ import annotations

import base64
import json
import secrets
import time
import types

import pytest

from onionshare_bt.errors import MalformedReply, Refused
from onionshare_bt.mirror import auth
from onionshare_bt.mirror import core as mcore
from onionshare_bt.mirror.origin import MIRRORS_NAMED, Origin
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker.server import Served, TrackerServer
from onionshare_bt.trust.identity import SigningKey, expand_seed

ORIGIN = SigningKey(expand_seed(b"\x01" * 32)).onion
NODE_KEY = SigningKey(expand_seed(b"\x02" * 32))
NODE = NODE_KEY.onion
STRANGER_KEY = SigningKey(expand_seed(b"\x03" * 32))
MIRROR = onion_from_pubkey(b"\xaa" * 32)
IH = "ab" * 20
NOW = 1_700_000_000


def peer(i: int) -> str:
    return onion_from_pubkey(i.to_bytes(32, "big"))


def body(peers=(), mirror: str = MIRROR, epoch: str = "") -> bytes:
    return mcore.encode_request(mirror, epoch, 0, 0.0, list(peers))


def credential(key=NODE_KEY, origin=ORIGIN, mirror=MIRROR, data: bytes = b"{}", ts=NOW,
               nonce: str | None = None) -> str:
    return auth.credential(key, origin, mirror, data, ts, nonce or secrets.token_hex(16))


def trusted(onion: str) -> bool:
    return onion == NODE


# -- the verifier -----------------------------------------------------------------------------
def test_a_good_credential_names_its_node_and_mirror():
    verifier = auth.Verifier(ORIGIN)
    data = body()
    assert verifier.check(credential(data=data), data, NOW, trusted) == (NODE, MIRROR)


@pytest.mark.parametrize("case,reason", [
    ("other origin", "bad mirror credential signature"),
    ("other body", "bad mirror credential signature"),
    ("forged node", "bad mirror credential signature"),
    ("untrusted", "does not trust"),
    ("late", "expired"),
    ("early", "expired"),
    ("garbage", "malformed"),
    ("long", "malformed"),
    ("bad onion", "malformed"),
])
def test_bad_credentials_are_refused(case, reason):
    verifier = auth.Verifier(ORIGIN)
    data = body()
    header = credential(data=data)
    now = NOW
    if case == "other origin":
        header = credential(origin=peer(9), data=data)
    elif case == "other body":
        data = body([mcore.Update(IH, peer(1), 80, 0, 0.0)])
    elif case == "forged node":  # a stranger signs, claiming to be the trusted node
        header = credential(STRANGER_KEY, data=data).replace(STRANGER_KEY.onion, NODE)
    elif case == "untrusted":
        header = credential(STRANGER_KEY, data=data)
    elif case == "late":
        now = NOW + auth.SKEW + 1
    elif case == "early":
        now = NOW - auth.SKEW - 1
    elif case == "garbage":
        header = "v1 node=x"
    elif case == "long":
        header = header + " " * 600
    elif case == "bad onion":
        header = header.replace(f"mirror={MIRROR}", f"mirror={MIRROR[:-1]}a")
    with pytest.raises(Refused, match=reason):
        verifier.check(header, data, now, trusted)
    # positive control: the untouched credential passes at the right time
    assert auth.Verifier(ORIGIN).check(credential(data=body()), body(), NOW, trusted)


def test_the_edges_of_the_window_pass():
    data = body()
    for now in (NOW - auth.SKEW, NOW + auth.SKEW):
        assert auth.Verifier(ORIGIN).check(credential(data=data), data, now, trusted)


def test_a_replayed_nonce_is_refused_within_the_window_and_forgotten_after():
    verifier = auth.Verifier(ORIGIN)
    data = body()
    header = credential(data=data, nonce="0" * 32)
    verifier.check(header, data, NOW, trusted)
    with pytest.raises(Refused, match="replayed"):
        verifier.check(header, data, NOW + 10, trusted)
    # a new nonce at the same second is fine
    verifier.check(credential(data=data, nonce="1" * 32), data, NOW + 10, trusted)
    # once the first credential's timestamp is out of the window its nonce is forgotten
    later = NOW + auth.SKEW + 1
    verifier.check(credential(data=data, ts=later), data, later, trusted)
    assert "0" * 32 not in verifier._nonces


def test_an_unpublished_origin_refuses_every_credential():
    data = body()
    with pytest.raises(Refused, match="not published"):
        auth.Verifier("").check(credential(data=data), data, NOW, trusted)


def test_the_signed_message_binds_every_field():
    base = ("o", "n", "m", 1, "aa", b"body")
    seen = {auth.message(*base)}
    for i, other in enumerate(("o2", "n2", "m2", 2, "ab", b"bodY")):
        fields = list(base)
        fields[i] = other
        seen.add(auth.message(*fields))
    assert len(seen) == 7
    assert auth.message(*base).startswith(b"obt-mirror-sync-v1\n")


def test_the_header_value_has_the_documented_form():
    header = credential(nonce="f" * 32)
    assert header.startswith(f"v1 node={NODE} mirror={MIRROR} ts={NOW} nonce={'f' * 32} sig=")
    sig = header.rsplit("sig=", 1)[1]
    assert len(base64.urlsafe_b64decode(sig + "==")) == 64


# -- the origin -------------------------------------------------------------------------------
class Store:
    """The store's catalogue, trust and peers, as far as the origin uses them."""

    def __init__(self) -> None:
        self.trusts = {NODE}
        self.recorded: list[tuple] = []
        self.catalogue = types.SimpleNamespace(shares=self.public_shares)
        self.trust = types.SimpleNamespace(all=self.trusted, has=self.is_trusted)
        self.peers = types.SimpleNamespace(record_many=self.record_peers)

    def public_shares(self):
        return {IH}

    def trusted(self):
        return sorted(self.trusts)

    def is_trusted(self, onion):
        return onion in self.trusts

    def record_peers(self, infohash, rows, ttl, cap):
        self.recorded += [(infohash, *row) for row in rows]


@pytest.fixture
async def origin():
    server = TrackerServer(interval=60)
    await server.start()
    port = await server.listen()
    server.attach(port, Served(IH, "tok", b"t", (bytes.fromhex(IH),)))
    store = Store()
    wall = [float(NOW)]
    origin = Origin(store, server, wall=lambda: wall[0])
    origin.onion = ORIGIN
    yield origin, server, store
    await server.close()


def pushed(n: int, start: int = 1) -> list[mcore.Update]:
    return [mcore.Update(IH, peer(i), 80, 5, 0.0) for i in range(start, start + n)]


async def test_a_trusted_mirror_pushes_and_is_named(origin):
    origin, server, store = origin
    data = body(pushed(3))
    reply = mcore.parse_reply(json.dumps(await origin.call(data, credential(data=data))).encode())
    assert reply.registered and reply.reason == ""
    assert {o for o, *_ in server.entries(IH)} == {peer(1), peer(2), peer(3)}
    assert len(store.recorded) == 3
    assert origin.trackers(IH) == [MIRROR]


async def test_anyone_may_read_but_not_push_nor_be_named(origin):
    origin, server, store = origin
    reply = await origin.call(body(), None)
    assert reply["registered"] is False and reply["full"] is True
    with pytest.raises(Refused, match="needs a mirror credential"):
        await origin.call(body(pushed(5000 // 10)), None)
    assert server.entries(IH) == [] and store.recorded == []
    assert origin.trackers(IH) == []


async def test_a_stranger_reads_read_only_and_is_told_why(origin):
    origin, server, _ = origin
    data = body()
    reply = await origin.call(data, credential(STRANGER_KEY, data=data))
    assert reply["registered"] is False
    assert "does not trust" in reply["reason"]
    data = body(pushed(2))
    with pytest.raises(Refused, match="does not trust"):
        await origin.call(data, credential(STRANGER_KEY, data=data))
    assert server.entries(IH) == [] and origin.trackers(IH) == []


async def test_the_credential_must_name_the_mirror_in_the_body(origin):
    origin, _, _ = origin
    data = body(mirror=peer(77))
    with pytest.raises(Refused, match="another mirror"):
        await origin.call(data, credential(data=data))  # signed for MIRROR
    assert origin.trackers(IH) == []


async def test_a_replayed_call_is_refused(origin):
    origin, _, _ = origin
    data = body(pushed(1))
    header = credential(data=data)
    await origin.call(data, header)
    with pytest.raises(Refused, match="replayed"):
        await origin.call(data, header)


async def test_too_many_entries_or_bytes_in_one_push_are_malformed(origin):
    origin, _, _ = origin
    data = body(pushed(mcore.MAX_PUSH + 1))
    with pytest.raises(MalformedReply, match="too many"):
        await origin.call(data, credential(data=data))
    with pytest.raises(MalformedReply, match="too large"):
        await origin.call(b" " * (mcore.MAX_REQUEST + 1), None)


async def test_one_node_names_one_mirror_and_a_distrusted_node_none(origin):
    origin, _, store = origin
    for i in range(3):
        data = body(mirror=peer(100 + i))
        await origin.call(data, credential(mirror=peer(100 + i), data=data))
    assert origin.trackers(IH) == [peer(102)]
    assert len(origin.mirrors) == 1
    store.trusts.clear()
    assert origin.trackers(IH) == []
    assert MIRRORS_NAMED >= 1


async def test_the_whole_round_trip_with_a_real_clock():
    data = body()
    header = auth.credential(NODE_KEY, ORIGIN, MIRROR, data, int(time.time()),
                             secrets.token_hex(16))
    assert auth.Verifier(ORIGIN).check(header, data, time.time(), trusted) == (NODE, MIRROR)
