"""What a node serves on its identity onion: ``/node`` and its public catalogue.

- ``GET /node``: ``{"obt", "protocol", "onion", "catalogue", "trusts"?}`` as JSON; ``trusts``
  only when the owner publishes the trust list (the default).
- ``GET /public/<token>``: ``{"node", "items": [{name, size, files, infohash, uri, added}]}``.
- ``GET /public/<token>/torrent/<infohash>`` and ``POST /public/<token>/sync``: for mirrors,
  see :mod:`onionshare_bt.mirror.origin`; a sync call that pushes peers or registers a
  mirror carries a credential in the ``X-Obt-Mirror-Auth`` header
  (:data:`.protocol.SYNC_HEADER`, checked by :mod:`onionshare_bt.mirror.auth`).

A private share never appears here; a published one is listed with its own private URI (its
pieces still travel over its own onions). Everything else is the tracker's plain 404. The
server is hardened like the tracker (:mod:`onionshare_bt.httpserve`): no ``Server`` or
``Date`` header on any reply, malformed requests logged quietly without their bytes.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import httpserve
from ..errors import MalformedReply, Refused
from .protocol import MAX_SYNC_REQUEST, PROTOCOL, SYNC_HEADER

__all__ = ["NodeServer", "PROTOCOL"]

log = logging.getLogger(__name__)


class NodeServer:
    """Serve the node document and the catalogue on 127.0.0.1 (behind the node onion).

    :param document: returns the ``/node`` document
    :param catalogue: returns the catalogue items
    :param token: the catalogue's token
    """

    def __init__(self, document: Callable[[], dict], catalogue: Callable[[], list[dict]],
                 token: str, torrent: Callable[[str], bytes | None] | None = None,
                 sync: Callable[[bytes, str | None], Awaitable[dict]] | None = None,
                 ) -> None:
        """:param torrent: a public share's .torrent by infohash (None: not public)
        :param sync: answers a mirror's sync call, given its raw body and its credential
          header (or None); raises ``MalformedReply`` (a 400) or ``Refused`` (a 403)
          (:meth:`onionshare_bt.mirror.origin.Origin.call`)
        """
        self._document, self._catalogue, self._token = document, catalogue, token
        self._torrent, self._sync = torrent, sync
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        app = web.Application(client_max_size=MAX_SYNC_REQUEST)
        app.router.add_get("/node", self._node)
        app.router.add_get("/public/{token}", self._public)
        app.router.add_get("/public/{token}/torrent/{infohash}", self._torrent_of)
        app.router.add_post("/public/{token}/sync", self._sync_call)
        app.router.add_route("*", "/{tail:.*}", self._missing)
        self._runner = httpserve.runner(app, log)
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
            body = await httpserve.read_body(request, MAX_SYNC_REQUEST)
        except TimeoutError:
            return web.json_response({"error": "sync request body too slow"}, status=408)
        if body is None:
            return web.json_response({"error": "sync message too large"}, status=413)
        try:
            reply = await self._sync(body, request.headers.get(SYNC_HEADER))
        except MalformedReply as exc:
            return web.json_response({"error": exc.message}, status=400)
        except Refused as exc:
            return web.json_response({"error": exc.message}, status=403)
        return web.json_response(reply)

    async def _public(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return await self._missing(request)
        doc = self._document()
        return web.json_response({"node": doc["onion"], "items": self._catalogue()})

    async def _missing(self, request: web.Request) -> web.Response:
        return httpserve.not_found()
