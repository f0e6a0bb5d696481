"""TrackerClient against a hostile tracker: a real aiohttp server on 127.0.0.1, reached
through a stand-in for tor's SOCKS port (``fake_tor.FakeTor``) under onion names, exactly
the way the client reaches onions in production.

The hostile tracker sets cookies for every onion, redirects elsewhere, sends 100 MB bodies,
IP-address peers (compact and in dicts), compressed and malformed replies. Each test that
is cheap to turn around has a positive control: the same attack against a client without
the defence, which must succeed.
"""

from __future__ import annotations

import asyncio
import gzip
import time

import aiohttp
import bencodepy
import pytest
from aiohttp import web
from aiohttp_socks import ProxyConnector

from onionshare_bt.errors import MalformedReply, NotFound, Refused
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core
from onionshare_bt.tracker.client import TrackerClient
from onionshare_bt.uri import ShareURI

from .fake_tor import FakeTor

ONION_A = onion_from_pubkey(b"\x0a" * 32)
ONION_B = onion_from_pubkey(b"\x0b" * 32)
ELSEWHERE = onion_from_pubkey(b"\x0c" * 32)
PEER = onion_from_pubkey(b"\x0d" * 32)
HUNDRED_MB = 100 * 1024 * 1024
PARAMS = {"info_hash": b"\x01" * 20, "peer_id": b"\x02" * 20, "ip": f"{PEER}.onion",
          "port": 6881, "uploaded": 0, "downloaded": 0, "left": 0}


def token(name: str) -> str:
    return (name + "x" * 22)[:22]


def good_reply() -> bytes:
    return core.reply([(PEER, 6881)], 60, 1, 0)


