"""One server of a broadcast: the broadcaster's, or a relaying listener's.

A :class:`Feed` holds the stream's :class:`~.core.Backlog` and the listeners it serves,
each on a bounded queue of pages. It answers two kinds of request:

- ``GET /cast/<token>/stream?onion=…&ticket=…&after=…`` on its onion: signed frames
  (:mod:`.wire`) for a listener the broadcaster placed under this server. The ticket
  (:func:`ticket`) proves the placement, so that nobody takes a slot by knowing the URI;
  at most ``slots`` listeners at once, one stream per listener onion.
- ``GET /<local token>/listen.ogg`` on loopback only: the plain Ogg stream, for a player
  on this machine (``obt listen`` prints its URL).

A listener that falls behind by more than :data:`QUEUE_PAGES` pages is cut off (it re-joins
elsewhere, after the last page it had), so one slow circuit never holds the others back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets

from aiohttp import web

from ..httpserve import not_found
from .core import Backlog
from .ogg import Page
from .wire import frame

__all__ = ["QUEUE_PAGES", "Feed", "ticket"]

log = logging.getLogger(__name__)

#: pages queued for one listener before it is cut off (about 13 s of 200 ms pages)
QUEUE_PAGES = 64
#: local players served at once
MAX_LOCAL = 8
_END = None


def ticket(secret: str, onion: str) -> str:
    """What a listener placed under a server shows it: bound to the listener's onion,
    made with the server's secret (which the broadcaster knows: it issued it)."""
    mac = hmac.new(secret.encode(), onion.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


class Feed:
    """A broadcast as one server serves it.

    :param token: the broadcast's token (the path of every request)
    :param slots: listeners served at once through the onion
    :param secret: this server's secret (the broadcaster's own, or the one its join gave a
      relay): tickets are checked with it
    """

    def __init__(self, token: str, slots: int, secret: str, backlog: Backlog | None = None
                 ) -> None:
        self.token, self.slots, self.secret = token, slots, secret
        self.backlog = backlog or Backlog()
        #: the loopback path of the plain Ogg stream
        self.local_token = secrets.token_urlsafe(18)
        self._listeners: dict[str, asyncio.Queue[Page | None]] = {}
        self._local: set[asyncio.Queue[Page | None]] = set()
        self.ended = False
        #: bytes sent to listeners through the onion, and streams cut off for lagging
        self.sent = 0
        self.cut_off = 0

    @property
    def listeners(self) -> list[str]:
        """The onions of the listeners served now."""
        return list(self._listeners)

    def put(self, page: Page) -> None:
        """Serve the stream's next (signed, checked) page.

        :raises ValueError: from the backlog, for a page out of order
        """
        self.backlog.add(page)
        for onion, queue in list(self._listeners.items()):
            if not _offer(queue, page):
                log.info("a listener fell %d pages behind; cutting it off", QUEUE_PAGES)
                self.cut_off += 1
                self._drop(onion)
        for queue in list(self._local):
            if not _offer(queue, page):
                self._local.discard(queue)
                _close(queue)
        if page.eos:
            self.end()

    def end(self) -> None:
        """The broadcast ended (or this server stops): every stream ends after what it has."""
        self.ended = True
        for onion in list(self._listeners):
            self._drop(onion)
        for queue in self._local:
            _close(queue)
        self._local.clear()

    def _drop(self, onion: str) -> None:
        queue = self._listeners.pop(onion, None)
        if queue is not None:
            _close(queue)

    # -- the onion side ---------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``GET /cast/<token>/stream``: signed frames for a placed listener."""
        onion = request.query.get("onion", "")
        shown = request.query.get("ticket", "")
        if not onion or not self.secret or not hmac.compare_digest(
                shown, ticket(self.secret, onion)):
            return web.json_response({"error": "not placed under this server; join first"},
                                     status=403)
        after = _int(request.query.get("after"))
        if self.ended and not self.backlog.pages:
            return web.json_response({"error": "the broadcast has ended"}, status=410)
        if onion not in self._listeners and len(self._listeners) >= self.slots:
            return web.json_response({"error": "no free slot here; join again"}, status=503)
        self._drop(onion)  # one stream per listener: a new one replaces the old
        queue: asyncio.Queue[Page | None] = asyncio.Queue(QUEUE_PAGES + 1)
        self._listeners[onion] = queue
        try:
            return await self._send(request, queue, self.backlog.start(after), signed=True)
        finally:
            if self._listeners.get(onion) is queue:
                del self._listeners[onion]

    # -- the loopback side ------------------------------------------------------------
    async def listen(self, request: web.Request) -> web.StreamResponse:
        """``GET /<local token>/listen.ogg``: the plain Ogg stream, for a local player."""
        if not hmac.compare_digest(request.match_info.get("token", ""), self.local_token):
            return not_found()
        if len(self._local) >= MAX_LOCAL:
            return web.json_response({"error": "too many local players"}, status=503)
        queue: asyncio.Queue[Page | None] = asyncio.Queue(QUEUE_PAGES + 1)
        self._local.add(queue)
        try:
            return await self._send(request, queue, self.backlog.start(), signed=False)
        finally:
            self._local.discard(queue)

    async def _send(self, request: web.Request, queue: asyncio.Queue[Page | None],
                    first: list[Page], signed: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "application/octet-stream" if signed else "audio/ogg",
            "Cache-Control": "no-store"})
        await response.prepare(request)
        render = frame if signed else (lambda page: page.raw)
        data = b"".join(render(p) for p in first)
        await response.write(data)
        self.sent += len(data) if signed else 0
        if self.ended:  # nothing more will come
            return response
        while (page := await queue.get()) is not _END:
            data = render(page)
            await response.write(data)
            self.sent += len(data) if signed else 0
        return response


def _offer(queue: asyncio.Queue, page: Page) -> bool:
    """Queue a page; False if the queue is full (its reader lags too far)."""
    if queue.qsize() >= QUEUE_PAGES:
        return False
    queue.put_nowait(page)
    return True


def _close(queue: asyncio.Queue) -> None:
    """End a stream after what is queued (the queue keeps one place for it)."""
    try:
        queue.put_nowait(_END)
    except asyncio.QueueFull:
        pass


def _int(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    return int(text)
