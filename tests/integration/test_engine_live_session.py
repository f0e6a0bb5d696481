"""The libtorrent session a node runs with, read back from the live session.

An engine is started as ``Node._start`` starts it (``Engine(on_event, socks=...)``: bridged,
Tor's SOCKS port as libtorrent's proxy), and what could reach past the bridges is read from
the running session: its settings, its IP filter, the sockets it holds, the addresses it
actually dials, the peer id and client name a peer sees, and whether its peers are in the
peer class the download rate limit applies to (the binding cannot read the peer class filter
back, so that one is measured). Each probe returns what it found wrong, and each is shown to
find something when the live session is changed after start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets

import libtorrent as lt
import psutil
import pytest

from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine
from onionshare_bt.engine.settings import bridge_filter, loopback_filter
from onionshare_bt.errors import TorrentError
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.onion import onion_from_pubkey

#: the settings that keep the session on loopback and anonymous (socks filled in per test)
EXPECTED = {
    "listen_interfaces": "127.0.0.1:0",
    "outgoing_interfaces": "",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "dht_bootstrap_nodes": "",
    "seeding_outgoing_connections": False,
    "anonymous_mode": True,
    "peer_fingerprint": "-XX0000-",
    "handshake_client_version": "",
    "user_agent": "",
    "proxy_type": int(lt.proxy_type_t.socks5),
    "proxy_hostnames": True,
    "proxy_peer_connections": False,
    "proxy_tracker_connections": True,
}

#: address -> what the live IP filter must say (0 admitted, 1 blocked)
ADDRESSES = {
    "127.64.0.9": 0, "127.127.255.254": 0,  # outbound bridge endpoints
    "127.1.0.9": 0,  # inbound bridge sources
    "127.0.0.1": 1,  # tor's SOCKS and control ports, the tracker
    "127.0.0.53": 1, "127.63.255.255": 1, "127.128.0.1": 1,
    "10.0.0.1": 1, "192.168.1.1": 1, "8.8.8.8": 1, "::1": 1, "fe80::1": 1, "2001:db8::1": 1,
}

LIMIT = 1_000_000  # bytes/s, the ratio gate's kind of cap
WINDOW = 3.0


class Recorder:
    """A TCP listener that counts the connections it gets."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.count, self._server = host, 0, 0, None

    async def __aenter__(self) -> Recorder:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, reader, writer) -> None:
        self.count += 1
        writer.close()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


class SocksRecorder(Recorder):
    """Tor's SOCKS port as libtorrent sees it: records each SOCKS5 request's command and
    refuses it (tor supports no UDP ASSOCIATE; there is no one to CONNECT to here)."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[int] = []

    async def _accept(self, reader, writer) -> None:
        self.count += 1
        try:
            _, methods = await asyncio.wait_for(reader.readexactly(2), 5)
            await reader.readexactly(methods)
            writer.write(b"\x05\x00")
            _, command, _ = await asyncio.wait_for(reader.readexactly(3), 5)
            self.commands.append(command)
            refusal = 7 if command != 1 else 1  # command not supported; general failure
            writer.write(bytes([5, refusal, 0, 1]) + bytes(6))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    @property
    def connects(self) -> int:
        return self.commands.count(1)


async def wait_for(predicate, timeout: float, what: str, step: float = 0.05):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := predicate()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(step)
    return value


# -- probes: each returns what it found wrong ([] when nothing) ----------------------------
def settings_problems(engine: Engine, socks: tuple[str, int]) -> list[str]:
    """The live session's settings that differ from what keeps it on loopback."""
    live = engine.session.get_settings()
    want = {**EXPECTED, "proxy_hostname": socks[0], "proxy_port": socks[1]}
    return [f"{key} is {live[key]!r}, not {value!r}" for key, value in want.items()
            if live[key] != value]


def filter_problems(engine: Engine) -> list[str]:
    """Addresses the live IP filter admits or blocks wrongly."""
    flt = engine.session.get_ip_filter()
    wrong = [f"ip filter {'blocks' if want == 0 else 'admits'} {addr}"
             for addr, want in ADDRESSES.items() if flt.access(addr) != want]
    if flt.export_filter() != bridge_filter().export_filter():
        wrong.append(f"ip filter is {flt.export_filter()}")
    return wrong


