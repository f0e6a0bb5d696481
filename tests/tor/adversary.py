"""A hostile party on the private network: its own tor, its own onions, its own servers.

The tests play every kind of adversary a node meets (a share handing out a crafted .torrent,
a tracker with poisoned replies, a BitTorrent peer speaking garbage, a trusted node with a
hostile catalogue) through real onion services of a tor of the adversary's own, so the node
under test meets them exactly as it would on the Tor network: through its own tor, by onion
address. The adversary runs on an event loop in a thread of the test process; tests call it
synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp_socks import ProxyConnector

from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network

PEER_PORT = 6881
StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Adversary:
    """Own one tor client and the onions and servers published on it.

    :param data_dir: the adversary's tor DataDirectory
    :param network_file: the private network to join
    """

    def __init__(self, data_dir: Path, network_file: Path) -> None:
        self._data_dir = Path(data_dir)
        self._network = Network.load(network_file)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="adversary",
                                        daemon=True)
        self.tor: TorClient | None = None
        self._cleanup: list[Callable[[], Awaitable[None]]] = []
        #: every HTTP request any of its onions received: (onion, method, path_qs, headers)
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []

    # -- lifetime -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self.tor = TorClient(self._data_dir, self._network, bootstrap_timeout=90)
        self.call(self.tor.start())

    def close(self) -> None:
        async def down():
            for step in reversed(self._cleanup):
                try:
                    await step()
                except Exception:  # tear down the rest regardless
                    pass
            if self.tor is not None:
                await self.tor.close()

        try:
            self.call(down(), timeout=60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def call(self, coro: Awaitable, timeout: float = 120):
        """Run ``coro`` on the adversary's loop and return its result."""
        future: Future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def request(self, method: str, url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None, tries: int = 10
                ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request through the adversary's tor, as any client would make it (no
        cookies kept, no redirect followed); retried while the onion is not reachable yet.

        :returns: status, headers, body
        """
        return self.call(self._request(method, url, data, headers or {}, tries))

    async def _request(self, method, url, data, headers, tries):
        host, port = self.tor.socks_address
        connector = ProxyConnector.from_url(f"socks5://{host}:{port}", rdns=True)
        async with aiohttp.ClientSession(connector=connector,
                                         cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(tries):
                try:
                    async with http.request(method, url, data=data, headers=headers,
                                            allow_redirects=False,
                                            timeout=aiohttp.ClientTimeout(total=60)) as resp:
                        return resp.status, dict(resp.headers), await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(1)
        raise AssertionError(f"the adversary could not reach {url}")

    # -- onions -----------------------------------------------------------------------------
    def onion(self, http: web.Application | None = None,
              peer: StreamHandler | None = None) -> str:
        """Publish an onion serving ``http`` on port 80 and ``peer`` on port 6881.

        :returns: the onion address, without ``.onion``
        """
        return self.call(self._onion(http, peer))

    async def _onion(self, http, peer) -> str:
        ports = {}
        if http is not None:
            name: dict[str, str] = {}
            http.middlewares.append(self._recorder(name))
            runner = web.AppRunner(http, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._cleanup.append(runner.cleanup)
            ports[80] = ("127.0.0.1", site._server.sockets[0].getsockname()[1])
        if peer is not None:
            server = await asyncio.start_server(peer, "127.0.0.1", 0)
            self._cleanup.append(_closer(server))
            ports[PEER_PORT] = ("127.0.0.1", server.sockets[0].getsockname()[1])
        address, _ = await self.tor.add_onion(ports, await_publication=True)
        if http is not None:
            name["onion"] = address
        return address

    def _recorder(self, name: dict[str, str]):
        @web.middleware
        async def record(request: web.Request, handler):
            self.requests.append((name.get("onion", ""), request.method, request.path_qs,
                                  dict(request.headers)))
            return await handler(request)

        return record


def _closer(server: asyncio.base_events.Server):
    async def close():
        server.close()
        await server.wait_closed()

    return close
