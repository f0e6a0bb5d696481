"""A .torrent naming trackers, web seeds and DHT nodes makes the engine contact none of them.

The names point at loopback servers that count every hit: an HTTP server (announce,
announce-list, url-list, httpseeds) and a UDP socket (a udp:// tracker, the DHT node). A
plain libtorrent session given the same bytes hits them (the control), the engine never does
while it seeds and downloads the torrent through the bridges. The engines run with a fake
SOCKS proxy that counts what libtorrent asks of it: nothing but UDP ASSOCIATE may arrive.
"""

from __future__ import annotations

import asyncio
import warnings

import bencodepy
import libtorrent as lt
import aiohttp
from aiohttp import web

from onionshare_bt.engine.bare import bare_torrent
from onionshare_bt.engine.metainfo import parse
from onionshare_bt.engine.session import Engine
from onionshare_bt.multiplex.bridge import Bridges

from .test_peerwire_probe import fake_onion, make_torrent, started, wait_for

SOCKS_CONNECT, SOCKS_UDP_ASSOCIATE = 1, 3


class Sinks:
    """Loopback servers that count every request and datagram."""

    def __init__(self) -> None:
        self.http: list[str] = []
        self.udp = 0
        self.socks: list[int] = []  # SOCKS5 commands asked of the fake proxy

    async def start(self) -> None:
        async def hit(request: web.Request) -> web.Response:
            self.http.append(request.path)
            return web.Response(status=404)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hit)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        sinks = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                sinks.udp += 1

        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
        self.udp_port = self._udp.get_extra_info("sockname")[1]
        self._socks = await asyncio.start_server(self._socks_request, "127.0.0.1", 0)
        self.socks_port = self._socks.sockets[0].getsockname()[1]

    async def settled(self) -> None:
        """Return once a marker sent now to each sink has been counted (and uncount it)."""
        udp, http = self.udp, len(self.http)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", self.udp_port))
        transport.sendto(b"marker")
        transport.close()
        async with aiohttp.ClientSession() as client:
            async with client.get(f"http://127.0.0.1:{self.http_port}/marker") as resp:
                await resp.read()
        await wait_for(lambda: self.udp > udp and "/marker" in self.http[http:], 10)
        self.udp -= 1
        self.http.remove("/marker")

    async def _socks_request(self, reader, writer):
        try:
            greeting = await reader.readexactly(2)
            await reader.readexactly(greeting[1])
            writer.write(b"\x05\x00")
            request = await reader.readexactly(4)
            self.socks.append(request[1])
            writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported, as tor says
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def total(self) -> int:
        return len(self.http) + self.udp + sum(1 for c in self.socks if c != SOCKS_UDP_ASSOCIATE)

    async def close(self) -> None:
        self._socks.close()
        self._udp.close()
        await self._runner.cleanup()


def hostile_extra(sinks: Sinks, name: str) -> dict:
    http = f"http://127.0.0.1:{sinks.http_port}"
    return {
        b"announce": f"{http}/announce".encode(),
        b"announce-list": [[f"{http}/announce-list".encode()],
                           [f"udp://127.0.0.1:{sinks.udp_port}/announce".encode()]],
        b"url-list": [f"{http}/url-list/{name}".encode()],
        b"httpseeds": [f"{http}/httpseeds".encode()],
        b"nodes": [[b"127.0.0.1", sinks.udp_port]],
    }


async def plain_session_hits(data: bytes, save_path, sinks: Sinks) -> None:
    """The control: libtorrent's defaults and no sanitising hit the loopback servers.

    DHT, LSD, UPnP and NAT-PMP are off only so the control reaches nothing off the machine
    (DHT bootstrap, multicast); trackers and web seeds keep libtorrent's defaults.
    """
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False,
                      "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(data)
    params.save_path = str(save_path)
    ses.add_torrent(params)
    try:
        # the web seed, and the udp:// tracker (libtorrent's first answer to the tiers)
        await wait_for(lambda: "/url-list/f.bin" in sinks.http and sinks.udp > 0, 30)
    finally:
        ses.pause()
        for handle in ses.get_torrents():
            ses.remove_torrent(handle)
    # the control stops for good before the sinks are reset: libtorrent's destructor returns
    # once its network thread has ended (its last "stopped" announces sent), and a marker
    # sent after that to each sink is counted after whatever the control had sent them
    box = [ses]
    del ses
    await asyncio.to_thread(box.clear)
    await sinks.settled()