def socket_problems(engine: Engine) -> list[str]:
    """Sockets of this process bound outside loopback, and the listen socket's address."""
    wrong = []
    listening = False
    for conn in psutil.Process().net_connections("inet"):
        if not conn.laddr or conn.laddr.port == 0:
            continue  # not bound
        if not ipaddress.ip_address(conn.laddr.ip).is_loopback:
            wrong.append(f"socket bound to {conn.laddr.ip}:{conn.laddr.port}")
        if conn.laddr.port == engine.listen_port and conn.status == psutil.CONN_LISTEN:
            listening = True
            if conn.laddr.ip != "127.0.0.1":
                wrong.append(f"listens on {conn.laddr.ip}")
    if not listening:
        wrong.append("no listen socket on the engine's port")
    return wrong


def live_problems(engine: Engine, socks: tuple[str, int]) -> list[str]:
    return settings_problems(engine, socks) + filter_problems(engine) + socket_problems(engine)


async def dialled(engine: Engine, torrent_id: str) -> set[str]:
    """Tell libtorrent itself (not :meth:`Engine.connect`, which refuses them first) to dial
    a listener on 127.0.0.1 (where tor's ports are), one on 127.1.0.9 and one on an outbound
    endpoint; return the hosts that got a connection.

    The outbound endpoint is the one libtorrent must dial: once it did, the others were
    already refused or dialled too (the calls are queued in order, on loopback).
    """
    async with Recorder("127.0.0.1") as tor, Recorder("127.1.0.9") as inbound, \
            Recorder("127.64.0.9") as endpoint:
        handle = next(h for h in engine.session.get_torrents()
                      if str(h.info_hashes().v1) == torrent_id)
        for target in (tor, inbound, endpoint):
            handle.connect_peer(target.address, 0, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not endpoint.count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        # a dial to a blocked address would be as quick as the admitted one: a short grace
        # for it to show (nothing is expected to happen here)
        await asyncio.sleep(0.3)
        return {r.host for r in (tor, inbound, endpoint) if r.count}


async def payload_in_window(engine: Engine, tmp_path, *, legacy_class_filter: bool = False
                            ) -> tuple[int, lt.peer_info]:
    """Download from a plain seeder through a real outbound bridge under a :data:`LIMIT`
    cap; return the payload done :data:`WINDOW` s after the first byte, and the seeder's
    view of the engine as a peer (peer id, client name).

    :param legacy_class_filter: first put loopback back in libtorrent's unlimited local
        peer class on the live session (what it did before ``global_class_filter``)
    """
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(secrets.token_bytes(24 << 20))
    meta = await asyncio.to_thread(create, src / "f.bin")
    seeder = Engine(bridged=False)
    await seeder.start()

    async def dial(onion, port, torrent_id, lane=0):
        return await asyncio.open_connection("127.0.0.1", seeder.listen_port)

    bridges = Bridges(dial, engine.listen_port, info_hashes=engine.info_hashes)
    try:
        if legacy_class_filter:
            flt = lt.ip_filter()
            flt.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
            flt.add_rule("127.0.0.0", "127.255.255.255", 1 << lt.session.local_peer_class_id)
            engine.session.set_peer_class_filter(flt)
        seeder.add(meta, src, seed=True)
        (tmp_path / "out").mkdir()
        engine.add(meta, tmp_path / "out")
        engine.limit_download(LIMIT)
        endpoint = await bridges.outbound(meta.id, onion_from_pubkey(b"\x03" * 32), 6881)
        engine.connect(meta.id, endpoint)
        await wait_for(lambda: engine.status(meta.id).total_done, 30, "the first byte")
        # the seeder's view now: once the download completes, the seeder lets it go
        peers = seeder.session.get_torrents()[0].get_peer_info()
        assert len(peers) == 1, peers
        await asyncio.sleep(WINDOW)  # the rate over this window is what is measured
        return engine.status(meta.id).total_done, peers[0]
    finally:
        await bridges.close()
        await seeder.close()


def peer_problems(done: int, peer: lt.peer_info) -> list[str]:
    """What a peer learns of the engine, and whether the rate cap held over the window."""
    wrong = []
    if done > (WINDOW + 3) * LIMIT:  # the window at the cap, plus a burst
        wrong.append(f"{done / 1e6:.1f} MB in {WINDOW:g} s under a {LIMIT / 1e6:g} MB/s cap")
    pid = peer.pid.to_bytes()
    if not pid.startswith(b"-XX0000-"):
        wrong.append(f"peer id {pid!r}")
    client = peer.client.decode("utf-8", "replace") if isinstance(peer.client, bytes) \
        else peer.client
    if client != "Xtorrent 0.0.0":  # what libtorrent makes of "-XX0000-" and no "v"
        wrong.append(f"client name {client!r}")
    return wrong


# -- the node's engine ---------------------------------------------------------------------
@pytest.fixture
async def node_engine():
    """An engine started as the node starts it, with a recorder as Tor's SOCKS port."""
    async with SocksRecorder() as socks:
        engine = Engine(lambda event: None, socks=socks.address)
        await engine.start()
        try:
            yield engine, socks
        finally:
            await engine.close()


@pytest.fixture
def wanted(tmp_path):
    """A torrent to download (so libtorrent wants peers for it)."""
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "x.bin").write_bytes(secrets.token_bytes(64 * 1024))
    return create(tmp_path / "w" / "x.bin")


