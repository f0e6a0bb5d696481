"""The web UI's pages: each runs the node's operations (the same typed requests the CLI
sends) and draws their results with :mod:`.html`.

A form posts, the operation runs, and the answer is a redirect (post-redirect-get) to the
page, where a one-time message says what happened or what was refused: the operation's own
error, so the UI refuses exactly what the control API refuses. ``/events`` streams the live
figures (server-sent events) that ``static/ui.js`` writes into the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode
from typing import Any

from aiohttp import web

from ..errors import ObtError, UsageError
from ..ops import requests as rq
from ..uri import parse_uri
from . import chart, graph, html
from .security import Session, secure

log = logging.getLogger(__name__)

#: the request's session, put there by the server's guard
SESSION = web.RequestKey("session", Session)

#: lines of the node's log the overview shows, and the bytes read from its end for them
LOG_LINES = 40
LOG_BYTES = 16 * 1024
#: a download's .torrent is fetched through Tor before ``get`` answers
GET_TIMEOUT = 300.0


def tail(path: Path, lines: int = LOG_LINES) -> str:
    """The last ``lines`` lines of a log, or a note saying why there are none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - LOG_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty so far)"


def page(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def redirect(to: str) -> web.Response:
    return web.Response(status=303, headers={"Location": to})


class Pages:
    """Every page and form of the UI.

    :param ops: the node's operations (``await ops.run(request)``)
    """

    def __init__(self, ops, logs: Callable[[], dict[str, Path]], interval: float,
                 keep: Callable[[Session], bool] = lambda session: True) -> None:
        """:param logs: the logs the overview shows, by name
        :param keep: whether a session goes on (:meth:`.security.Gate.keep`), asked before
          each live update"""
        self.ops, self.logs, self.interval, self.keep = ops, logs, interval, keep
        #: set when the server stops: the event streams end
        self.closing = asyncio.Event()

    async def _act(self, request: web.Request, back: str,
                   build: Callable[[Any], rq.Request],
                   done: Callable[[Any], str], keep: bool = False) -> Any:
        """Run the request ``build(form)`` makes; tell the session the outcome; go ``back``.

        :param keep: return the operation's result (None if it failed) instead of the
          redirect, for a form that runs a second operation on it
        """
        session = request[SESSION]
        form = await request.post()
        result = None
        try:
            result = await self.ops.run(build(form))
            session.say("ok", done(result))
        except ObtError as exc:
            session.say("error", exc.message + (f" ({exc.hint})" if exc.hint else ""))
        except Exception:  # reported, never a crash of the node
            log.exception("web UI operation failed")
            session.say("error", "internal error; see the node's log")
        return result if keep else redirect(back)

    # -- overview -----------------------------------------------------------------------
    async def _overview_data(self) -> tuple[dict, dict, dict, list]:
        return await asyncio.gather(self.ops.run(rq.Status()), self.ops.run(rq.RelayStatus()),
                                    self.ops.run(rq.Ratio()), self.ops.run(rq.ListTorrents()))

    async def overview(self, request: web.Request) -> web.Response:
        status, relay, ratio, rows = await self._overview_data()
        return page(html.overview(status, relay, ratio, rows, self._tails(), request[SESSION]))

    async def relay_chart(self, request: web.Request) -> web.Response:
        """The relay's rate over the last hour, an SVG image (:func:`.chart.rate_image`)."""
        relay = await self.ops.run(rq.RelayStatus())
        return web.Response(text=chart.rate_image(relay.get("history")),
                            content_type="image/svg+xml")

    def _tails(self) -> dict[str, str]:
        return {name: tail(path) for name, path in self.logs().items()}

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every ``interval`` the live figures of every torrent."""
        resp = secure(web.StreamResponse(headers={"Content-Type": "text/event-stream"}))
        await resp.prepare(request)
        while not self.closing.is_set() and self.keep(request[SESSION]):
            try:
                status, relay, ratio, rows = await self._overview_data()
            except ObtError as exc:  # e.g. tor restarting: say so, try again next time
                await resp.write(f"event: trouble\ndata: {json.dumps(exc.message)}\n\n".encode())
                await self._pause()
                continue
            data = {"t": {r["id"]: html.live_fields(r) for r in rows},
                    "o": {**html.overview_fields(status, relay, ratio, rows),
                          **{f"log-{k}": v for k, v in self._tails().items()}}}
            try:
                await resp.write(f"event: update\ndata: {json.dumps(data)}\n\n".encode())
            except (ConnectionError, RuntimeError):
                break
            await self._pause()
        return resp

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), self.interval)

    # -- shares -------------------------------------------------------------------------
    async def shares(self, request: web.Request) -> web.Response:
        asked = request.query.get("path", "")
        include_hidden = request.query.get("include_hidden") == "1"
        preview, error = None, ""
        if asked:
            try:
                preview = await self.ops.run(rq.SharePreview(path=asked,
                                                             include_hidden=include_hidden))
            except ObtError as exc:
                error = exc.message
        rows = [r for r in await self.ops.run(rq.ListTorrents()) if r["role"] == "share"]
        published = await self.ops.run(rq.Published())
        public = {i["infohash"] for i in published.get("items", [])}
        onions = (await self.ops.run(rq.Settings()))["onions"]
        return page(html.shares(rows, public, request[SESSION], preview, asked, error,
                                include_hidden=include_hidden, onions=onions))

    async def share(self, request: web.Request) -> web.Response:
        """Share what the preview showed, on K onions, cleaned copies if asked; then, if
        asked, publish it with its description."""
        form = await request.post()
        public = form.get("public") == "1"
        described = _optional(form, "description")
        if described is not None and not public:
            request[SESSION].say("error", "a description goes with publishing: nothing shared")
            return redirect("/shares")
        said = await self._act(
            request, "/shares",
            lambda f: rq.Share(path=_text(f, "path"), onions=_whole(_text(f, "onions"), "onions"),
                               include_hidden=f.get("include_hidden") == "1",
                               scrub=f.get("scrub") == "1"),
            lambda r: f"shared {r['name']} on {len(r.get('onions', []))} onions: {r['uri']}",
            keep=public)
        if public and isinstance(said, dict):
            await self._act(request, "/shares",
                            lambda f: rq.Publish(id=said["infohash"], public=True,
                                                 description=described),
                            _published)
        return redirect("/shares")

    async def publish(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        return await self._act(
            request, "/shares",
            lambda f: rq.Publish(id=tid, public=_text(f, "public") == "1",
                                 description=_optional(f, "description")),
            _published)

    async def unshare(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        return await self._act(request, "/shares", lambda f: rq.Unshare(id=tid),
                               lambda r: f"no longer shared: {r['name']}")

    async def peers(self, request: web.Request) -> web.Response:
        try:
            info = await self.ops.run(rq.Peers(id=request.match_info["id"]))
        except UsageError:
            return web.Response(status=404, text="404: Not Found")
        return page(html.peers(info, request[SESSION]))

    # -- downloads ----------------------------------------------------------------------
    async def downloads(self, request: web.Request) -> web.Response:
        rows = [r for r in await self.ops.run(rq.ListTorrents()) if r["role"] == "download"]
        return page(html.downloads(rows, request[SESSION]))

    async def get(self, request: web.Request) -> web.Response:
        """Download a private URI; a public catalogue's URI shows its items to pick from."""
        form = await request.post()
        text = form.get("uri")
        if isinstance(text, str) and _is_catalogue(text):
            return redirect("/catalogue?" + urlencode({"uri": text.strip()}))
        settings = await self.ops.run(rq.Settings())
        target = str(Path(settings["home"]) / "downloads")
        return await self._act(
            request, "/downloads",
            lambda f: rq.Get(uri=_text(f, "uri"), target=target, timeout=None),
            lambda r: f"downloading {r['name']}")

    async def remove(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        return await self._act(request, "/downloads", lambda f: rq.Remove(id=tid),
                               lambda r: f"removed {r['name']} (its files stay)")

    async def pause(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        return await self._act(request, "/downloads", lambda f: rq.Pause(id=tid),
                               lambda r: f"paused {r['name']}")

    async def resume(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        return await self._act(request, "/downloads", lambda f: rq.Resume(id=tid),
                               lambda r: f"resumed {r['name']}")

    async def catalogue(self, request: web.Request) -> web.Response:
        uri = request.query.get("uri", "")
        data, error = None, ""
        try:
            data = await self.ops.run(rq.Catalogue(uri=uri))
        except ObtError as exc:
            error = exc.message
        return page(html.catalogue(uri, data, request[SESSION], error))

    # -- search and trust ---------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        data, error = None, ""
        if q.strip():
            try:
                data = await self.ops.run(rq.Search(terms=q.split()))
            except ObtError as exc:
                error = exc.message
        return page(html.search(q, data, request[SESSION], error))

    async def trust(self, request: web.Request) -> web.Response:
        info, me = await asyncio.gather(self.ops.run(rq.TrustList()), self.ops.run(rq.NodeId()))
        return page(html.trust(info, me, request[SESSION]))

    async def trust_graph(self, request: web.Request) -> web.Response:
        data = await self.ops.run(rq.TrustGraph())
        return page(html.trust_graph(data, graph.svg(data), request[SESSION]))

    async def trust_add(self, request: web.Request) -> web.Response:
        return await self._act(request, "/trust", lambda f: rq.TrustAdd(onion=_text(f, "onion")),
                               lambda r: f"trusted {r['onion']}")

    async def trust_remove(self, request: web.Request) -> web.Response:
        return await self._act(request, "/trust",
                               lambda f: rq.TrustRemove(onion=_text(f, "onion")),
                               lambda r: f"no longer trusted: {r['onion']}")

    async def trust_depth(self, request: web.Request) -> web.Response:
        return await self._act(request, "/trust",
                               lambda f: rq.TrustDepth(depth=_depth(_text(f, "depth"))),
                               lambda r: f"trust depth {r['depth']}")

    # -- mirrors and releases -----------------------------------------------------------
    async def mirrors(self, request: web.Request) -> web.Response:
        return page(html.mirrors(await self.ops.run(rq.MirrorList()), request[SESSION]))

    async def mirror_add(self, request: web.Request) -> web.Response:
        return await self._act(
            request, "/mirrors",
            lambda f: rq.MirrorAdd(onion=_text(f, "onion"), follow=f.get("follow") == "1"),
            lambda r: f"mirroring {r['source']} at {r['public_uri']}")

    async def mirror_remove(self, request: web.Request) -> web.Response:
        return await self._act(request, "/mirrors",
                               lambda f: rq.MirrorRemove(onion=_text(f, "onion")),
                               lambda r: f"no longer mirrored: {r['source']}")

    async def releases(self, request: web.Request) -> web.Response:
        return page(html.releases(await self.ops.run(rq.ReleaseList()), request[SESSION]))

    async def update_check(self, request: web.Request) -> web.Response:
        return await self._act(request, "/releases", lambda f: rq.UpdateCheck(), _checked)

    async def settings(self, request: web.Request) -> web.Response:
        return page(html.settings(await self.ops.run(rq.Settings()), request[SESSION]))

    async def settings_save(self, request: web.Request) -> web.Response:
        """Every field the form sent (the web UI's settings, :data:`.configfile.UI_KEYS`);
        the node writes those that changed, or refuses them all."""
        return await self._act(
            request, "/settings",
            lambda f: rq.SettingsSet(values={k: v for k, v in f.items()
                                             if k != "csrf" and isinstance(v, str)}),
            _saved)


def _optional(form, name: str) -> str | None:
    """A field that may be left empty (None then)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _published(r: dict) -> str:
    return f"{r['name']}: {'public' if r['public'] else 'private'}"


def _text(form, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{name} is missing")
    return value.strip()


def _saved(info: dict) -> str:
    changed = info.get("changed") or {}
    if not changed:
        return "nothing changed"
    said = "; ".join(f"{k}: {json.dumps(a)} → {json.dumps(b)}" for k, (a, b) in changed.items())
    return f"saved to {info.get('path')}: {said}. The node takes them when it restarts."


def _checked(info: dict) -> str:
    """What an update check found, in one line."""
    release = info.get("release")
    text = (f"obt {release['version']} found, verified and seeded ({release['state']})"
            if release else "no newer release")
    refused, gone = info.get("refused") or [], info.get("unreachable") or []
    if refused:
        text += f"; {len(refused)} refused"
    if gone:
        text += f"; {len(gone)} node(s) unreachable"
    return f"update check (this is obt {info.get('current', '?')}): {text}"


def _is_catalogue(text: str) -> bool:
    try:
        return parse_uri(text).kind == "public"
    except ObtError:
        return False  # the download refuses it, with the reason


def _whole(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {text[:20]!r}") from None


def _depth(text: str) -> int:
    """A depth as ``obt trust depth`` takes it: a whole number from 1 to 6."""
    depth = _whole(text, "depth")
    if not 1 <= depth <= 6:
        raise UsageError("depth must be from 1 to 6")
    return depth