def assert_bare(engine: Engine, original: bytes) -> None:
    (handle,) = engine.session.get_torrents()
    info = handle.torrent_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert list(info.trackers()) == [] and list(info.web_seeds()) == []
        assert list(info.nodes()) == []
        assert handle.trackers() == [] and not handle.url_seeds() and not handle.http_seeds()
    want = lt.torrent_info(original).info_hashes()
    assert info.info_hashes().v1 == want.v1 and info.info_hashes().v2 == want.v2


async def test_hostile_torrent_names_reach_nothing(tmp_path):
    sinks = Sinks()
    await sinks.start()
    seeder = leecher = None
    try:
        meta = make_torrent(tmp_path / "src", "f.bin", 600_000, hostile_extra(sinks, "f.bin"))
        data = meta.data
        (tmp_path / "control").mkdir()
        await plain_session_hits(data, tmp_path / "control", sinks)
        assert sinks.http and sinks.udp  # the servers do see a client that obeys the torrent

        sinks.http.clear()
        sinks.udp = 0
        socks = ("127.0.0.1", sinks.socks_port)
        seeder, leecher = await started(Engine(socks=socks), Engine(socks=socks))
        assert seeder.bridged and leecher.bridged  # a node's engine: bridges only
        seeder.add(meta, tmp_path / "src", seed=True)
        (tmp_path / "dest").mkdir()
        leecher.add(meta, tmp_path / "dest")
        for engine in (seeder, leecher):
            assert_bare(engine, data)

        seed_bridges = Bridges(None, seeder.listen_port)
        inbound = await seed_bridges.inbound(meta.id, meta.info_hashes)
        in_port = int(inbound.endpoint.rsplit(":", 1)[1])

        async def dial(onion, port, torrent_id, lane=0):
            return await asyncio.open_connection("127.0.0.1", in_port)

        leech_bridges = Bridges(dial, leecher.listen_port, info_hashes=leecher.info_hashes)
        leecher.connect(meta.id, await leech_bridges.outbound(meta.id, fake_onion(), 6881))
        watched = []

        def done() -> bool:
            watched.append(sinks.total())
            return leecher.status(meta.id).progress >= 1.0

        await wait_for(done, 60)  # downloading, then seeding: a bounded wait with both active
        await asyncio.sleep(5)  # seeding: nothing may reach a sink meanwhile (none expected)
        got, want = (tmp_path / d / "f.bin" for d in ("dest", "src"))
        assert got.read_bytes() == want.read_bytes()
        assert set(watched) == {0} and sinks.total() == 0, (sinks.http, sinks.udp, sinks.socks)
        assert all(c == SOCKS_UDP_ASSOCIATE for c in sinks.socks)
        assert inbound.up >= seeder.status(meta.id).payload_up > 0  # peers bypass the proxy
        await leech_bridges.close()
        await seed_bridges.close()
    finally:
        for engine in (seeder, leecher):
            if engine is not None:
                await engine.close()
        await sinks.close()


async def test_resume_data_brings_back_no_tracker_web_seed_or_peer(tmp_path):
    sinks = Sinks()
    await sinks.start()
    (engine,) = await started(Engine(bridged=True))
    try:
        meta = make_torrent(tmp_path / "src", "f.bin", 100_000)
        http = f"http://127.0.0.1:{sinks.http_port}"
        saved = lt.add_torrent_params()
        saved.ti = lt.torrent_info(meta.data)
        saved.save_path = str(tmp_path / "dest")
        saved.trackers = [f"{http}/announce"]
        saved.url_seeds = [f"{http}/url-list/f.bin"]
        saved.peers = [("127.64.0.9", 6881), ("127.0.0.1", sinks.http_port)]
        resume = bytes(lt.write_resume_data_buf(saved))
        control = lt.read_resume_data(resume)
        assert control.trackers and control.url_seeds and control.peers  # it does carry them
        (tmp_path / "dest").mkdir()
        engine.add(meta, tmp_path / "dest", resume=resume)
        assert_bare(engine, meta.data)
        await asyncio.sleep(3)  # libtorrent would have tried them by now (nothing expected)
        assert sinks.total() == 0 and engine.status(meta.id).peers == 0
    finally:
        await engine.close()
        await sinks.close()


def test_bare_torrent_keeps_only_the_info_dict_and_piece_layers(tmp_path):
    meta = make_torrent(tmp_path / "src", "f.bin", 3_000_000,
                        {b"announce": b"http://tracker.example/a", b"comment": b"x",
                         b"url-list": [b"http://seed.example/"], b"nodes": [[b"dht.example", 1]]})
    bare, info = bare_torrent(meta.data)
    decoded = bencodepy.decode(bare)
    assert set(decoded) == {b"info", b"piece layers"}
    assert decoded[b"info"] == bencodepy.decode(meta.data)[b"info"]
    assert parse(bare).info_hashes == meta.info_hashes
