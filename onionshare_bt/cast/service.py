"""The node's cast part: its live broadcasts (``obt cast``) and what it listens to and
relays (``obt listen``).

A **broadcast** runs ``ffmpeg`` on its source, reads Ogg/Opus pages off it, signs each
(:mod:`.wire`) and serves them (:class:`~.feed.Feed`) on an onion of its own at
``http://<onion>.onion/cast/<token>``, to at most ``fanout`` listeners; it keeps the relay
tree (:class:`~.core.Tree`): every listener joins there, and is sent to the shallowest
server with a free slot.

A **listening** joins, pulls the stream from the server it was given through Tor, checks
every page (the broadcaster's signature, the order), writes it to its output and serves it
on an onion of its own to the listeners placed under it. When its server goes (a stall of
:data:`STALL` seconds, a closed stream, a bad page), it joins again naming that server, and
resumes just after the last page it had; the gap is recorded.

Nothing of this outlives the node: a broadcast's onion, key and tree are made for it and
forgotten with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ..errors import (
    BadPath, MalformedReply, NotFound, ObtError, OnionUnreachable, Refused, UsageError,
)
from ..httpserve import not_found, read_body, runner
from ..onion import parse_onion
from ..tor.client import TorClient
from ..tor.http import OnionHTTP
from ..text import DESCRIPTION_LIMIT, NAME_LIMIT, has_unsafe, safe_text
from ..uri import CAST, ShareURI, cast_key, new_token, parse_cast_uri
from .core import GRANULE_RATE, MAX_FANOUT, Tree, TreeError
from .feed import Feed, ticket
from .ogg import OggError, PageReader
from .wire import Checker, FrameReader, Signer, WireError

__all__ = ["BEAT", "STALL", "CastService"]

log = logging.getLogger(__name__)

#: seconds between a listener's heartbeats to the broadcaster
BEAT = 2.0
#: seconds without a page after which a listener leaves its server and joins again
STALL = 4.0
#: seconds a join or a heartbeat may take
CALL_TIMEOUT = 30.0
#: seconds a server has to answer a stream request
CONNECT_TIMEOUT = 30.0
#: seconds a new broadcast has to produce its first audio page
FIRST_PAGE_TIMEOUT = 20.0
#: bytes of a join or heartbeat request or reply
MAX_CALL = 4096
#: servers one join may name as lost
MAX_LOST = 8
#: gaps remembered per listening
MAX_GAPS = 100
#: seconds a listener goes on trying to join before it gives up
GIVE_UP = 180.0
#: seconds a stopped broadcast's onion stays, for its listeners to hear that it is over
STOP_GRACE = 2.0
#: seconds of audio ffmpeg may send ahead of real time at its start (-readrate_initial_burst
#: is 0.5 s); pages before it do not set a broadcast's page origin
ORIGIN_AFTER = 2.0
#: seconds a listening's onion has to be published before it offers to relay
PUBLISH_TIMEOUT = 120.0


class _Broadcast:
    def __init__(self, ident: str, source: str, input_format: str | None, bitrate: int,
                 fanout: int) -> None:
        self.id, self.source, self.input_format = ident, source, input_format
        self.bitrate, self.fanout = bitrate, fanout
        self.token = new_token()
        self.signer = Signer()
        self.secret = secrets.token_urlsafe(16)
        self.tree = Tree(root_slots=fanout, ttl=BEAT * 5)
        self.feed = Feed(self.token, fanout, self.secret)
        self.onion = ""
        self.public, self.name, self.description = False, "", ""
        self.key = ""  # the onion's, kept to publish it again after a tor restart
        self.state, self.error = "starting", None
        self.started = time.time()
        self.proc: asyncio.subprocess.Process | None = None
        self.first_page = asyncio.Event()
        self.runner: web.AppRunner | None = None
        #: this machine's monotonic clock when the audio's granule 0 was due, as early as
        #: any page shows it (a page with granule G is served at origin + G / 48 kHz at
        #: the soonest): listeners' arrival times less this give each page's delay
        self.origin = float("inf")

    @property
    def uri(self) -> str:
        return str(ShareURI(self.onion, CAST, self.token)) if self.onion else ""

    def describe(self) -> dict:
        now = time.monotonic()
        self.tree.expire(now)
        return {"id": self.id, "role": "broadcast", "state": self.state, "error": self.error,
                "uri": self.uri, "source": self.source, "bitrate": self.bitrate,
                "public": self.public, "name": self.name,
                "fanout": self.fanout, "listeners": len(self.tree),
                "serving": len(self.feed.listeners),
                "depth": self.tree.depth(), "pages": self.feed.backlog.count,
                "sent": self.feed.sent,
                "page_origin": self.origin if self.origin != float("inf") else None}


class _Listening:
    def __init__(self, ident: str, uri: ShareURI, slots: int, out: Path | None) -> None:
        self.id, self.uri, self.slots, self.out = ident, uri, slots, out
        #: the slots offered to the broadcaster: none until this listening's onion is
        #: published (a listener placed under an onion nobody can reach yet would fail)
        self.offered = 0
        #: the slots the broadcaster last acknowledged
        self.told = 0
        self.feed = Feed(uri.token, slots, secret="")
        self.checker = Checker()
        self.key: bytes | None = None
        self.onion = ""
        self.key_ = ""  # the onion's, kept to publish it again after a tor restart
        self.secret = ""
        self.parent: str | None = None
        self.depth = 0
        self.state, self.error = "joining", None
        self.gaps: list[dict] = []
        self.joins = 0
        self.refused = 0  # servers left for sending a bad page
        #: those servers: named as lost at every join, so never given to us again
        self.bad_servers: list[str] = []
        self.received = 0
        self.last_page_at: float | None = None
        self.runner: web.AppRunner | None = None
        self.local: web.AppRunner | None = None
        self.local_url = ""
        self.file = None
        self.ticket = ""
        self.task: asyncio.Task | None = None
        self.pull: asyncio.Task | None = None
        self.joined = asyncio.Event()

    def describe(self) -> dict:
        return {"id": self.id, "role": "listen", "state": self.state, "error": self.error,
                "uri": str(self.uri), "url": self.local_url,
                "out": str(self.out) if self.out else None, "fanout": self.slots,
                "onion": f"{self.onion}.onion" if self.onion else None,
                "offered": self.told,
                "parent": (f"{self.parent}.onion" if self.parent else
                           ("broadcaster" if self.parent == "" else None)),
                "depth": self.depth, "serving": len(self.feed.listeners),
                "pages": self.feed.backlog.count, "skipped": self.checker.skipped,
                "joins": self.joins, "refused_servers": self.refused,
                "received": self.received, "sent": self.feed.sent, "gaps": list(self.gaps)}


class CastService:
    """Every broadcast and listening of the node.

    :param tor: the node's tor (the onions the streams are served on)
    :param http: HTTP over Tor (joins, heartbeats, the streams pulled)
    :param ffmpeg: the encoder (default ``ffmpeg`` on PATH)
    """

    def __init__(self, tor: TorClient, http: OnionHTTP, ffmpeg: str | None = None) -> None:
        self.tor, self.http = tor, http
        self.ffmpeg = ffmpeg
        self._casts: dict[str, _Broadcast] = {}
        self._listens: dict[str, _Listening] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- what the node asks ---------------------------------------------------------
    def list(self) -> list[dict]:
        return ([c.describe() for c in self._casts.values()]
                + [lst.describe() for lst in self._listens.values()])

    def public_items(self) -> list[dict]:
        """The live broadcasts listed in the node's public catalogue (as its shares are,
        with ``kind`` "cast": see :class:`onionshare_bt.trust.core.Item`)."""
        return [{"kind": "cast", "name": c.name, "size": 0, "files": 0,
                 "infohash": cast_key(c.uri), "uri": c.uri, "added": round(c.started),
                 "description": c.description}
                for c in self._casts.values() if c.public and c.state == "live" and c.onion]

    def received(self) -> dict[str, int]:
        """Bytes each listening has received (they count in the ratio as downloads do)."""
        return {f"cast:{i}": lst.received for i, lst in self._listens.items()}

    async def republish(self) -> None:
        """Give a restarted tor every onion again, at the same addresses (the tree and the
        listeners know them)."""
        onions = [(c.key, c.runner) for c in self._casts.values() if c.key]
        onions += [(lst.key_, lst.runner) for lst in self._listens.values() if lst.key_]
        for key, run in onions:
            try:
                await self.tor.add_onion({80: ("127.0.0.1", _port(run))}, key,
                                         await_publication=False)
            except ObtError as exc:
                log.error("a cast's onion could not be published again: %s", exc.message)

    async def close(self) -> None:
        for ident in list(self._listens):
            await self.stop_listen(ident)
        for ident in list(self._casts):
            await self.stop_cast(ident)
        for task in list(self._tasks):
            task.cancel()

    # -- broadcasting ---------------------------------------------------------------
    async def cast(self, source: str, bitrate: int, fanout: int,
                   input_format: str | None = None, public: bool = False,
                   name: str | None = None, description: str | None = None) -> dict:
        """Start a broadcast of **source** and return it once its first page is served
        and its onion published.

        :param source: an audio file or a named pipe (played in real time), or with
          **input_format** a capture device
        :param public: list it in the node's public catalogue while it is live, as
          **name** (default: the source file's name without its suffix) with
          **description**
        :raises BadPath: a file source that does not exist
        :raises UsageError: no ffmpeg, or ffmpeg could not read the source, or a name or
          description that is not one short line of plain text
        """
        shown = name if name is not None else (
            "live" if input_format else Path(source).stem)
        for text, limit, what in ((shown, NAME_LIMIT, "name"),
                                  (description or "", DESCRIPTION_LIMIT, "description")):
            if len(text) > limit or has_unsafe(text) or (what == "name" and not text.strip()):
                raise UsageError(f"a broadcast's {what} is one line of at most {limit} "
                                 "characters, without control characters")
        if not public and (name is not None or description is not None):
            raise UsageError("a name or a description goes with --public")
        ffmpeg = shutil.which(self.ffmpeg or "ffmpeg")
        if ffmpeg is None:
            raise UsageError("obt cast needs ffmpeg", hint="Install it: apt-get install ffmpeg")
        if input_format is None:
            path = Path(source).expanduser()
            if not (path.is_file() or path.is_fifo()):  # a named pipe: obt cast - uses one
                raise BadPath(f"no such file: {source}",
                              hint="A capture device needs --input-format (e.g. alsa, pulse).")
            source = str(path.resolve())
        cast = _Broadcast(secrets.token_hex(4), source, input_format, bitrate, fanout)
        cast.public, cast.name, cast.description = public, shown.strip(), description or ""
        self._casts[cast.id] = cast
        try:
            await self._serve(cast)
            self._spawn(self._pump(cast, ffmpeg))
            async with asyncio.timeout(FIRST_PAGE_TIMEOUT):
                waiter = asyncio.ensure_future(cast.first_page.wait())
                while not waiter.done():
                    await asyncio.wait({waiter}, timeout=0.2)
                    if cast.state == "failed":
                        waiter.cancel()
                        raise UsageError(f"ffmpeg could not broadcast {source}: {cast.error}")
            address, key = await self.tor.add_onion({80: ("127.0.0.1", _port(cast.runner))})
            cast.onion, cast.key = address, key
        except TimeoutError:
            await self.stop_cast(cast.id)
            raise UsageError(f"ffmpeg produced no audio from {source} in "
                             f"{FIRST_PAGE_TIMEOUT:g} s") from None
        except BaseException:
            await self.stop_cast(cast.id)
            raise
        cast.state = "live" if cast.state == "starting" else cast.state
        log.info("broadcast %s live", cast.id)
        return cast.describe()

    async def stop_cast(self, ident: str) -> dict:
        cast = self._casts.pop(ident, None)
        if cast is None:
            raise UsageError(f"no broadcast {ident!r}", hint="See: obt casts")
        live, cast.state = cast.state == "live", "stopped"
        cast.feed.end()
        if live and cast.onion:  # listeners hear their stream end: joining again, they
            await asyncio.sleep(STOP_GRACE)  # learn the broadcast is over
        if cast.proc is not None and cast.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                cast.proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cast.proc.wait(), 5)
        if cast.onion:
            with contextlib.suppress(ObtError):
                await self.tor.remove_onion(cast.onion)
        if cast.runner is not None:
            await cast.runner.cleanup()
        cast.state = "stopped"
        return cast.describe()

    def _command(self, cast: _Broadcast, ffmpeg: str) -> list[str]:
        head = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin"]
        if cast.input_format:  # a capture device: live already
            head += ["-f", cast.input_format, "-i", cast.source]
        else:  # a file: played in real time
            head += ["-re", "-i", cast.source]
        return head + ["-vn", "-c:a", "libopus", "-b:a", f"{cast.bitrate}k",
                       "-frame_duration", "20", "-page_duration", "200000",
                       "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                       "-f", "ogg", "pipe:1"]

    async def _pump(self, cast: _Broadcast, ffmpeg: str) -> None:
        """ffmpeg's pages, signed, into the broadcast's feed, until it ends."""
        try:
            cast.proc = await asyncio.create_subprocess_exec(
                *self._command(cast, ffmpeg), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True)
        except OSError as exc:
            cast.state, cast.error = "failed", str(exc)
            return
        reader = PageReader()
        assert cast.proc.stdout is not None and cast.proc.stderr is not None
        try:
            while chunk := await cast.proc.stdout.read(16 * 1024):
                for page in reader.feed(chunk):
                    cast.feed.put(cast.signer.sign(page))
                    if not page.is_header:
                        if page.granule >= ORIGIN_AFTER * GRANULE_RATE:  # past the burst
                            cast.origin = min(cast.origin,
                                              time.monotonic() - page.granule / GRANULE_RATE)
                        cast.first_page.set()
        except (OggError, ValueError) as exc:
            cast.state, cast.error = "failed", f"ffmpeg's output: {exc}"
        code = await cast.proc.wait()
        errors = (await cast.proc.stderr.read(4096)).decode("utf-8", "replace")
        if code != 0 and cast.state != "stopped":
            cast.state = "failed"
            cast.error = safe_text(errors.strip().splitlines()[-1] if errors.strip()
                                   else f"ffmpeg exited with status {code}", 300)
        elif cast.state not in ("failed", "stopped"):
            cast.state = "ended"
        cast.feed.end()

    async def _serve(self, cast: _Broadcast) -> None:
        app = web.Application(client_max_size=MAX_CALL)
        base = f"/cast/{cast.token}"
        app.router.add_get(f"{base}/stream", cast.feed.stream)
        app.router.add_post(f"{base}/join", functools.partial(self._on_join, cast))
        app.router.add_post(f"{base}/beat", functools.partial(self._on_beat, cast))
        app.router.add_post(f"{base}/leave", functools.partial(self._on_leave, cast))
        app.router.add_route("*", "/{tail:.*}", _not_found)
        cast.runner = runner(app, log)
        await cast.runner.setup()
        await web.TCPSite(cast.runner, "127.0.0.1", 0).start()

    async def _on_join(self, cast: _Broadcast, request: web.Request) -> web.Response:
        if cast.state in ("ended", "stopped", "failed"):
            return _error("the broadcast is over", 404)
        body = await _json_body(request)
        try:
            onion = parse_onion(_field(body, "onion", str))
            slots = _field(body, "slots", int)
            lost = [parse_onion(o) for o in _field(body, "lost", list)[:MAX_LOST]
                    if isinstance(o, str)]
        except (ValueError, ObtError):
            return _error("a join names a v3 onion, its slots and the servers it lost", 400)
        try:
            placed = cast.tree.join(onion, slots, time.monotonic(), lost=lost)
        except TreeError as exc:
            return _error(str(exc), 503)
        server_secret = cast.secret if placed.parent == "" else cast.tree.secret_of(placed.parent)
        return web.json_response({
            "parent": placed.parent, "depth": placed.depth, "secret": placed.secret,
            "ticket": ticket(server_secret, onion),
            "key": base64.b64encode(cast.signer.public).decode(), "beat": BEAT})

    async def _on_beat(self, cast: _Broadcast, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            onion, secret = _field(body, "onion", str), _field(body, "secret", str)
            slots = _field(body, "slots", int) if isinstance(body, dict) and "slots" in body \
                else None
            parent = cast.tree.heartbeat(onion, secret, time.monotonic(), slots)
        except ValueError:
            return _error("a heartbeat names an onion and its secret", 400)
        except TreeError as exc:
            return _error(str(exc), 404)
        return web.json_response({"parent": parent})

    async def _on_leave(self, cast: _Broadcast, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            cast.tree.leave(_field(body, "onion", str), _field(body, "secret", str))
        except ValueError:
            return _error("a leave names an onion and its secret", 400)
        return web.json_response({})

    # -- listening --------------------------------------------------------------------
    async def listen(self, uri: str, slots: int, out: str | None = None) -> dict:
        """Join the broadcast at **uri**, relay it to up to **slots** listeners, write it
        to **out** (an Ogg file), and serve it to local players on a loopback URL.

        :raises BadURI: not a broadcast's URI
        :raises BadPath: **out** cannot be written
        """
        parsed = parse_cast_uri(uri)
        if not 0 <= slots <= MAX_FANOUT:
            raise UsageError(f"a listener relays to 0 to {MAX_FANOUT} listeners, not {slots}")
        path = Path(out).expanduser().resolve() if out else None
        if path is not None and (path.is_dir() or not path.parent.is_dir()):
            raise BadPath(f"cannot write the broadcast to {out}")
        listening = _Listening(secrets.token_hex(4), parsed, slots, path)
        self._listens[listening.id] = listening
        try:
            if path is not None:
                listening.file = open(path, "wb")  # noqa: SIM115 - closed by stop_listen
            await self._serve_relay(listening)
            address, key = await self.tor.add_onion(
                {80: ("127.0.0.1", _port(listening.runner))}, await_publication=False)
            listening.onion, listening.key_ = address, key
        except BaseException:
            await self.stop_listen(listening.id)
            raise
        listening.task = self._spawn(self._listen_loop(listening))
        return listening.describe()

    async def stop_listen(self, ident: str) -> dict:
        listening = self._listens.pop(ident, None)
        if listening is None:
            raise UsageError(f"no listening {ident!r}", hint="See: obt casts")
        listening.state = "stopping"
        for task in (listening.task, listening.pull):
            if task is not None:
                task.cancel()
        if listening.secret and listening.state not in ("ended",):
            with contextlib.suppress(ObtError):
                await self._call(listening, "leave",
                                 {"onion": listening.onion, "secret": listening.secret},
                                 timeout=5.0)
        listening.state = "stopped"
        listening.feed.end()
        if listening.onion:
            with contextlib.suppress(ObtError):
                await self.tor.remove_onion(listening.onion)
        for run in (listening.runner, listening.local):
            if run is not None:
                await run.cleanup()
        if listening.file is not None:
            listening.file.close()
        return listening.describe()

    async def _serve_relay(self, listening: _Listening) -> None:
        app = web.Application(client_max_size=MAX_CALL)
        app.router.add_get(f"/cast/{listening.uri.token}/stream", listening.feed.stream)
        app.router.add_route("*", "/{tail:.*}", _not_found)
        listening.runner = runner(app, log)
        await listening.runner.setup()
        await web.TCPSite(listening.runner, "127.0.0.1", 0).start()
        local = web.Application(client_max_size=MAX_CALL)
        local.router.add_get("/{token}/listen.ogg", listening.feed.listen)
        local.router.add_route("*", "/{tail:.*}", _not_found)
        listening.local = runner(local, log)
        await listening.local.setup()
        await web.TCPSite(listening.local, "127.0.0.1", 0).start()
        listening.local_url = (f"http://127.0.0.1:{_port(listening.local)}/"
                               f"{listening.feed.local_token}/listen.ogg")

    async def _listen_loop(self, listening: _Listening) -> None:
        lost: list[str] = []
        delay = 1.0
        failing = 0.0  # when joins began to fail, 0 while they succeed
        beats = asyncio.ensure_future(self._beats(listening))
        try:
            while listening.state not in ("ended", "stopping"):
                try:
                    placed = await self._join(listening, lost)
                except NotFound:  # the broadcaster answers, and has no such broadcast
                    listening.state, listening.error = "ended", "the broadcast is over"
                    break
                except (Refused, OnionUnreachable, MalformedReply) as exc:
                    listening.state, listening.error = "joining", exc.message
                    failing = failing or time.monotonic()
                    if time.monotonic() - failing > GIVE_UP:
                        listening.state = "ended"
                        listening.error = (f"the broadcaster has not placed this listener "
                                           f"for {GIVE_UP:g} s: {exc.message}")
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                delay, failing = 1.0, 0.0
                server = placed or listening.uri.onion
                listening.pull = asyncio.ensure_future(self._pull(listening, server))
                try:
                    await listening.pull
                    lost = [] if placed == "" else [placed]
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # stopped
                    lost = []  # the broadcaster forgot us: join again, nothing lost
                except WireError as exc:
                    listening.refused += 1
                    listening.bad_servers = (listening.bad_servers + [server])[-MAX_LOST:]
                    log.warning("listening %s: left a server that sent %s", listening.id, exc)
                    lost = []
                except (ObtError, aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                    log.info("listening %s: the stream from its server stopped (%s)",
                             listening.id, exc.__class__.__name__)
                    lost = [] if placed == "" else [placed]
                finally:
                    listening.pull = None
        finally:
            beats.cancel()

    async def _join(self, listening: _Listening, lost: list[str]) -> str:
        """Join (again); returns the server's onion, "" for the broadcaster."""
        named = list(dict.fromkeys(lost + listening.bad_servers))[-MAX_LOST:]
        reply = await self._call(listening, "join", {
            "onion": listening.onion, "slots": listening.offered, "lost": named})
        try:
            parent = reply["parent"]
            parent = parse_onion(parent) if parent else ""
            key = base64.b64decode(reply["key"], validate=True)
            secret, ticket_ = str(reply["secret"]), str(reply["ticket"])
            depth = int(reply["depth"])
        except (KeyError, TypeError, ValueError, ObtError) as exc:
            raise MalformedReply("the broadcaster's answer to a join is malformed") from exc
        if listening.key is None:
            listening.key = key
        elif key != listening.key:
            raise MalformedReply("the broadcaster's key changed during the broadcast")
        if parent == listening.onion or parent in listening.bad_servers:
            raise MalformedReply("the broadcaster placed this listener under itself or "
                                 "under a server that sent it a bad page")
        listening.secret, listening.parent, listening.depth = secret, parent, depth
        listening.feed.secret = secret
        listening.ticket = ticket_
        listening.joined.set()
        listening.joins += 1
        listening.state, listening.error = "listening", None
        return parent

    async def _pull(self, listening: _Listening, server: str) -> None:
        """Read the stream from **server** until it ends, stalls or sends a bad page."""
        after = listening.checker.last
        url = (f"http://{server}.onion/cast/{listening.uri.token}/stream?onion="
               f"{listening.onion}&ticket={listening.ticket}"
               + (f"&after={after}" if after >= 0 else ""))
        left_at = listening.last_page_at
        skipped = listening.checker.skipped
        fresh, gap_open = True, left_at is not None
        async with self.http.stream(url, CONNECT_TIMEOUT) as body:
            reader = FrameReader(listening.key or b"")
            while True:
                try:
                    chunk = await asyncio.wait_for(body.readany(), STALL)
                except TimeoutError:
                    raise OnionUnreachable(f"no page for {STALL:g} s") from None
                if not chunk:
                    if listening.feed.ended:
                        listening.state = "ended"
                    return
                listening.received += len(chunk)
                for page in reader.feed(chunk):
                    if not listening.checker.accept(page, fresh):
                        continue
                    if not page.is_header:
                        fresh = False
                    if gap_open and not page.is_header:
                        gap_open = False
                        self._gap(listening, server, left_at, skipped)
                    listening.last_page_at = time.monotonic()
                    listening.feed.put(page)
                    if listening.file is not None:
                        listening.file.write(page.raw)
                        listening.file.flush()
                    if page.eos:
                        listening.state = "ended"
                        return

    def _gap(self, listening: _Listening, server: str, left_at: float, skipped: int) -> None:
        gap = {"at": round(time.time(), 3), "to": f"{server}.onion",
               "stall_s": round(time.monotonic() - left_at, 3),
               "pages_lost": listening.checker.skipped - skipped}
        log.info("listening %s: resumed after %.1f s, %d pages lost", listening.id,
                 gap["stall_s"], gap["pages_lost"])
        listening.gaps = (listening.gaps + [gap])[-MAX_GAPS:]

    async def _offer(self, listening: _Listening) -> None:
        """Offer the broadcaster this listening's slots once its onion is published."""
        if listening.slots and await self.tor.wait_published(listening.onion, PUBLISH_TIMEOUT):
            listening.offered = listening.slots
            await listening.joined.wait()
            await self._beat(listening)  # at once, not at the next heartbeat
        elif listening.slots:
            log.warning("listening %s: its onion was not published in %g s; it relays to "
                        "no one", listening.id, PUBLISH_TIMEOUT)

    async def _beats(self, listening: _Listening) -> None:
        offer = asyncio.ensure_future(self._offer(listening))
        try:
            while True:
                await asyncio.sleep(BEAT)
                await self._beat(listening)
        finally:
            offer.cancel()

    async def _beat(self, listening: _Listening) -> None:
        if not listening.secret:
            return
        try:
            await self._call(listening, "beat",
                             {"onion": listening.onion, "secret": listening.secret,
                              "slots": listening.offered},
                             timeout=BEAT * 2)
            listening.told = listening.offered
        except NotFound:
            listening.secret = ""
            if listening.pull is not None:
                listening.pull.cancel()  # join again
        except ObtError as exc:
            log.debug("listening %s: a heartbeat failed: %s", listening.id, exc.message)

    async def _call(self, listening: _Listening, what: str, body: dict,
                    timeout: float = CALL_TIMEOUT) -> dict:
        url = f"{listening.uri}/{what}"
        raw = await self.http.post(url, json.dumps(body).encode(), timeout, MAX_CALL)
        try:
            reply = json.loads(raw)
        except ValueError as exc:
            raise MalformedReply(f"the broadcaster's answer to a {what} is not JSON") from exc
        if not isinstance(reply, dict):
            raise MalformedReply(f"the broadcaster's answer to a {what} is not an object")
        return reply

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a cast task failed", exc_info=task.exception())


def _port(run: web.AppRunner | None) -> int:
    assert run is not None
    return run.addresses[0][1]


async def _not_found(request: web.Request) -> web.Response:
    return not_found()


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> object:
    raw = await read_body(request, MAX_CALL)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _field(body: object, name: str, kind: type):
    if not isinstance(body, dict) or not isinstance(body.get(name), kind) \
            or isinstance(body.get(name), bool) and kind is int:
        raise ValueError(name)
    return body[name]
