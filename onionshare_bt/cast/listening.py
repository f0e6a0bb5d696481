"""What this node listens to and relays (``obt listen``).

A listening joins a broadcast, pulls the stream from the server it was given through Tor,
checks every page (the broadcaster's signature, the order), writes it to its output and
serves it on an onion of its own to the listeners placed under it. When its server goes (a
stall of :data:`STALL` seconds, a closed stream, a bad page), it joins again naming that
server, and resumes just after the last page it had; the gap is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from ..errors import (
    BadPath, MalformedReply, NotFound, ObtError, OnionUnreachable, Refused, UsageError,
)
from ..httpserve import runner
from ..onion import parse_onion
from ..tor.client import TorClient
from ..tor.http import OnionHTTP
from ..uri import ShareURI, parse_cast_uri
from .core import MAX_FANOUT
from .feed import Feed
from .protocol import BEAT, MAX_CALL, MAX_LOST, Tasks, not_found_handler, port_of
from .wire import Checker, FrameReader, WireError

__all__ = ["STALL", "Listening", "Listenings"]

log = logging.getLogger(__name__)

#: seconds without a page after which a listener leaves its server and joins again
STALL = 4.0
#: seconds a join or a heartbeat may take
CALL_TIMEOUT = 30.0
#: seconds a server has to answer a stream request
CONNECT_TIMEOUT = 30.0
#: gaps remembered per listening
MAX_GAPS = 100
#: seconds a listener goes on trying to join before it gives up
GIVE_UP = 180.0
#: seconds a listening's onion has to be published before it offers to relay
PUBLISH_TIMEOUT = 120.0


class Listening:
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



class Listenings:
    """What the node listens to.

    :param tor: the node's tor (each listening's relay onion)
    :param http: HTTP over Tor (joins, heartbeats, the streams pulled)
    :param tasks: where each listening's loop runs
    """

    def __init__(self, tor: TorClient, http: OnionHTTP, tasks: Tasks) -> None:
        self.tor, self.http, self.tasks = tor, http, tasks
        self.items: dict[str, Listening] = {}

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
        listening = Listening(secrets.token_hex(4), parsed, slots, path)
        self.items[listening.id] = listening
        try:
            if path is not None:
                listening.file = open(path, "wb")  # noqa: SIM115 - closed by stop_listen
            await self._serve_relay(listening)
            address, key = await self.tor.add_onion(
                {80: ("127.0.0.1", port_of(listening.runner))}, await_publication=False)
            listening.onion, listening.key_ = address, key
        except BaseException:
            await self.stop(listening.id)
            raise
        listening.task = self.tasks.spawn(self._listen_loop(listening))
        return listening.describe()

    async def stop(self, ident: str) -> dict:
        listening = self.items.pop(ident, None)
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

    async def _serve_relay(self, listening: Listening) -> None:
        app = web.Application(client_max_size=MAX_CALL)
        app.router.add_get(f"/cast/{listening.uri.token}/stream", listening.feed.stream)
        app.router.add_route("*", "/{tail:.*}", not_found_handler)
        listening.runner = runner(app, log)
        await listening.runner.setup()
        await web.TCPSite(listening.runner, "127.0.0.1", 0).start()
        local = web.Application(client_max_size=MAX_CALL)
        local.router.add_get("/{token}/listen.ogg", listening.feed.listen)
        local.router.add_route("*", "/{tail:.*}", not_found_handler)
        listening.local = runner(local, log)
        await listening.local.setup()
        await web.TCPSite(listening.local, "127.0.0.1", 0).start()
        listening.local_url = (f"http://127.0.0.1:{port_of(listening.local)}/"
                               f"{listening.feed.local_token}/listen.ogg")

    async def _listen_loop(self, listening: Listening) -> None:
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

    async def _join(self, listening: Listening, lost: list[str]) -> str:
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

    async def _pull(self, listening: Listening, server: str) -> None:
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

    def _gap(self, listening: Listening, server: str, left_at: float, skipped: int) -> None:
        gap = {"at": round(time.time(), 3), "to": f"{server}.onion",
               "stall_s": round(time.monotonic() - left_at, 3),
               "pages_lost": listening.checker.skipped - skipped}
        log.info("listening %s: resumed after %.1f s, %d pages lost", listening.id,
                 gap["stall_s"], gap["pages_lost"])
        listening.gaps = (listening.gaps + [gap])[-MAX_GAPS:]

    async def _offer(self, listening: Listening) -> None:
        """Offer the broadcaster this listening's slots once its onion is published."""
        if listening.slots and await self.tor.wait_published(listening.onion, PUBLISH_TIMEOUT):
            listening.offered = listening.slots
            await listening.joined.wait()
            await self._beat(listening)  # at once, not at the next heartbeat
        elif listening.slots:
            log.warning("listening %s: its onion was not published in %g s; it relays to "
                        "no one", listening.id, PUBLISH_TIMEOUT)

    async def _beats(self, listening: Listening) -> None:
        offer = asyncio.ensure_future(self._offer(listening))
        try:
            while True:
                await asyncio.sleep(BEAT)
                await self._beat(listening)
        finally:
            offer.cancel()

    async def _beat(self, listening: Listening) -> None:
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

    async def _call(self, listening: Listening, what: str, body: dict,
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

