"""The mirror sync endpoint over real HTTP on 127.0.0.1: the identity onion's NodeServer
with a real Origin, TrackerServer and Store, called by the TrackerClient with the mirror
service's own credential code.

Replays the reported attack (one unauthenticated POST of 5,000 fake peers, stops included,
that blocked the loop, evicted and deleted real peers and registered the sender as a mirror)
and checks that it now changes nothing, and that a trusted mirror's maximal push still
works within the loop-time budget.
"""

from __future__ import annotations

import base64
import secrets
import time
import types

import pytest

from onionshare_bt.errors import Refused
from onionshare_bt.mirror import core as mcore
from onionshare_bt.mirror.origin import Origin
from onionshare_bt.mirror.service import MirrorService
from onionshare_bt.store import Store, TorrentRow
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core
from onionshare_bt.tracker.client import TrackerClient
from onionshare_bt.tracker.server import Served, TrackerServer
from onionshare_bt.trust.identity import SigningKey, expand_seed
from onionshare_bt.trust.server import NodeServer

IH = "ab" * 20
TOKEN = "T" * 32
ORIGIN = SigningKey(expand_seed(b"\x51" * 32)).onion
MIRROR_SEED = b"\x52" * 32
MIRROR_NODE = SigningKey(expand_seed(MIRROR_SEED)).onion
MIRROR = onion_from_pubkey(b"\x53" * 32)


def onion(i: int) -> str:
    return onion_from_pubkey(i.to_bytes(32, "big"))


def tor_key(seed: bytes) -> str:
    return "ED25519-V3:" + base64.b64encode(expand_seed(seed)).decode()


def share_row() -> TorrentRow:
    return TorrentRow(id=IH, role="share", name="n", save_path="/x", target="/x", torrent=b"t",
                      token="t" * 32, uri="http://x", state="seeding", error=None, resume=None,
                      added=time.time(), completed=None)


@pytest.fixture
async def origin_node(tmp_path):
    store = Store(tmp_path / "origin.sqlite3")
    store.torrents.add(share_row(), [])
    store.catalogue.publish(IH, True)
    tracker = TrackerServer(interval=60)
    await tracker.start()
    port = await tracker.listen()
    tracker.attach(port, Served(IH, "tok", b"t", (bytes.fromhex(IH),)))
    origin = Origin(store, tracker)
    origin.onion = ORIGIN
    server = NodeServer(lambda: {"onion": ORIGIN}, lambda: [], TOKEN, sync=origin.call)
    node_port = await server.start()
    http = TrackerClient(None)
    await http.start()
    now = time.monotonic()
    for i in range(1000):  # a full swarm of real peers, each its own peer_id
        tracker.peers.record(core.Announce(bytes.fromhex(IH), i.to_bytes(20, "big"), onion(i),
                                           80, 0, 0, 1, "", 0), now)
    yield types.SimpleNamespace(store=store, tracker=tracker, origin=origin, http=http,
                                url=f"http://127.0.0.1:{node_port}/public/{TOKEN}/sync")
    await http.close()
    await server.close()
    await tracker.close()
    store.close()


def mirror_signer(tmp_path, seed: bytes = MIRROR_SEED) -> MirrorService:
    """The mirror side's credential code, with its identity key in its own store."""
    store = Store(tmp_path / f"mirror-{seed.hex()[:4]}.sqlite3")
    store.identity.set_key(tor_key(seed))
    service = MirrorService(None, store, None, None, None)
    return service


def as_mirror():
    return types.SimpleNamespace(source=ORIGIN, row=types.SimpleNamespace(address=MIRROR))


def real_peers(env) -> set[str]:
    return {o for o, *_ in env.tracker.entries(IH)}


