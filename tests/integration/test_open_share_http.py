"""Open and closed shares through the real tracker on 127.0.0.1 (no Tor): the .torrent it
serves names the share's trackers, a closed share refuses a client that announces no onion,
an open one answers it and never lists it; ``aria2c --show-files`` reads the .torrent."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse

import aiohttp
import bencodepy
import libtorrent as lt
import pytest

from onionshare_bt.engine.metainfo import create_share
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core, metafile
from onionshare_bt.tracker.server import Served, TrackerServer

TOKEN = "T" * 32
OWN = [onion_from_pubkey(bytes([i]) * 32) for i in (1, 2)]
MIRROR = onion_from_pubkey(b"\x09" * 32)
OBT_PEER = onion_from_pubkey(b"\x05" * 32)


@pytest.fixture(scope="module")
def meta(tmp_path_factory):
    folder = tmp_path_factory.mktemp("share") / "holiday photos"
    (folder / "day 1").mkdir(parents=True)
    (folder / "day 1" / "beach.jpg").write_bytes(bytes(range(256)) * 400)
    (folder / "notes.txt").write_bytes(b"sun\n")
    return create_share(folder).meta


@pytest.fixture
async def tracker(meta):
    server = TrackerServer(interval=60, trackers=lambda tid: [MIRROR, OWN[0]])
    await server.start()
    served = Served(meta.id, TOKEN, meta.data, meta.info_hashes)
    port = await server.serve(served)
    server.set_seeders(meta.id, [(o, 6881) for o in OWN])
    async with aiohttp.ClientSession() as http:
        yield server, http, f"http://127.0.0.1:{port}/private/{TOKEN}"
    await server.close()


async def get(http, url: str) -> bytes:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.read()


def query(meta, **params) -> str:
    base = {"info_hash": meta.info_hashes[0], "peer_id": b"A2-1-36-0-0123456789",
            "port": 6890, "uploaded": 0, "downloaded": 0, "left": meta.size,
            "event": "started", "compact": 1, "key": "x"}
    base.update(params)
    return urllib.parse.urlencode({k: v for k, v in base.items() if v is not None})


async def test_the_served_torrent_names_every_onion_and_mirror(tracker, meta):
    server, http, uri = tracker
    served = await get(http, uri)
    assert served == server.torrent_file(meta.id)
    data = bencodepy.decode(served)
    urls = [f"http://{o}.onion/private/{TOKEN}/announce" for o in OWN]
    assert data[b"announce"] == urls[0].encode()
    assert data[b"announce-list"] == [
        [u.encode() for u in urls],
        [f"http://{MIRROR}.onion/private/{TOKEN}/announce".encode()]]  # OWN[0] once
    info = lt.torrent_info(served)
    assert info.info_hashes().v1.to_bytes() == meta.info_hashes[0]
    # withdrawing an onion takes it out of the .torrent too
    server.set_seeders(meta.id, [(OWN[1], 6881)])
    assert bencodepy.decode(await get(http, uri))[b"announce"] == urls[1].encode()


async def test_a_closed_share_refuses_a_standard_client_with_a_reason(tracker, meta):
    server, http, uri = tracker
    reply = bencodepy.decode(await get(http, f"{uri}/announce?{query(meta)}"))
    assert reply == {b"failure reason": core.CLOSED_REASON.encode()}
    # obt nodes and observers are answered as before
    node = bencodepy.decode(await get(http, f"{uri}/announce?"
                                            f"{query(meta, ip=f'{OBT_PEER}.onion')}"))
    assert b"failure reason" not in node and node[b"peers"]
    observer = bencodepy.decode(await get(http, f"{uri}/announce?{query(meta, port=None)}"))
    assert b"failure reason" not in observer


async def test_an_open_share_answers_a_standard_client_and_never_lists_it(tracker, meta):
    server, http, uri = tracker
    server.set_open(meta.id, True)
    leecher = query(meta, ip=f"{OBT_PEER}.onion", port=6881, peer_id=b"-obt-leecher-0000000")
    await get(http, f"{uri}/announce?{leecher}")
    reply = bencodepy.decode(await get(http, f"{uri}/announce?{query(meta)}"))
    peers = [(p[b"ip"].decode(), p[b"port"]) for p in reply[b"peers"]]
    assert peers == [(f"{o}.onion", 6881) for o in OWN] + [(f"{OBT_PEER}.onion", 6881)]
    assert (reply[b"complete"], reply[b"incomplete"]) == (2, 2)  # the client is a leecher
    # the obt leecher is never handed the standard client (it has no address to hand)
    again = bencodepy.decode(await get(http, f"{uri}/announce?{leecher}"))
    assert [p[b"ip"].decode() for p in again[b"peers"]] == [f"{o}.onion" for o in OWN]
    assert all(e[0] in OWN + [OBT_PEER] for e in server.entries(meta.id))
    server.set_open(meta.id, False)
    closed = bencodepy.decode(await get(http, f"{uri}/announce?{query(meta)}"))
    assert closed[b"failure reason"] == core.CLOSED_REASON.encode()


async def test_the_info_hash_aria2_computes_names_the_same_swarm(tracker, meta):
    server, http, uri = tracker
    server.set_open(meta.id, True)
    legacy = metafile.legacy_info_hash(meta.data)
    await get(http, f"{uri}/announce?{query(meta, peer_id=b'A' * 20)}")
    reply = bencodepy.decode(await get(http, f"{uri}/announce?"
                                             f"{query(meta, info_hash=legacy)}"))
    assert b"failure reason" not in reply and len(reply[b"peers"]) == 2
    assert reply[b"incomplete"] == 2  # both clients counted in one swarm
    other = bencodepy.decode(await get(http, f"{uri}/announce?"
                                             f"{query(meta, info_hash=b'z' * 20)}"))
    assert other == {b"failure reason": b"unknown info_hash"}


def test_aria2c_lists_the_files_and_the_onion_trackers(tmp_path, meta):
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.fail("aria2c is not installed: scripts/setup.sh installs it")
    urls = [[metafile.announce_url(o, TOKEN) for o in OWN]]
    path = tmp_path / "share.torrent"
    path.write_bytes(metafile.with_trackers(meta.data, urls))
    out = subprocess.run([aria2c, "--show-files", str(path)], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL).stdout
    # aria2 < 1.37 hashes the hybrid's info dict without its empty keys: the tracker and
    # the bridges take that name too (see test_open_share_aria2.py)
    assert f"Info Hash: {metafile.legacy_info_hash(meta.data).hex()}" in out
    for url in urls[0]:
        assert url in out
    assert "./holiday photos/day 1/beach.jpg" in out and "./holiday photos/notes.txt" in out
