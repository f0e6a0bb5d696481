"""HTTP over Tor (``tor/http.py``) as the node's parts use it, through the loopback stand-in
for tor's SOCKS port (``fake_tor.FakeTor``): names reach the SOCKS port unresolved, each
share gets its own circuit-isolation credentials, a dead SOCKS port is an unreachable
onion named as such, after retrying until the deadline, and a tor restarted in place (a new
SOCKS port) is followed."""

from __future__ import annotations

import socket
import time

import pytest
from aiohttp import web

from onionshare_bt.errors import OnionUnreachable
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.http import OnionHTTP, isolation_key

from .fake_tor import FakeTor

ONION = onion_from_pubkey(b"\x21" * 32)


@pytest.fixture
async def served():
    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=b"ok " + request.path.encode())

    app = web.Application()
    app.router.add_get("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with FakeTor() as tor:
        tor.routes[f"{ONION}.onion"] = site._server.sockets[0].getsockname()[1]
        http = OnionHTTP(tor.address)
        await http.start()
        try:
            yield tor, http
        finally:
            await http.close()
            await runner.cleanup()


async def test_two_shares_behind_one_onion_travel_on_two_isolated_circuits(served):
    tor, http = served
    one, two = (f"http://{ONION}.onion/private/{t * 22}" for t in "ab")
    assert await http.get(one, 10, 1024) == b"ok /private/" + b"a" * 22
    assert await http.get(two, 10, 1024) == b"ok /private/" + b"b" * 22
    assert tor.dialled == [f"{ONION}.onion"] * 2  # the name, unresolved, for tor
    assert tor.usernames == [isolation_key(one), isolation_key(two)]
    assert len(set(tor.usernames)) == 2 and not any("a" * 22 in u for u in tor.usernames)


async def test_a_dead_socks_port_is_an_unreachable_onion_after_the_deadline():
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = OnionHTTP(("127.0.0.1", port))
    await http.start()
    started = time.monotonic()
    try:
        with pytest.raises(OnionUnreachable) as info:
            await http.get(f"http://{ONION}.onion/node", 2.0, 1024)
    finally:
        await http.close()
    assert 1.0 < time.monotonic() - started < 6.0  # retried, then given up at the deadline
    assert f"SOCKS port 127.0.0.1:{port}" in info.value.message
    assert "\n" not in info.value.message


class Watched:
    """What the node's parts hold of its tor: its SOCKS address, told how streams went."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.socks_address = address
        self.events: list[tuple[str, str]] = []

    def reached(self, onion: str) -> None:
        self.events.append(("reached", onion))

    async def failed(self, onion: str) -> None:
        self.events.append(("failed", onion))


async def test_a_tor_restarted_in_place_is_followed_to_its_new_socks_port(served):
    before, _ = served
    async with FakeTor() as after:
        after.routes = before.routes
        tor = Watched(before.address)
        http = OnionHTTP(tor)
        await http.start()
        try:
            url = f"http://{ONION}.onion/private/{'c' * 22}"
            assert await http.get(url, 10, 1024) == b"ok /private/" + b"c" * 22
            tor.socks_address = after.address  # TorClient.restart: the same object, a new port
            await http.close()  # as the node does after a restart: pooled connections go
            await http.start()
            assert await http.get(url, 10, 1024) == b"ok /private/" + b"c" * 22
        finally:
            await http.close()
        assert before.dialled.count(f"{ONION}.onion") == 1  # the first request only
        assert after.dialled == [f"{ONION}.onion"]


async def test_each_stream_to_an_onion_is_reported_and_each_failed_attempt_before_the_next(
        served):
    """What lets the node purge tor's stale onion state (tor/reach.py) between attempts."""
    fake, _ = served
    tor = Watched(fake.address)
    http = OnionHTTP(tor)
    await http.start()
    try:
        url = f"http://{ONION}.onion/private/{'d' * 22}"
        assert await http.get(url, 10, 1024) == b"ok /private/" + b"d" * 22
        assert tor.events == [("reached", ONION)]
        routes, fake.routes = dict(fake.routes), {}  # the service's tor is gone: 0xF0
        with pytest.raises(OnionUnreachable):
            await http.get(url.replace("d" * 22, "e" * 22), 2.5, 1024)
        failed = [e for e in tor.events[1:] if e == ("failed", ONION)]
        assert len(failed) >= 2 and len(failed) == len(tor.events) - 1  # before each retry
        fake.routes = routes  # back: a new stream (another share, so no pooled one) opens
        assert (await http.get(url.replace("d" * 22, "f" * 22), 10, 1024)).endswith(b"f" * 22)
        assert tor.events[-1] == ("reached", ONION)
    finally:
        await http.close()
