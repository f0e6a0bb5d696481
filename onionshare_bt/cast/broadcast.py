"""Live broadcasts of this node (``obt cast``).

A broadcast runs ``ffmpeg`` on its source, reads Ogg/Opus pages off it, signs each
(:mod:`.wire`) and serves them (:class:`~.feed.Feed`) on an onion of its own at
``http://<onion>.onion/cast/<token>``, to at most ``fanout`` listeners; it keeps the relay
tree (:class:`~.core.Tree`): every listener joins there, and is sent to the shallowest
server with a free slot. Nothing of it outlives the node: its onion, key and tree are made
for it and forgotten with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import secrets
import shutil
import time
from pathlib import Path

from aiohttp import web

from ..errors import BadPath, ObtError, UsageError
from ..httpserve import runner
from ..onion import parse_onion
from ..text import DESCRIPTION_LIMIT, NAME_LIMIT, has_unsafe, safe_text
from ..tor.client import TorClient
from ..uri import CAST, ShareURI, cast_key, new_token
from .core import GRANULE_RATE, Tree, TreeError
from .feed import Feed, ticket
from .ogg import OggError, PageReader
from .protocol import (
    BEAT, MAX_CALL, MAX_LOST, Tasks, error, field, json_body, not_found_handler, port_of,
)
from .wire import Signer

__all__ = ["Broadcast", "Broadcasts"]

log = logging.getLogger(__name__)

#: seconds a new broadcast has to produce its first audio page
FIRST_PAGE_TIMEOUT = 20.0
#: seconds a stopped broadcast's onion stays, for its listeners to hear that it is over
STOP_GRACE = 2.0
#: seconds of audio ffmpeg may send ahead of real time at its start (-readrate_initial_burst
#: is 0.5 s); pages before it do not set a broadcast's page origin
ORIGIN_AFTER = 2.0


class Broadcast:
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



class Broadcasts:
    """The node's broadcasts.

    :param tor: the node's tor (each broadcast's onion)
    :param tasks: where each broadcast's ffmpeg pump runs
    :param ffmpeg: the encoder (default ``ffmpeg`` on PATH)
    """

    def __init__(self, tor: TorClient, tasks: Tasks, ffmpeg: str | None = None) -> None:
        self.tor, self.tasks, self.ffmpeg = tor, tasks, ffmpeg
        self.items: dict[str, Broadcast] = {}

    def public_items(self) -> list[dict]:
        """The live broadcasts listed in the node's public catalogue (as its shares are,
        with ``kind`` "cast": see :class:`onionshare_bt.trust.core.Item`)."""
        return [{"kind": "cast", "name": c.name, "size": 0, "files": 0,
                 "infohash": cast_key(c.uri), "uri": c.uri, "added": round(c.started),
                 "description": c.description}
                for c in self.items.values() if c.public and c.state == "live" and c.onion]

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
        cast = Broadcast(secrets.token_hex(4), source, input_format, bitrate, fanout)
        cast.public, cast.name, cast.description = public, shown.strip(), description or ""
        self.items[cast.id] = cast
        try:
            await self._serve(cast)
            self.tasks.spawn(self._pump(cast, ffmpeg))
            async with asyncio.timeout(FIRST_PAGE_TIMEOUT):
                waiter = asyncio.ensure_future(cast.first_page.wait())
                while not waiter.done():
                    await asyncio.wait({waiter}, timeout=0.2)
                    if cast.state == "failed":
                        waiter.cancel()
                        raise UsageError(f"ffmpeg could not broadcast {source}: {cast.error}")
            address, key = await self.tor.add_onion({80: ("127.0.0.1", port_of(cast.runner))})
            cast.onion, cast.key = address, key
        except TimeoutError:
            await self.stop(cast.id)
            raise UsageError(f"ffmpeg produced no audio from {source} in "
                             f"{FIRST_PAGE_TIMEOUT:g} s") from None
        except BaseException:
            await self.stop(cast.id)
            raise
        cast.state = "live" if cast.state == "starting" else cast.state
        log.info("broadcast %s live", cast.id)
        return cast.describe()

    async def stop(self, ident: str) -> dict:
        cast = self.items.pop(ident, None)
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

    def _command(self, cast: Broadcast, ffmpeg: str) -> list[str]:
        head = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin"]
        if cast.input_format:  # a capture device: live already
            head += ["-f", cast.input_format, "-i", cast.source]
        else:  # a file: played in real time
            head += ["-re", "-i", cast.source]
        return head + ["-vn", "-c:a", "libopus", "-b:a", f"{cast.bitrate}k",
                       "-frame_duration", "20", "-page_duration", "200000",
                       "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
                       "-f", "ogg", "pipe:1"]

    async def _pump(self, cast: Broadcast, ffmpeg: str) -> None:
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

    async def _serve(self, cast: Broadcast) -> None:
        app = web.Application(client_max_size=MAX_CALL)
        base = f"/cast/{cast.token}"
        app.router.add_get(f"{base}/stream", cast.feed.stream)
        app.router.add_post(f"{base}/join", functools.partial(self._on_join, cast))
        app.router.add_post(f"{base}/beat", functools.partial(self._on_beat, cast))
        app.router.add_post(f"{base}/leave", functools.partial(self._on_leave, cast))
        app.router.add_route("*", "/{tail:.*}", not_found_handler)
        cast.runner = runner(app, log)
        await cast.runner.setup()
        await web.TCPSite(cast.runner, "127.0.0.1", 0).start()

    async def _on_join(self, cast: Broadcast, request: web.Request) -> web.Response:
        if cast.state in ("ended", "stopped", "failed"):
            return error("the broadcast is over", 404)
        body = await json_body(request)
        try:
            onion = parse_onion(field(body, "onion", str))
            slots = field(body, "slots", int)
            lost = [parse_onion(o) for o in field(body, "lost", list)[:MAX_LOST]
                    if isinstance(o, str)]
        except (ValueError, ObtError):
            return error("a join names a v3 onion, its slots and the servers it lost", 400)
        try:
            placed = cast.tree.join(onion, slots, time.monotonic(), lost=lost)
        except TreeError as exc:
            return error(str(exc), 503)
        server_secret = cast.secret if placed.parent == "" else cast.tree.secret_of(placed.parent)
        return web.json_response({
            "parent": placed.parent, "depth": placed.depth, "secret": placed.secret,
            "ticket": ticket(server_secret, onion),
            "key": base64.b64encode(cast.signer.public).decode(), "beat": BEAT})

    async def _on_beat(self, cast: Broadcast, request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            onion, secret = field(body, "onion", str), field(body, "secret", str)
            slots = field(body, "slots", int) if isinstance(body, dict) and "slots" in body \
                else None
            parent = cast.tree.heartbeat(onion, secret, time.monotonic(), slots)
        except ValueError:
            return error("a heartbeat names an onion and its secret", 400)
        except TreeError as exc:
            return error(str(exc), 404)
        return web.json_response({"parent": parent})

    async def _on_leave(self, cast: Broadcast, request: web.Request) -> web.Response:
        body = await json_body(request)
        try:
            cast.tree.leave(field(body, "onion", str), field(body, "secret", str))
        except ValueError:
            return error("a leave names an onion and its secret", 400)
        return web.json_response({})

