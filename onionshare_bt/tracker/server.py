"""The node's embedded HTTP tracker (aiohttp), on 127.0.0.1 behind the onion services.

Each share gets a listener of its own, and its onion services point their port 80 there, so
a request that arrives through one share's onion can only ever see that share: knowing
another share's token does not link the two. Routes:

- ``GET /private/<token>``: the share's .torrent (bencoded)
- ``GET /private/<token>/announce``: BEP 3 announce, onion peers only

Anything else, including a wrong token, is the same plain 404. No ``Server`` header.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

from . import core

log = logging.getLogger(__name__)

NOT_FOUND_BODY = "404: Not Found"


@dataclasses.dataclass
class Served:
    """A share as the tracker serves it.

    :param seeders: the share's own onions with their peer port, always listed
    """

    torrent_id: str
    token: str = dataclasses.field(repr=False)
    torrent: bytes = dataclasses.field(repr=False)
    info_hashes: tuple[bytes, ...]
    seeders: tuple[tuple[str, int], ...] = ()


def _not_found() -> web.Response:
    return web.Response(status=404, text=NOT_FOUND_BODY)


async def _strip_server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.pop("Server", None)


class TrackerServer:
    """Serve shares, each on its own loopback listener.

    :param interval: the announce interval we ask peers for
    :param clock: seconds, monotonic (injectable for tests)
    """

    def __init__(self, interval: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self.swarm = core.Swarm(ttl=interval * 3 + 30)
        self._by_port: dict[int, Served] = {}
        self._sites: dict[str, list[web.TCPSite]] = {}
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=4096)
        app.on_response_prepare.append(_strip_server_header)
        app.router.add_get("/private/{token}", self._torrent)
        app.router.add_get("/private/{token}/announce", self._announce)
        app.router.add_route("*", "/{tail:.*}", self._fallback)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(self, share: Served) -> int:
        """Open a listener for ``share``; returns its port on 127.0.0.1."""
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self._by_port[port] = share
        self._sites.setdefault(share.torrent_id, []).append(site)
        self.swarm.set_fixed(share.info_hashes[0], list(share.seeders))
        return port

    def set_seeders(self, torrent_id: str, seeders: list[tuple[str, int]]) -> None:
        """Name the share's own onions, listed to every announcer as seeders."""
        for share in self._by_port.values():
            if share.torrent_id == torrent_id:
                share.seeders = tuple(seeders)
                self.swarm.set_fixed(share.info_hashes[0], list(seeders))

    async def withdraw(self, torrent_id: str) -> None:
        """Stop serving a share: its listeners close and its swarm is forgotten."""
        for site in self._sites.pop(torrent_id, []):
            port = site._server.sockets[0].getsockname()[1] if site._server else None
            share = self._by_port.pop(port, None)
            if share is not None:
                self.swarm.drop(share.info_hashes[0])
            await site.stop()

    def _share(self, request: web.Request) -> Served | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        share = self._by_port.get(sockname[1]) if sockname else None
        if share is None:
            return None
        token = request.match_info.get("token", "")
        if not hmac.compare_digest(token.encode(), share.token.encode()):
            return None
        return share

    async def _torrent(self, request: web.Request) -> web.Response:
        share = self._share(request)
        if share is None:
            return _not_found()
        return web.Response(body=share.torrent, content_type="application/x-bittorrent")

    async def _announce(self, request: web.Request) -> web.Response:
        share = self._share(request)
        if share is None:
            return _not_found()
        try:
            announce = core.parse_announce(request.rel_url.raw_query_string)
        except core.AnnounceError as exc:
            return self._bencoded(core.failure(str(exc)))
        if announce.info_hash not in share.info_hashes:
            return self._bencoded(core.failure("unknown info_hash"))
        key = share.info_hashes[0]
        announce = dataclasses.replace(announce, info_hash=key)
        peers = self.swarm.announce(announce, self._clock())
        complete, incomplete = self.swarm.counts(key)
        return self._bencoded(core.reply(peers, self.interval, complete, incomplete))

    @staticmethod
    def _bencoded(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    async def _fallback(self, request: web.Request) -> web.Response:
        return _not_found()