async def test_the_live_session_keeps_to_loopback_and_the_bridges(node_engine, wanted, tmp_path):
    engine, socks = node_engine
    assert engine.bridged
    assert live_problems(engine, socks.address) == []
    # the session is set up as a node sets it: only the bridges' ranges are dialled
    (tmp_path / "dl").mkdir()
    engine.add(wanted, tmp_path / "dl")
    # never 127.0.0.1; 127.1.0.0/16 too, as the filter admits it for inbound sources and
    # libtorrent's filter cannot tell directions apart (nothing of the node listens there)
    assert await dialled(engine, wanted.id) == {"127.64.0.9", "127.1.0.9"}
    for host in ("127.0.0.1", "127.1.0.9", "8.8.8.8", "::1", "example.com"):
        with pytest.raises(TorrentError):
            engine.connect(wanted.id, (host, 6881))
    # peer connections bypass the proxy, and there is no tracker: no CONNECT ever. At start
    # libtorrent asks the proxy once for a UDP ASSOCIATE (for its UDP socket), which tor
    # refuses (command not supported) and which is not asked again
    await wait_for(lambda: socks.commands, 5, "libtorrent's UDP ASSOCIATE")
    assert socks.commands == [3]
    assert live_problems(engine, socks.address) == []


async def test_a_peer_sees_no_client_name_and_the_rate_cap_holds(node_engine, tmp_path):
    engine, socks = node_engine
    done, peer = await payload_in_window(engine, tmp_path)
    assert peer_problems(done, peer) == []
    assert socks.connects == 0


# -- the probes can fail ---------------------------------------------------------------------
# (the probes that turn DHT, LSD, UPnP, NAT-PMP or a wildcard listener on make the session
# reach out: they live in test_engine_live_session_probes.py, which leaks on purpose)


async def test_a_loopback_wide_ip_filter_is_found_and_dials_tors_port(node_engine, wanted,
                                                                       tmp_path):
    engine, socks = node_engine
    engine.session.set_ip_filter(loopback_filter())
    assert "ip filter admits 127.0.0.1" in filter_problems(engine)
    (tmp_path / "dl").mkdir()
    engine.add(wanted, tmp_path / "dl")
    assert "127.0.0.1" in await dialled(engine, wanted.id)


async def test_peers_through_the_proxy_are_found(node_engine, wanted, tmp_path):
    engine, socks = node_engine
    engine.session.apply_settings({"proxy_peer_connections": True})
    (tmp_path / "dl").mkdir()
    engine.add(wanted, tmp_path / "dl")
    assert await dialled(engine, wanted.id) == set()  # the endpoint was not dialled directly
    await wait_for(lambda: socks.connects, 5, "a CONNECT through the proxy")


async def test_loopback_peers_in_the_local_class_escape_the_cap_and_are_found(node_engine,
                                                                               tmp_path):
    engine, _ = node_engine
    engine.session.apply_settings({"peer_fingerprint": "-LT2110-"})
    done, peer = await payload_in_window(engine, tmp_path, legacy_class_filter=True)
    problems = peer_problems(done, peer)
    assert any("MB in" in p for p in problems), problems
    assert any(p.startswith("peer id") for p in problems), problems
    assert "client name 'libtorrent 2.1.1'" in problems, problems
