"""What a node serves on its identity onion: ``/node`` and its public catalogue.

- ``GET /node``: ``{"obt", "protocol", "onion", "catalogue", "trusts"?}`` as JSON; ``trusts``
  only when the owner publishes the trust list (the default).
- ``GET /public/<token>``: ``{"node", "items": [{name, size, files, infohash, uri, added}]}``.
- ``GET /public/<token>/torrent/<infohash>`` and ``POST /public/<token>/sync``: for mirrors,
  see :mod:`onionshare_bt.mirror.origin`.

A private share never appears here; a published one is listed with its own private URI (its
pieces still travel over its own onions). Everything else is the tracker's plain 404.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import MalformedReply
from ..mirror import core as mirror_core
from ..tracker.server import KEEPALIVE_TIMEOUT, NOT_FOUND_BODY, _strip_server_header

PROTOCOL = 1


class NodeServer:
    """Serve the node document and the catalogue on 127.0.0.1 (behind the node onion).

    :param document: returns the ``/node`` document
    :param catalogue: returns the catalogue items
    :param token: the catalogue's token
    """

    def __init__(self, document: Callable[[], dict], catalogue: Callable[[], list[dict]],
                 token: str, torrent: Callable[[str], bytes | None] | None = None,
                 sync: Callable[[mirror_core.SyncRequest], Awaitable[dict]] | None = None,
                 ) -> None:
        """:param torrent: a public share's .torrent by infohash (None: not public)
        :param sync: answers a mirror's sync call
        """
        self._document, self._catalogue, self._token = document, catalogue, token
        self._torrent, self._sync = torrent, sync
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        app = web.Application(client_max_size=mirror_core.MAX_MESSAGE)
        app.on_response_prepare.append(_strip_server_header)
        app.router.add_get("/node", self._node)
        app.router.add_get("/public/{token}", self._public)
        app.router.add_get("/public/{token}/torrent/{infohash}", self._torrent_of)
        app.router.add_post("/public/{token}/sync", self._sync_call)
        app.router.add_route("*", "/{tail:.*}", self._missing)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     keepalive_timeout=KEEPALIVE_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _node(self, request: web.Request) -> web.Response:
        return web.json_response(self._document())

    def _authorised(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.match_info["token"].encode(), self._token.encode())

    async def _torrent_of(self, request: web.Request) -> web.Response:
        infohash = request.match_info["infohash"]
        if (not self._authorised(request) or self._torrent is None
                or not re.fullmatch(r"[0-9a-f]{40}", infohash)):
            return await self._missing(request)
        data = self._torrent(infohash)
        if data is None:
            return await self._missing(request)
        return web.Response(body=data, content_type="application/x-bittorrent")

    async def _sync_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request) or self._sync is None:
            return await self._missing(request)
        try:
            body = await request.content.read(mirror_core.MAX_MESSAGE + 1)
            sync = mirror_core.parse_request(body)
        except MalformedReply as exc:
            return web.json_response({"error": exc.message}, status=400)
        return web.json_response(await self._sync(sync))

    async def _public(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return await self._missing(request)
        doc = self._document()
        return web.json_response({"node": doc["onion"], "items": self._catalogue()})

    async def _missing(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text=NOT_FOUND_BODY)
