"""The tor layer against a real private Tor network on 127.0.0.1 (no mocks).

One test network for the module (ports 24600-24616, apart from conftest's session network), two client tors joining it, an
onion service in front of a loopback echo server, and SOCKS dialling between them.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from onionshare_bt.errors import (
    BadPath,
    OnionUnreachable,
    TorBootstrapFailed,
    TorError,
    TorMissing,
)
from onionshare_bt.tor import socks
from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network
from onionshare_bt.onion import is_onion, onion_from_pubkey
from onionshare_bt.testnet import Testnet

pytestmark = [pytest.mark.tor, pytest.mark.timeout(240)]
#: async tests share the module's event loop with the module-scoped clients
aio = pytest.mark.asyncio(loop_scope="module")

from .conftest import BASE_PORT, RELAYS


@pytest.fixture(scope="module")
def net(session_net) -> Testnet:
    """The session's network (conftest checks that ``down`` leaves no process behind)."""
    return session_net


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(net: Testnet,
                  tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[TorClient, TorClient]]:
    network = Network.load(net.network_file)
    root = tmp_path_factory.mktemp("clients")
    a = TorClient(root / "a", network, bootstrap_timeout=45)
    b = TorClient(root / "b", network, bootstrap_timeout=45)
    try:
        await asyncio.gather(a.start(), b.start())
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())
    assert not a.is_alive() and not b.is_alive()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def echo() -> AsyncIterator[tuple[str, int]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        await server.wait_closed()


async def _echo_through(client: TorClient, address: str, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    reader, writer = await socks.open_connection(
        client.socks_address, f"{address}.onion", 80, timeout=30, retry_until=loop.time() + 45)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 30)
    finally:
        writer.close()


# -- the network ------------------------------------------------------------------------

def test_testnet_is_up(net: Testnet) -> None:
    status = net.status()
    assert status["up"] is True
    assert status["network_file"] == str(net.network_file)
    roles = [p["role"] for p in status["processes"]]
    assert roles.count("authority") == 3 and roles.count("relay") == RELAYS
    assert all(p["alive"] for p in status["processes"])
    # detached: their own sessions, so they outlive `obt testnet up`
    assert all(os.getsid(p["pid"]) != os.getsid(0) for p in status["processes"])
    # how fast it came up is a benchmark's figure, not a test's: printed, not asserted
    print(f"\nthe shared test network was usable in {net.up_seconds:.1f} s")  # type: ignore


def test_up_again_reuses_the_running_network(net: Testnet) -> None:
    pids = [p["pid"] for p in net.status()["processes"]]
    started = time.monotonic()
    assert net.up() == net.network_file
    assert time.monotonic() - started < 1
    assert [p["pid"] for p in net.status()["processes"]] == pids


def test_network_file(net: Testnet) -> None:
    data = json.loads(net.network_file.read_text())
    assert data["version"] == 1
    network = Network.load(net.network_file)
    assert network.name == data["name"] and not network.is_public
    keys = [k for k, _ in network.client_options]
    assert keys.count("DirAuthority") == 3 and ("TestingTorNetwork", "1") in network.client_options
    assert ("AssumeReachable", "1") in network.relay_options
    assert json.loads(network.to_json()) == data


def test_network_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BadPath, match="no network file"):
        Network.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BadPath, match="not valid JSON"):
        Network.load(tmp_path / "bad.json")
    (tmp_path / "wrong.json").write_text('{"version": 1, "name": "x", "client_options": [[1]]}')
    with pytest.raises(BadPath):
        Network.load(tmp_path / "wrong.json")
    assert Network.public().is_public and Network.public().client_options == ()


# -- clients and onion services ---------------------------------------------------------

@aio
async def test_clients_bootstrap(clients: tuple[TorClient, TorClient]) -> None:
    for client in clients:
        assert client.is_alive()
        assert Path(f"/proc/{client.pid}").exists()
        status = await client.bootstrap_status()
        assert status["progress"] == 100 and status["tag"] == "done"
        host, port = client.socks_address
        assert host == "127.0.0.1" and port > 0
        assert (client.data_dir.stat().st_mode & 0o777) == 0o700


@aio
async def test_onion_echo(clients: tuple[TorClient, TorClient], echo: tuple[str, int]) -> None:
    a, b = clients
    address, key = await a.add_onion({80: echo})
    try:
        assert is_onion(address) and key.startswith("ED25519-V3:")
        payload = os.urandom(32 * 1024)
        assert await _echo_through(b, address, payload) == payload
    finally:
        await a.remove_onion(address)


