"""Two real libtorrent sessions, the real tracker and the real bridges, without Tor.

The bridges' dial function connects straight to the other node's inbound listener instead
of going through Tor's SOCKS port; everything else is what the node runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import urllib.parse
from pathlib import Path

import aiohttp
import bencodepy

from onionshare_bt.engine.metainfo import create, parse
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker.core import parse_reply
from onionshare_bt.tracker.server import Served, TrackerServer


def make_tree(root: Path) -> Path:
    share = root / "share"
    (share / "a" / "b").mkdir(parents=True)
    (share / "big.bin").write_bytes(secrets.token_bytes(3 * 1024 * 1024 + 17))
    (share / "empty").write_bytes(b"")
    (share / "a" / "b" / "naïve 名前.txt").write_text("héllo\n", encoding="utf-8")
    return share


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def wait_for(predicate, timeout: float, step: float = 0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(step)


async def test_share_fetch_announce_download_through_bridges(tmp_path, engines, events):
    leecher, seeder = engines  # the leecher records its events
    src = make_tree(tmp_path / "src")
    meta = await asyncio.to_thread(create, src)
    seeder.add(meta, src.parent, seed=True)

    # the seeder's side: tracker listener and inbound bridge for its "onion"
    seed_onion = onion_from_pubkey(secrets.token_bytes(32))
    leech_onion = onion_from_pubkey(secrets.token_bytes(32))
    tracker = TrackerServer(interval=30)
    await tracker.start()
    token = secrets.token_urlsafe(24)
    tport = await tracker.serve(Served(meta.id, token, meta.data, meta.info_hashes))
    tracker.set_seeders(meta.id, [(seed_onion, 6881)])
    seed_bridges = Bridges(dial=None, engine_port=seeder.listen_port)
    inbound = await seed_bridges.inbound(meta.id, meta.info_hashes)
    in_port = int(inbound.endpoint.rsplit(":", 1)[1])

    async def dial(onion, port, torrent_id, lane=0):
        assert (onion, port) == (seed_onion, 6881)
        return await asyncio.open_connection("127.0.0.1", in_port)

    leech_bridges = Bridges(dial=dial, engine_port=leecher.listen_port)
    base = f"http://127.0.0.1:{tport}/private/{token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as resp:
            fetched = parse(await resp.read())
        query = urllib.parse.urlencode({
            "info_hash": bytes.fromhex(meta.id), "peer_id": secrets.token_bytes(20),
            "ip": f"{leech_onion}.onion", "port": 6881, "left": meta.size, "event": "started",
        })
        async with http.get(f"{base}/announce?{query}") as resp:
            body = await resp.read()
    assert fetched.id == meta.id
    reply = parse_reply(body)
    assert reply.peers == ((seed_onion, 6881),)
    assert b"127.0.0.1" not in body

    dest = tmp_path / "dest"
    dest.mkdir()
    leecher.add(fetched, dest)
    endpoint = await leech_bridges.outbound(meta.id, *reply.peers[0])
    assert endpoint[0].startswith("127.") and endpoint[0] != "127.0.0.1"
    leecher.connect(meta.id, endpoint)
    seen_leech, seen_seed = set(), set()

    def finished() -> bool:  # sample both sides' peers while the transfer runs
        seen_leech.update(p.host for p in leecher.peers(meta.id))
        seen_seed.update(p.host for p in seeder.peers(meta.id))
        return leecher.status(meta.id).progress >= 1.0

    await wait_for(finished, timeout=60, step=0.01)

    # the bytes are compared once moved: hash checks may pass before the disk thread wrote
    # the last blocks, and the move waits for every write (as the node's "complete" does)
    await wait_for(lambda: ("finished", meta.id) in {(e.kind, e.torrent_id) for e in events}, 10)
    leecher.move(meta.id, tmp_path / "final")
    await wait_for(lambda: ("moved", meta.id) in {(e.kind, e.torrent_id) for e in events}, 10)
    assert digest_tree(tmp_path / "final" / src.name) == digest_tree(src)
    # every payload byte crossed the bridges
    out_path = leech_bridges.counters(meta.id)[0]
    assert out_path.down >= leecher.status(meta.id).payload_down > meta.size * 0.99
    assert inbound.up >= seeder.status(meta.id).payload_up > 0
    assert seen_leech == {endpoint[0]}
    assert seen_seed and all(Bridges.is_inbound_source(h) for h in seen_seed)
    await leech_bridges.close()
    await seed_bridges.close()
    await tracker.close()


async def test_inbound_bridge_refuses_handshake_for_another_torrent(tmp_path, engines):
    seeder, _ = engines
    src = make_tree(tmp_path / "src")
    meta = await asyncio.to_thread(create, src)
    seeder.add(meta, src.parent, seed=True)
    bridges = Bridges(dial=None, engine_port=seeder.listen_port)
    path = await bridges.inbound("other-torrent", (b"\x01" * 20,))
    port = int(path.endpoint.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x13BitTorrent protocol" + b"\0" * 8 + bytes.fromhex(meta.id) + b"x" * 20)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, nothing forwarded
    assert path.failures == 1 and path.last_error == "handshake for another torrent"
    writer.close()
    await bridges.close()


async def test_wrong_token_and_missing_share_get_the_same_404(tmp_path):
    tracker = TrackerServer()
    await tracker.start()
    token = secrets.token_urlsafe(24)
    port = await tracker.serve(Served("id", token, b"d4:infodee", (b"\0" * 20,)))
    async with aiohttp.ClientSession() as http:
        answers = []
        for path in (f"/private/{secrets.token_urlsafe(24)}", "/private/x/announce", "/nothing",
                     f"/private/{token[:-1]}"):
            async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                answers.append((resp.status, await resp.read(), "Server" in resp.headers))
        async with http.get(f"http://127.0.0.1:{port}/private/{token}") as resp:
            assert resp.status == 200 and "Server" not in resp.headers
    assert len(set(answers)) == 1 and answers[0][0] == 404 and answers[0][2] is False
    await tracker.close()


def test_created_torrent_names_no_client(tmp_path):
    meta = create(make_tree(tmp_path))
    decoded = bencodepy.decode(meta.data)
    assert b"created by" not in decoded and b"creation date" not in decoded
    assert len(meta.info_hashes) == 2  # v1 + v2 hybrid
    assert {f.path for f in meta.files} >= {"share/empty", "share/a/b/naïve 名前.txt"}