class Hostile:
    """The hostile tracker: behaviour picked by the share token in the path."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []  # the Cookie header of each request, in order
        self.encodings: list[str | None] = []
        self.sent = 0  # body bytes the last huge reply managed to write
        self.huge_done = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/private/{token}/announce", self._announce)
        app.router.add_route("*", "/private/{token}", self._announce)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _announce(self, request: web.Request) -> web.StreamResponse:
        self.cookies.append(request.headers.get("Cookie"))
        self.encodings.append(request.headers.get("Accept-Encoding"))
        kind = request.match_info["token"].rstrip("x")
        if kind == "cookie":
            response = web.Response(body=good_reply())
            response.headers["Set-Cookie"] = "track=node-42; Domain=onion; Path=/"
            return response
        if kind == "redirect":
            raise web.HTTPFound(f"http://{ELSEWHERE}.onion/private/{token('plain')}/announce")
        if kind in ("huge", "hugecl"):
            return await self._huge(request, declared=kind == "hugecl")
        if kind == "compact":
            return web.Response(body=bencodepy.encode(
                {b"interval": 60, b"peers": bytes([10, 0, 0, 1, 0x1A, 0xE1]) * 10}))
        if kind == "ippeers":
            return web.Response(body=bencodepy.encode({b"interval": 60, b"peers": [
                {b"ip": b"10.0.0.1", b"port": 6881}, {b"ip": b"::1", b"port": 6881},
                {b"ip": b"tracker.example.com", b"port": 6881},
                {b"ip": f"{PEER}.onion".encode(), b"port": 6881}]}))
        if kind == "garbage":
            return web.Response(body=b"d8:intervali60e5:peersl")
        if kind == "gzip":
            response = web.Response(body=gzip.compress(good_reply()))
            response.headers["Content-Encoding"] = "gzip"
            return response
        if kind == "forbidden":
            return web.json_response({"error": "go away\x1b[2J\nnow"}, status=403)
        if kind == "failure":
            return web.Response(body=core.failure("no\x1b]0;pwned\x07 way\r\nX"))
        return web.Response(body=good_reply())

    async def _huge(self, request: web.Request, declared: bool) -> web.StreamResponse:
        response = web.StreamResponse()
        if declared:
            response.content_length = HUNDRED_MB
        self.sent = 0
        chunk = b"d" * (256 * 1024)
        try:
            await response.prepare(request)
            while self.sent < HUNDRED_MB:
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.huge_done.set()
        return response


@pytest.fixture
async def hostile():
    server = Hostile()
    await server.start()
    async with FakeTor() as tor:
        for onion in (ONION_A, ONION_B):
            tor.routes[f"{onion}.onion"] = server.port
        client = TrackerClient(tor.address)
        await client.start()
        try:
            yield server, tor, client
        finally:
            await client.close()
            await server.close()


def uri(onion: str, kind: str) -> ShareURI:
    return ShareURI(onion, "private", token(kind))


async def test_a_normal_announce_through_the_fake_tor_works(hostile):
    _, tor, client = hostile
    reply = await client.announce(uri(ONION_A, "plain"), PARAMS, 10)
    assert reply.peers == ((PEER, 6881),)
    assert tor.dialled == [f"{ONION_A}.onion"]


async def test_a_cookie_for_every_onion_is_never_sent_back(hostile):
    server, _, client = hostile
    await client.announce(uri(ONION_A, "cookie"), PARAMS, 10)
    await client.announce(uri(ONION_B, "plain"), PARAMS, 10)
    await client.get(f"http://{ONION_B}.onion/private/{token('plain')}", 10, 1024)
    await client.announce(uri(ONION_A, "plain"), PARAMS, 10)
    assert server.cookies == [None, None, None, None]


async def test_positive_control_a_shared_cookie_jar_carries_the_supercookie(hostile):
    server, tor, _ = hostile
    connector = ProxyConnector.from_url(f"socks5://127.0.0.1:{tor.port}", rdns=True)
    async with aiohttp.ClientSession(connector=connector) as http:  # aiohttp's default jar
        async with http.get(f"{uri(ONION_A, 'cookie').announce_url}") as resp:
            await resp.read()
        async with http.get(f"{uri(ONION_B, 'plain').announce_url}") as resp:
            await resp.read()
    assert server.cookies == [None, "track=node-42"]


async def test_a_redirect_is_refused_and_never_followed(hostile):
    _, tor, client = hostile
    with pytest.raises(Refused) as info:
        await client.announce(uri(ONION_A, "redirect"), PARAMS, 10)
    assert "redirect (HTTP 302)" in info.value.message
    assert "\n" not in info.value.message
    assert f"{ELSEWHERE}.onion" not in tor.dialled
    assert tor.dialled == [f"{ONION_A}.onion"]


@pytest.mark.parametrize("kind", ["huge", "hugecl"], ids=["chunked", "content-length"])
async def test_a_100_mb_reply_is_refused_at_the_cap_without_reading_it_all(hostile, kind):
    server, _, client = hostile
    started = time.monotonic()
    with pytest.raises(MalformedReply, match="larger than"):
        await client.announce(uri(ONION_A, kind), PARAMS, 30)
    elapsed = time.monotonic() - started
    await asyncio.wait_for(server.huge_done.wait(), 10)
    # what the server could push before the client hung up: the cap plus socket buffers
    assert server.sent < 32 * 1024 * 1024, server.sent
    assert elapsed < 5.0
    if kind == "hugecl":  # the declared length alone refuses it
        assert server.sent < 16 * 1024 * 1024


async def test_compact_ip_peers_refuse_the_reply(hostile):
    _, _, client = hostile
    with pytest.raises(MalformedReply, match="compact"):
        await client.announce(uri(ONION_A, "compact"), PARAMS, 10)


async def test_ip_and_hostname_peers_in_dicts_are_dropped(hostile):
    _, _, client = hostile
    reply = await client.announce(uri(ONION_A, "ippeers"), PARAMS, 10)
    assert reply.peers == ((PEER, 6881),)


async def test_malformed_bencode_is_a_malformed_reply(hostile):
    _, _, client = hostile
    with pytest.raises(MalformedReply) as info:
        await client.announce(uri(ONION_A, "garbage"), PARAMS, 10)
    assert info.value.message == "tracker reply is not bencoded"


async def test_no_compression_is_asked_for_nor_decoded(hostile):
    server, _, client = hostile
    with pytest.raises(MalformedReply, match="compressed"):
        await client.announce(uri(ONION_A, "gzip"), PARAMS, 10)
    assert server.encodings == [None]


async def test_error_texts_come_back_on_one_line_without_controls(hostile):
    _, _, client = hostile
    with pytest.raises(Refused) as info:
        await client.get(f"http://{ONION_A}.onion/private/{token('forbidden')}", 10, 1024)
    assert info.value.message.endswith("answered HTTP 403: go away[2Jnow")
    with pytest.raises(Refused) as info:
        await client.announce(uri(ONION_A, "failure"), PARAMS, 10)
    assert info.value.message == "tracker refused: no]0;pwned wayX"


async def test_an_unknown_onion_is_unreachable_not_a_crash(hostile):
    _, _, client = hostile
    with pytest.raises(Exception) as info:
        await client.get(f"http://{ELSEWHERE}.onion/private/{token('plain')}", 1.5, 1024)
    assert not isinstance(info.value, NotFound)
    assert "descriptor not found" in str(info.value)  # tor's 0xF0, named