@aio
async def test_recreated_onion_keeps_its_address(clients: tuple[TorClient, TorClient],
                                                 echo: tuple[str, int]) -> None:
    a, b = clients
    address, key = await a.add_onion({80: echo})
    await a.remove_onion(address)
    again, same_key = await a.add_onion({80: echo}, key=key)
    try:
        assert again == address and same_key == key
        assert await _echo_through(b, again, b"still here") == b"still here"
    finally:
        await a.remove_onion(again)


@aio
async def test_a_renewed_onion_is_published_afresh_at_the_same_address(
        clients: tuple[TorClient, TorClient], echo: tuple[str, int]) -> None:
    """What :mod:`onionshare_bt.tor.rescue` does for a service whose descriptor reached no
    HSDir: removed and added again in turn, new descriptors uploaded, reachable again."""
    a, b = clients
    address, _key = await a.add_onion({80: echo})
    try:
        assert await a.wait_published(address, 120)
        assert await _echo_through(b, address, b"before") == b"before"
        a.renew(address)
        async with asyncio.timeout(30):  # removed in its turn: its uploads count from nought
            while a.publication([address])["published"]:
                await asyncio.sleep(0.05)
        assert await a.wait_published(address, 120), a.publication([address])
        assert await _echo_through(b, address, b"after") == b"after"
        with pytest.raises(TorError, match="no such onion service"):
            a.renew(onion_from_pubkey(bytes(32)))
    finally:
        await a.remove_onion(address)


@aio
async def test_add_onion_rejects_a_malformed_key(clients: tuple[TorClient, TorClient],
                                                 echo: tuple[str, int]) -> None:
    with pytest.raises(TorError, match="not an onion service key"):
        await clients[0].add_onion({80: echo}, key="RSA1024:abcd")
    with pytest.raises(TorError) as caught:
        await clients[0].add_onion({80: echo}, key="ED25519-V3:bm90YWtleQ==")
    assert "bm90YWtleQ" not in str(caught.value)  # keys never reach messages


@aio
async def test_unpublished_onion_is_unreachable(clients: tuple[TorClient, TorClient]) -> None:
    # A real key (a random one is not always a valid ed25519 point: tor answers 0xF6).
    nowhere = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"  # not on our network
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OnionUnreachable) as caught:
        await socks.open_connection(clients[1].socks_address, nowhere, 80, timeout=15,
                                    retry_until=started + 6)
    assert loop.time() - started < 25
    assert isinstance(caught.value, socks.SocksError) and caught.value.code == 0xF0
    assert "descriptor not found" in caught.value.message


# -- failures ---------------------------------------------------------------------------

def test_tor_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TorMissing):
        TorClient(tmp_path, Network.public(), tor_binary=str(tmp_path / "no" / "tor"))
    monkeypatch.setenv("OBT_TOR", "obt-no-such-tor")
    with pytest.raises(TorMissing, match="obt-no-such-tor"):
        TorClient(tmp_path, Network.public())
    with pytest.raises(TorMissing):
        Testnet(tmp_path / "net", base_port=BASE_PORT + 100).up()
    assert not (tmp_path / "net" / "state.json").exists()


@aio
async def test_bootstrap_failure_is_reported_and_cleaned_up(tmp_path: Path) -> None:
    dead = Network("dead", client_options=(
        ("TestingTorNetwork", "1"),
        ("DirAuthority", f"dead orport=1 no-v2 v3ident={'A' * 40} 127.0.0.1:1 {'B' * 40}"),
    ))
    client = TorClient(tmp_path / "tor", dead, bootstrap_timeout=3)
    with pytest.raises(TorBootstrapFailed, match="did not bootstrap within 3 s"):
        await client.start()
    assert not client.is_alive()


@aio
async def test_socks_retries_transient_errors_only() -> None:
    """A loopback SOCKS5 server that answers 0xF0 twice, then connects and echoes."""
    replies = [0xF0, 0xF0, 0x00, 0xF4]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(3)
        writer.write(b"\x05\x00")
        head = await reader.readexactly(5)
        await reader.readexactly(head[4] + 2)
        code = replies.pop(0)
        writer.write(bytes([5, code, 0, 1, 127, 0, 0, 1, 0, 80]))
        if code == 0:
            writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy = server.sockets[0].getsockname()[:2]
    target = onion_from_pubkey(os.urandom(32))
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        reader, writer = await socks.open_connection(proxy, target, 80, timeout=5,
                                                     retry_until=started + 10)
        assert 1.4 <= loop.time() - started < 5  # backoff 0.5 s, then 1 s
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        with pytest.raises(socks.SocksError, match="client authorization") as caught:
            await socks.open_connection(proxy, target, 80, retry_until=loop.time() + 10)
        assert caught.value.code == 0xF4  # not transient: no retry
    finally:
        server.close()
        await server.wait_closed()