async def test_the_reported_attack_changes_nothing(origin_node):
    env = origin_node
    before = real_peers(env)
    attack = [mcore.Update(IH, onion(100_000 + i), 80, 0, 0.0) for i in range(4000)]
    attack += [mcore.Update(IH, onion(i), 80, -1, 0.0) for i in range(1000)]  # "stopped"
    body = mcore.encode_request(MIRROR, "", 0, 0.0, attack)
    with pytest.raises(Refused, match="HTTP 413"):
        await env.http.post(env.url, body, 10, mcore.MAX_MESSAGE)
    # the most a caller without a credential may send, pushing peers: refused too
    small = mcore.encode_request(MIRROR, "", 0, 0.0, attack[:mcore.MAX_PUSH])
    with pytest.raises(Refused, match="HTTP 403: pushing peers needs a mirror credential"):
        await env.http.post(env.url, small, 10, mcore.MAX_MESSAGE)
    assert real_peers(env) == before and len(before) == 1000
    assert env.origin.trackers(IH) == [] and env.origin.mirrors == {}
    assert env.store.peers.count() == 0


async def test_anyone_reads_the_feed_read_only(origin_node):
    env = origin_node
    reply = mcore.parse_reply(await env.http.post(
        env.url, mcore.encode_request(MIRROR, "", 0, 0.0, []), 10, mcore.MAX_MESSAGE))
    assert reply.full and not reply.registered and len(reply.peers) == 1000
    assert env.origin.trackers(IH) == []


async def test_a_trusted_mirrors_signed_push_is_taken_and_it_is_named(origin_node, tmp_path):
    env = origin_node
    env.store.trust.add(MIRROR_NODE)
    signer, mirror = mirror_signer(tmp_path), as_mirror()
    pushed = [mcore.Update(IH, onion(200_000 + i), 80, 0, 0.0) for i in range(mcore.MAX_PUSH)]
    body = mcore.encode_request(MIRROR, env.origin.feed.epoch, env.origin.feed.seq, 0.0, pushed)
    raw = await env.http.post(env.url, body, 10, mcore.MAX_MESSAGE,
                              headers=lambda: signer._credential(mirror, body))
    reply = mcore.parse_reply(raw)
    assert reply.registered
    assert {onion(200_000 + i) for i in range(mcore.MAX_PUSH)} <= real_peers(env)
    assert env.tracker.peers.size(bytes.fromhex(IH)) == 1000  # the stalest made room
    assert env.origin.trackers(IH) == [MIRROR]
    assert env.store.peers.count() == mcore.MAX_PUSH


async def test_an_untrusted_mirror_is_told_why_and_its_push_refused(origin_node, tmp_path):
    env = origin_node
    signer, mirror = mirror_signer(tmp_path, b"\x54" * 32), as_mirror()
    body = mcore.encode_request(MIRROR, "", 0, 0.0, [])
    reply = mcore.parse_reply(await env.http.post(
        env.url, body, 10, mcore.MAX_MESSAGE, headers=lambda: signer._credential(mirror, body)))
    assert not reply.registered and "does not trust" in reply.reason
    assert "obt trust add" in signer._not_registered(reply)
    push = mcore.encode_request(MIRROR, "", 0, 0.0, [mcore.Update(IH, onion(9), 80, 0, 0.0)])
    with pytest.raises(Refused, match="does not trust"):
        await env.http.post(env.url, push, 10, mcore.MAX_MESSAGE,
                            headers=lambda: signer._credential(mirror, push))


async def test_each_attempt_gets_a_fresh_credential(tmp_path):
    signer, mirror = mirror_signer(tmp_path), as_mirror()
    first, second = (signer._credential(mirror, b"{}") for _ in range(2))
    assert first.keys() == second.keys() == {"X-Obt-Mirror-Auth"}
    assert first != second  # new nonce each time: a retry is not a replay
    assert f"node={MIRROR_NODE}" in first["X-Obt-Mirror-Auth"]
    # no identity key yet: the call goes out unsigned (read-only)
    bare = MirrorService(None, Store(tmp_path / "none.sqlite3"), None, None, None)
    assert bare._credential(mirror, b"{}") == {}
    assert secrets.compare_digest(first["X-Obt-Mirror-Auth"][:8], "v1 node=")
