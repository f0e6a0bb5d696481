"""The web UI's HTTP server: aiohttp on 127.0.0.1 (an ephemeral port), in the node's loop.

Every request passes :meth:`UiServer._guard` first: the Host header must name the UI (else a
plain 404), the session cookie must be known (else a plain 404; only ``/management/<token>``
is open, to exchange a one-time link for that cookie), and a POST must come from the UI's
own origin (else 403) carrying its session's CSRF token (else 403). Every answer, refusals
included, carries the headers of :data:`.security.HEADERS`. The access log is off: a link's
path is a credential.

``obt ui --onion`` publishes the same server on an onion service of its own (virtual port
80), through the node's tor like every other service; the onion lives until the node stops,
on the same address when the node restarts its tor. ``--client-auth`` publishes it with Tor
v3 client authorization instead: a new address, reachable only with the private key printed
once (:mod:`~onionshare_bt.tor.clientauth`); asking for the other kind replaces the onion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from ..errors import ObtError
from ..ops import requests as rq
from . import pages
from .pages import SESSION
from ..tor.clientauth import ClientKey, new_client_key
from .security import COOKIE, Gate, host_allowed, origin_allowed, secure

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ONION_PORT = 80


class Ops(Protocol):
    async def run(self, request: Any) -> Any: ...


class Tor(Protocol):
    log_path: Path

    async def add_onion(self, ports: dict, key: str | None = None, *,
                        await_publication: bool = True,
                        client_auth: str | None = None) -> tuple[str, str]: ...

    async def remove_onion(self, address: str) -> None: ...


def plain(status: int) -> web.Response:
    """A refusal that says nothing more: ``404: Not Found`` or ``403: Forbidden``."""
    reason = "Not Found" if status == 404 else "Forbidden"
    return web.Response(status=status, text=f"{status}: {reason}")


class UiServer:
    """The node's management UI.

    :param ops: the node's operations (:class:`~onionshare_bt.ops.operations.Operations`)
    :param log_path: the node's log, whose tail the overview shows (and tor's)
    :param tor: the node's tor client, for ``--onion`` (restarted in place by the node)
    :param interval: seconds between two live updates
    """

    def __init__(self, ops: Ops, *, log_path: Path, tor: Tor | None = None,
                 clock: Callable[[], float] = time.time, interval: float = 1.0) -> None:
        self.ops, self.tor = ops, tor
        self.gate = Gate(clock)
        self.pages = pages.Pages(ops, self._logs, interval, keep=self.gate.keep)
        self._log_path = log_path
        self.port = 0
        self.onion: str | None = None
        self._runner: web.AppRunner | None = None
        self._publishing = asyncio.Lock()
        self._onion_key: str | None = None
        #: the client key the onion was published with (None: no client authorization)
        self._client: ClientKey | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        p = self.pages
        app.router.add_get("/management/{token}", self._redeem)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/events", p.events)
        app.router.add_get("/", p.overview)
        app.router.add_get("/relay-chart.svg", p.relay_chart)
        app.router.add_get("/shares", p.shares)
        app.router.add_post("/shares", p.share)
        app.router.add_get("/shares/{id}/peers", p.peers)
        app.router.add_post("/shares/{id}/publish", p.publish)
        app.router.add_post("/shares/{id}/unshare", p.unshare)
        app.router.add_get("/downloads", p.downloads)
        app.router.add_post("/downloads", p.get)
        app.router.add_get("/downloads/{id}/peers", p.peers)
        app.router.add_post("/downloads/{id}/remove", p.remove)
        app.router.add_post("/downloads/{id}/pause", p.pause)
        app.router.add_post("/downloads/{id}/resume", p.resume)
        app.router.add_get("/catalogue", p.catalogue)
        app.router.add_get("/search", p.search)
        app.router.add_get("/trust", p.trust)
        app.router.add_get("/trust/graph", p.trust_graph)
        app.router.add_post("/trust/add", p.trust_add)
        app.router.add_post("/trust/remove", p.trust_remove)
        app.router.add_post("/trust/depth", p.trust_depth)
        app.router.add_get("/mirrors", p.mirrors)
        app.router.add_post("/mirrors/add", p.mirror_add)
        app.router.add_post("/mirrors/remove", p.mirror_remove)
        app.router.add_get("/releases", p.releases)
        app.router.add_post("/releases/check", p.update_check)
        app.router.add_get("/settings", p.settings)
        app.router.add_post("/settings", p.settings_save)
        return app

    def _logs(self) -> dict[str, Path]:
        logs = {"node": self._log_path}
        if self.tor is not None:
            logs["tor"] = self.tor.log_path
        return logs

    @property
    def cookie(self) -> str:
        """The session cookie's name: cookies ignore ports, and two nodes' UIs on one
        machine differ only in theirs."""
        return f"{COOKIE}_{self.port}"

    # -- lifetime -----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on ``host``:``port`` (0: any free port); the port."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def close(self) -> None:
        self.pages.closing.set()
        if self.onion is not None and self.tor is not None:
            with contextlib.suppress(ObtError):
                await self.tor.remove_onion(self.onion)
            self.onion = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def runners(self) -> dict:
        """The one operation the web UI runs itself, for the control socket's
        :class:`~onionshare_bt.ops.operations.Dispatch` beside the node's operations."""
        return {rq.UiLink: self.ui_link}

    async def ui_link(self, req: rq.UiLink) -> dict:
        """``obt ui``: a one-time link in (:meth:`link`)."""
        return await self.link(req.onion, req.client_auth)

    async def link(self, onion: bool = False, client_auth: bool = False) -> dict:
        """A one-time link in (``obt ui``); with ``onion`` the UI's onion is published first,
        with ``client_auth`` behind Tor v3 client authorization (its key in the reply).

        :raises TorError: tor refused the onion service
        """
        if onion or client_auth:
            await self._publish(client_auth)
        token, expires = self.gate.new_link()
        out = {"url": f"http://127.0.0.1:{self.port}/management/{token}", "expires": expires}
        if onion or client_auth:
            out["onion_url"] = f"http://{self.onion}.onion/management/{token}"
        if client_auth and self._client is not None:
            out["client_auth"] = {"private_key": self._client.private,
                                  "auth_private": self._client.auth_private(self.onion or "")}
        return out

    async def _publish(self, client_auth: bool, again: bool = False) -> None:
        async with self._publishing:
            if self.tor is None:
                raise ObtError("this node's web UI cannot publish an onion (no tor)")
            tor = self.tor
            if self.onion is not None and (self._client is not None) != client_auth:
                with contextlib.suppress(ObtError):  # the other kind: replaced, links die
                    await tor.remove_onion(self.onion)
                self.onion = self._onion_key = self._client = None
            if self.onion is not None and not again:
                return
            if self.onion is None:
                self._client = new_client_key() if client_auth else None
            # first time, or the node restarted tor: the same key keeps the same address
            address, self._onion_key = await tor.add_onion(
                {ONION_PORT: ("127.0.0.1", self.port)}, self._onion_key,
                await_publication=True,
                client_auth=self._client.public if self._client else None)
            self.onion = address
            log.info("the web UI is published on an onion service of its own%s",
                     " (client authorization)" if self._client else "")

    async def republish(self) -> None:
        """After the node restarted its tor: the UI's onion again, on the same address."""
        if self.onion is not None:
            await self._publish(self._client is not None, again=True)

    # -- the guard ----------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            resp = await self._checked(request, handler)
        except web.HTTPException as exc:  # the router's 404/405
            resp = plain(404 if exc.status in (404, 405) else exc.status)
        except ObtError as exc:  # a page's operation failed (a POST's failure is a message)
            resp = web.Response(status=500, text=f"error: {exc.message}")
        if not resp.prepared:
            secure(resp)
        return resp

    async def _checked(self, request: web.Request, handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), self.port, self.onion):
            return plain(404)
        if request.method not in ("GET", "HEAD", "POST"):
            return plain(404)
        if request.path.startswith("/management/"):
            return await handler(request) if request.method == "GET" else plain(404)
        session = self.gate.session(request.cookies.get(self.cookie))
        if session is None:
            return plain(404)
        if request.method == "POST":
            if not origin_allowed(request.headers.get("Origin"), request.headers["Host"]):
                return plain(403)
            form = await request.post()
            if not session.csrf_ok(form.get("csrf")):
                return plain(403)
        request[SESSION] = session
        return await handler(request)

    async def _redeem(self, request: web.Request) -> web.StreamResponse:
        session = self.gate.redeem(request.match_info["token"])
        if session is None:
            return plain(404)
        resp = web.Response(status=303, headers={"Location": "/"})
        resp.set_cookie(self.cookie, session.id, httponly=True, samesite="Strict", path="/")
        return resp

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        types = {"ui.js": "text/javascript", "ui.css": "text/css"}
        if name not in types:
            return plain(404)
        return web.Response(body=(STATIC / name).read_bytes(), content_type=types[name],
                            charset="utf-8")
