"""HTTP over Tor (``tor/http.py``) as the node's parts use it, through the loopback stand-in
for tor's SOCKS port (``fake_tor.FakeTor``): names reach the SOCKS port unresolved, each
share gets its own circuit-isolation credentials, a dead SOCKS port is an unreachable
onion named as such, after retrying until the deadline, and a tor restarted in place (a new
SOCKS port) is followed."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

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


async def test_a_tor_restarted_in_place_is_followed_to_its_new_socks_port(served):
    before, _ = served
    async with FakeTor() as after:
        after.routes = before.routes
        tor = SimpleNamespace(socks_address=before.address)  # what the node's parts hold
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
