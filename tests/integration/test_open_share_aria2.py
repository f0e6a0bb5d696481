"""Debian's aria2c (1.36) fetches a hybrid share from a real libtorrent seeder through the
real inbound bridge, on 127.0.0.1 without Tor: aria2 < 1.37 names a v1+v2 hybrid torrent by
an info-hash of its own (it drops the empty keys of the v2 file tree before hashing), and the
bridge hands libtorrent the real one and aria2 its own back.

The Tor tier (tests/tor/test_torsocks_client.py) runs the same client under torsocks.
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.parse

import bencodepy
import pytest
from aiohttp import web

from onionshare_bt.engine.metainfo import create
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.tracker import metafile

from .test_loopback_swarm import digest_tree, make_tree

ARIA2_FLAGS = ["--async-dns=false", "--disable-ipv6=true", "--interface=127.0.0.1",
               "--enable-dht=false", "--enable-dht6=false",
               "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
               "--bt-stop-timeout=60", "--summary-interval=0", "--console-log-level=notice"]


async def test_aria2c_fetches_a_hybrid_share_through_the_bridge(tmp_path, engines):
    aria2c = shutil.which("aria2c")
    if aria2c is None:
        pytest.fail("aria2c is not installed: scripts/setup.sh installs it")
    seeder, _ = engines
    src = make_tree(tmp_path / "src")
    meta = await asyncio.to_thread(create, src)
    seeder.add(meta, src.parent, seed=True)
    legacy = metafile.legacy_info_hash(meta.data)
    assert legacy is not None and legacy not in meta.info_hashes

    bridges = Bridges(dial=None, engine_port=seeder.listen_port)
    inbound = await bridges.inbound(meta.id, meta.info_hashes, {legacy: meta.info_hashes[0]})
    in_port = int(inbound.endpoint.rsplit(":", 1)[1])

    announced: list[dict] = []

    async def announce(request: web.Request) -> web.Response:
        announced.append(urllib.parse.parse_qs(request.rel_url.raw_query_string,
                                               encoding="latin-1"))
        return web.Response(body=bencodepy.encode({
            b"interval": 5, b"peers": [{b"ip": b"127.0.0.1", b"port": in_port}]}))

    app = web.Application()
    app.router.add_get("/announce", announce)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    torrent = tmp_path / "share.torrent"
    torrent.write_bytes(metafile.with_trackers(
        meta.data, [[f"http://127.0.0.1:{port}/announce"]]))
    dest = tmp_path / "dest"
    try:
        proc = await asyncio.create_subprocess_exec(
            aria2c, *ARIA2_FLAGS, "-d", str(dest), str(torrent),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await runner.cleanup()
        await bridges.close()
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert announced and announced[0]["info_hash"][0].encode("latin-1") == legacy
    assert "ip" not in announced[0] and announced[0]["port"]  # unreachable: a port only
    got = {k: v for k, v in digest_tree(dest / src.name).items() if not k.startswith(".pad")}
    assert got == digest_tree(src)
    assert inbound.up >= meta.size  # every byte through the bridge, renamed handshake
