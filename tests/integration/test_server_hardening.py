"""Every server obt puts behind an onion answers without ``Server`` and ``Date`` headers,
aiohttp's own parser refusals included, and logs malformed requests quietly.

Real servers on 127.0.0.1: the tracker, a mirror's tracker (with its public catalogue) and
the identity onion's NodeServer, talked to over raw sockets so any bytes can be sent. The
positive control is a plain aiohttp runner, which stamps both headers.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from onionshare_bt.httpserve import NOT_FOUND_BODY
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker.server import Served, TrackerServer
from onionshare_bt.trust.server import NodeServer

SEED = onion_from_pubkey(b"\x07" * 32)
TOKEN = "t" * 32
INFO_HASH = b"\x11" * 20


async def exchange(port: int, data: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``data`` as is, read until the server closes: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    if not raw:
        return None, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


def get(path: str, extra: bytes = b"") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x.onion\r\nConnection: close\r\n".encode()
            + extra + b"\r\n")


#: requests aiohttp's parser refuses before any handler runs
MALFORMED = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /private/" + TOKEN.encode() + b"?\xff1.2.3.4 HTTP/1.1\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
]


def assert_bare(status, headers, body) -> None:
    assert status is not None
    assert "date" not in headers, headers
    assert "server" not in headers, headers
    assert b"aiohttp" not in body.lower() and b"python" not in body.lower()


@pytest.fixture
async def tracker_port():
    server = TrackerServer(interval=60, public=(TOKEN, lambda: {"items": []}))
    await server.start()
    port = await server.listen()
    server.attach(port, Served("x", TOKEN, b"d4:infodee", (INFO_HASH,), ((SEED, 80),)))
    yield port
    await server.close()


@pytest.fixture
async def node_port():
    server = NodeServer(lambda: {"onion": SEED}, lambda: [], TOKEN)
    port = await server.start()
    yield port
    await server.close()


@pytest.mark.parametrize("path", [f"/private/{TOKEN}", f"/public/{TOKEN}", "/nowhere",
                                  f"/private/{TOKEN}/announce?info_hash=x"])
async def test_tracker_replies_carry_no_date_nor_server(tracker_port, path):
    status, headers, body = await exchange(tracker_port, get(path))
    assert status in (200, 404)
    assert_bare(status, headers, body)


@pytest.mark.parametrize("path", ["/node", f"/public/{TOKEN}", "/nowhere"])
async def test_node_server_replies_carry_no_date_nor_server(node_port, path):
    status, headers, body = await exchange(node_port, get(path))
    assert status in (200, 404)
    assert_bare(status, headers, body)


@pytest.mark.parametrize("data", MALFORMED, ids=["tls", "long-line", "bad-bytes", "method",
                                                 "many-headers"])
@pytest.mark.parametrize("which", ["tracker", "node"])
async def test_parser_refusals_are_bare_and_fixed(tracker_port, node_port, which, data):
    port = tracker_port if which == "tracker" else node_port
    status, headers, body = await exchange(port, data)
    assert status is not None and 400 <= status < 500
    assert_bare(status, headers, body)
    assert body.decode().startswith(f"{status}: ")
    assert b"1.2.3.4" not in body and TOKEN.encode() not in body


async def test_node_server_logs_malformed_requests_quietly(node_port, caplog):
    caplog.set_level(logging.DEBUG)
    await exchange(node_port, MALFORMED[2])
    ours = [r for r in caplog.records if r.name.startswith("onionshare_bt")]
    assert any("malformed HTTP request" in r.getMessage() for r in ours)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert TOKEN not in caplog.text and "1.2.3.4" not in caplog.text


async def test_the_404_is_the_same_everywhere(tracker_port, node_port):
    for port in (tracker_port, node_port):
        status, _, body = await exchange(port, get("/nowhere"))
        assert (status, body) == (404, NOT_FOUND_BODY.encode())


async def test_positive_control_plain_aiohttp_stamps_date():
    async def hello(request):
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        _, headers, _ = await exchange(port, get("/"))
        assert "date" in headers
        status, headers, _ = await exchange(port, MALFORMED[0])
        assert status == 400 and "date" in headers
    finally:
        await runner.cleanup()
