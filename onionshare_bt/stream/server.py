"""The node's media server: every file of every torrent over HTTP on 127.0.0.1.

``http://127.0.0.1:<port>/<token>/<file index>/<file name>``: one token (192 random bits)
per torrent, made when first asked for (``obt play``) and kept for the node's lifetime. A
wrong token, an unknown file, a ``Host`` other than the loopback address and port, or a
torrent no longer in the engine: a plain 404, the same for all. ``GET`` and ``HEAD`` only;
one byte range per request (``206`` with ``Content-Range``; ``416`` with ``bytes */size``
for a malformed range or one outside the file). A body is sent piece by piece as the
download holds each (:mod:`.pieces`); the client's own pace is the back-pressure.

Before any byte of a file is served its first bytes are read (after an ID3v2 tag, which
ffmpeg skips too) and vetted (:func:`.core.vet`): a file that reads as text or carries a
playlist's or stream description's marker gets ``403`` with the reason, whatever its name,
because a player given it would fetch what it names, outside Tor.

Nothing here touches the network beyond loopback: the socket is bound to 127.0.0.1, and the
files served are the torrent's own, read through the engine's layout.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import urllib.parse

from aiohttp import web

from .. import httpserve
from ..errors import TorrentError, UsageError
from .core import (HEAD_BYTES, RangeNotSatisfiable, contiguous, content_type, id3_length,
                   is_media, is_playlist, parse_range, pick, vet)
from .pieces import Gone, TorrentReader

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
TOKEN_BYTES = 24
#: headers on every reply: no caching, no sniffing, no referrer, and no script runs if a
#: browser opens a file (names and bytes come from the share)
COMMON = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}
#: playable files ``obt list`` shows per torrent
LISTED = 50
#: seconds the server gives open responses to finish when the node stops
SHUTDOWN_TIMEOUT = 1.0


class StreamService:
    """Serve torrents' files on loopback while they download.

    :param engine: the node's :class:`~onionshare_bt.engine.session.Engine`
    :param port: 0 for any free port
    """

    def __init__(self, engine, host: str = HOST, port: int = 0) -> None:
        self.engine = engine
        self.host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._tokens: dict[str, str] = {}  # torrent id -> token
        self._readers: dict[str, TorrentReader] = {}
        #: why a file is not served (None: it is), by torrent id and file index, once its
        #: first bytes have come (see :func:`.core.vet`)
        self._refused: dict[tuple[str, int], str | None] = {}

    # -- lifetime -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{token}/{index}", self._handle)
        app.router.add_route("*", "/{token}/{index}/{name:.*}", self._handle)
        app.on_response_prepare.append(httpserve.strip_headers)
        runner = httpserve.HardenedRunner(
            app, access_log=None, handle_signals=False,
            logger=httpserve.NetworkLog(log, {}), keepalive_timeout=httpserve.KEEPALIVE_TIMEOUT,
            handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        # an engine without piece alerts (a test's fake) leaves the readers to poll
        self._listeners = getattr(self.engine, "piece_listeners", [])
        self._listeners.append(self._on_piece)

    async def close(self) -> None:
        if self._runner is None:
            return
        self._listeners.remove(self._on_piece)
        await self._runner.cleanup()
        self._runner = None
        for tid in list(self._readers):
            self.forget(tid)

    @property
    def port(self) -> int:
        return self._port

    # -- what the node asks -----------------------------------------------------------------
    def url(self, torrent_id: str, index: int) -> str:
        """The URL of one file of a torrent (its token is made on first use).

        :raises UsageError: the torrent is not in the engine, or has no such file
        """
        reader = self._reader(torrent_id)
        span = reader.spans.get(index) if reader else None
        if span is None:
            raise UsageError("no such file in this torrent")
        token = self._tokens.setdefault(torrent_id, secrets.token_urlsafe(TOKEN_BYTES))
        name = urllib.parse.quote(span.path.rsplit("/", 1)[-1], safe="")
        return f"http://{self.host}:{self._port}/{token}/{index}/{name}"

    def play(self, torrent_id: str, wanted: str | None, complete: bool = False) -> dict:
        """The URL of the file ``obt play`` means (see :func:`.core.pick`), and every file.

        :raises UsageError: no file, or several, match ``wanted``; the torrent is not in
            the engine
        """
        reader = self._reader(torrent_id)
        if reader is None:
            raise UsageError("this torrent is not running in the node", hint="See: obt list")
        files = self.files(torrent_id, complete)
        found = pick([(f["index"], f["path"]) for f in files], wanted)
        if len(found) != 1:
            shown = ", ".join(f"{f['index']}: {f['path']}" for f in files[:20])
            what = "no file matches" if not found else f"{len(found)} files match"
            raise UsageError(f"{what} {wanted!r}" if wanted else "which file? the torrent "
                             "holds no media file", hint=f"Name one (index or path): {shown}")
        chosen = next(f for f in files if f["index"] == found[0])
        return {"url": self.url(torrent_id, chosen["index"]), "file": chosen, "files": files}

    def files(self, torrent_id: str, complete: bool = False, have=None) -> list[dict]:
        """The torrent's files: index, path, size, type, playable, bytes held from the start.

        :param complete: the torrent holds every piece (spares asking the engine)
        """
        reader = self._reader(torrent_id)
        if reader is None:
            return []
        have = have or self._have_fn(torrent_id, complete)
        return [{"index": i, "path": s.path, "size": s.size, "type": content_type(s.path),
                 "playable": is_media(s.path) and not is_playlist(s.path)
                 and self._refused.get((torrent_id, i)) is None,
                 "from_start": contiguous(s, 0, have)} for i, s in reader.spans.items()]

    def describe(self, torrent_id: str, complete: bool = False) -> dict:
        """For ``obt list``: the playable files (at most :data:`LISTED`) with the bytes held
        from their start, and every active reader with the bytes held ahead of it."""
        if self._reader(torrent_id) is None:
            return {"playable": [], "readers": []}
        have = self._have_fn(torrent_id, complete)
        files = [f for f in self.files(torrent_id, have=have) if f["playable"]]
        return {"playable": files[:LISTED], "readers": self.readers(torrent_id, have=have)}

    def readers(self, torrent_id: str, complete: bool = False, have=None) -> list[dict]:
        """Each active reader: its file, position, and the bytes held ahead of it."""
        reader = self._readers.get(torrent_id)
        if reader is None or not reader.planner.readers() or not self.engine.has(torrent_id):
            return []
        have = have or self._have_fn(torrent_id, complete)
        return [{"index": span.index, "path": span.path, "position": position,
                 "ahead": contiguous(span, position, have)}
                for _, span, position in reader.planner.readers()]

    def forget(self, torrent_id: str) -> None:
        """Drop a torrent's token and readers' state (it was removed)."""
        self._tokens.pop(torrent_id, None)
        self._readers.pop(torrent_id, None)
        for key in [k for k in self._refused if k[0] == torrent_id]:
            del self._refused[key]

    def _have_fn(self, torrent_id: str, complete: bool):
        if complete:
            return lambda piece: True
        pieces = self.engine.have_pieces(torrent_id)
        return lambda piece: 0 <= piece < len(pieces) and pieces[piece]

    def _reader(self, torrent_id: str) -> TorrentReader | None:
        if not self.engine.has(torrent_id):
            self.forget(torrent_id)
            return None
        reader = self._readers.get(torrent_id)
        if reader is None:
            reader = self._readers[torrent_id] = TorrentReader(self.engine, torrent_id)
        return reader

    def _on_piece(self, torrent_id: str, piece: int) -> None:
        reader = self._readers.get(torrent_id)
        if reader is not None:
            reader.arrived(piece)

    # -- HTTP -------------------------------------------------------------------------------
    def _lookup(self, token: str) -> str | None:
        found = None
        for tid, known in self._tokens.items():  # every token compared, in constant time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = tid
        return found

    def _host_ok(self, host: str | None) -> bool:
        return host in (f"{self.host}:{self._port}", self.host,
                        f"localhost:{self._port}", "localhost")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        tid = self._lookup(request.match_info["token"]) if self._host_ok(request.host) else None
        reader = self._reader(tid) if tid else None
        index = request.match_info["index"]
        span = reader.spans.get(int(index)) if reader and index.isdigit() and \
            len(index) < 8 else None
        if span is None:
            return httpserve.not_found()
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405: Method Not Allowed",
                                headers={"Allow": "GET, HEAD", **COMMON})
        try:
            wanted = parse_range(request.headers.get("Range"), span.size)
        except RangeNotSatisfiable:
            return web.Response(status=416, text="416: Range Not Satisfiable",
                                headers={"Content-Range": f"bytes */{span.size}", **COMMON})
        try:
            refused = await self._vet(request, reader, span)
        except (Gone, ConnectionError, TimeoutError, TorrentError, OSError) as exc:
            log.warning("could not read the head of a file of %s: %s", reader.torrent_id[:16],
                        exc or type(exc).__name__)
            return web.Response(status=503, text="503: the file's first bytes did not come",
                                headers=COMMON)
        if refused is not None:
            return web.Response(status=403, text=f"obt does not serve this file: {refused}\n",
                                headers=COMMON)
        headers = {"Accept-Ranges": "bytes", "Content-Type": content_type(span.path), **COMMON}
        if wanted is not None:
            headers["Content-Range"] = wanted.content_range(span.size)
        response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
        start, end = (0, span.size - 1) if wanted is None else (wanted.start, wanted.end)
        response.content_length = end - start + 1
        await response.prepare(request)
        if request.method == "GET" and end >= start:
            await self._send(request, response, reader, span, start, end)
        return response

    async def _vet(self, request, reader: TorrentReader, span) -> str | None:
        """Why the file is not served (see :func:`.core.vet`), once its first bytes (after
        an ID3v2 tag) are here; None when it is. Decided once per file."""
        key = (reader.torrent_id, span.index)
        if key not in self._refused:
            first = await self._read(request, reader, span, 0, min(10, span.size) - 1)
            start = id3_length(first, span.size)
            head = await self._read(request, reader, span, start,
                                    min(start + HEAD_BYTES, span.size) - 1)
            self._refused[key] = vet(head)
            if self._refused[key]:
                log.warning("refused to serve a file of %s: %s", reader.torrent_id[:16],
                            self._refused[key])
        return self._refused[key]

    async def _read(self, request, reader: TorrentReader, span, start: int, end: int) -> bytes:
        async with contextlib.aclosing(self._chunks(request, reader, span, start, end)) as chunks:
            return b"".join([chunk async for chunk in chunks])

    async def _chunks(self, request, reader: TorrentReader, span, start: int, end: int):
        """Bytes ``start`` to ``end`` of the file, piece by piece once the download has each.

        :raises Gone: the client left, or the torrent left the engine
        :raises TimeoutError: a piece did not come in time
        :raises TorrentError: the file is shorter on disk than in the torrent
        """

        def alive() -> bool:
            transport = request.transport
            return transport is not None and not transport.is_closing()

        rid = reader.open(span, start)
        position = start
        try:
            while position <= end:
                piece = span.piece_at(position)
                reader.move(rid, position)
                await reader.wait(piece, alive)
                data = await reader.read(span, piece)
                low = span.bounds(piece)[0]
                chunk = data[position - low:end + 1 - low]
                if not chunk:
                    raise TorrentError(f"{span.path!r} is shorter on disk than in the torrent")
                yield chunk
                position += len(chunk)
        finally:
            reader.close(rid)

    async def _send(self, request, response, reader: TorrentReader, span, start: int,
                    end: int) -> None:
        """Send bytes ``start`` to ``end`` of the file, each piece once the download has it."""
        sent = start
        try:
            async with contextlib.aclosing(self._chunks(request, reader, span, start, end)) \
                    as chunks:
                async for chunk in chunks:
                    await response.write(chunk)
                    sent += len(chunk)
            await response.write_eof()
        except (Gone, ConnectionError):
            _cut(request, response)
        except (TimeoutError, TorrentError, OSError) as exc:
            log.warning("stopped serving a file of %s at byte %d: %s", reader.torrent_id[:16],
                        sent, exc)
            _cut(request, response)


def _cut(request: web.Request, response: web.StreamResponse) -> None:
    """End a response whose body is cut short: closing the connection says so."""
    response.force_close()
    if request.transport is not None:
        request.transport.close()
