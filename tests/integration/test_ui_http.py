"""The web UI's server on 127.0.0.1 with a recording fake of the node's operations (no Tor).

The one-time link becomes an HttpOnly SameSite=Strict cookie; a wrong or used token, a
missing cookie and a foreign Host each get a plain 404; a POST from another origin, without
an Origin, or without the session's CSRF token gets 403 and runs nothing; every answer
carries the security headers; hostile names are shown, never run; forms run the typed
requests the CLI sends and redirect (post-redirect-get); /events streams live figures.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re

import aiohttp
import pytest

from onionshare_bt.errors import UsageError
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.ops import requests as rq
from onionshare_bt.ui.security import HEADERS, SESSION_IDLE, SESSION_MAX
from onionshare_bt.ui.server import UiServer

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TID = "ab" * 20


class FakeOps:
    """Canned results by request type; every request run is recorded."""

    def __init__(self, tmp_path) -> None:
        self.ran: list[rq.Request] = []
        self.home = tmp_path
        share = {"id": TID, "role": "share", "name": HOSTILE, "state": "seeding", "size": 5,
                 "uri": f"http://{'a' * 56}.onion/private/tok\"><script>x</script>",
                 "path": "/p", "peers": 0, "rate_up": 0}
        dl = {"id": "cd" * 20, "role": "download", "name": "film", "state": "downloading",
              "size": 100, "progress": 0.25, "done": 25, "wanted": 100, "rate_down": 5,
              "path": "/d", "reason": HOSTILE}
        self.results = {
            rq.ListTorrents: [share, dl],
            rq.Status: {"tor": {"bootstrap": {"progress": 100, "summary": "Done"}},
                        "version": "x", "pid": 1, "uptime": 3.0, "home": str(tmp_path)},
            rq.RelayStatus: {"enabled": False, "relayed_total": 0, "relayed_today": 0},
            rq.Ratio: {"remaining": 10, "allowance": 20, "used": 10, "ratio": 1.0},
            rq.Published: {"items": [], "public_uri": "u"},
            rq.TrustList: {"depth": 1, "trusted": []},
            rq.NodeId: {"onion": f"{'b' * 56}.onion", "public_uri": "http://b/public/t"},
            rq.TrustAdd: {"onion": f"{'c' * 56}.onion", "added": True},
            rq.Settings: {"home": str(tmp_path), "onions": 2},
            rq.SharePreview: {"path": "/src", "size": 3, "hidden_skipped": 0,
                              "files": [{"path": f"src/{HOSTILE}", "size": 3}]},
            rq.Share: {"name": "src", "uri": "http://x/private/y", "infohash": "ef" * 20,
                       "onions": ["a.onion", "b.onion", "c.onion"]},
            rq.Publish: {"name": "src", "public": True, "public_uri": "http://b/public/t"},
            rq.Get: {"name": "film", "id": "cd" * 20},
            rq.Search: {"searched": 1, "unreachable": [{"onion": HOSTILE}],
                        "results": [{"name": HOSTILE, "size": 1, "files": 1, "degree": 1,
                                     "node": HOSTILE, "uri": f"http://x/private/{HOSTILE}",
                                     "description": HOSTILE}]},
            rq.Catalogue: {"node": "n", "items": [{"name": HOSTILE, "size": 1, "files": 1,
                                                   "uri": "http://y/private/z"}]},
            rq.Peers: {"id": TID, "paths": [{"direction": "in", "onion": HOSTILE, "down": 1,
                                             "up": 2, "active": 1}], "engine_peers": [],
                       "growth": {"state": "settled", "paths": 2, "max_paths": 8,
                                  "reason": "path 3 added +4%, under 15%", "rate": 2e6,
                                  "steps": [{"paths": 2, "rate_before": 1e6,
                                             "rate_after": 2e6, "kept": True},
                                            {"paths": 3, "rate_before": 2e6,
                                             "rate_after": 2.08e6, "kept": False}]}},
        }
        self.results.update({
            rq.MirrorList: [{"source": HOSTILE, "public_uri": HOSTILE, "follow": True,
                             "items": [{}], "synced": None, "error": HOSTILE}],
            rq.MirrorAdd: {"source": f"{'d' * 56}.onion", "public_uri": "http://m/public/t"},
            rq.ReleaseList: [{"version": HOSTILE, "state": "verified", "path": HOSTILE,
                              "source": HOSTILE, "reason": HOSTILE}],
            rq.UpdateCheck: {"current": "0.1.0", "offers": 1, "refused": [{}],
                             "unreachable": [], "release": {"version": "0.2.0",
                                                            "state": "verified"}},
        })
        child = {"onion": HOSTILE, "degree": 1, "reachable": False, "error": HOSTILE,
                 "children": [{"onion": "f" * 56, "degree": 2, "reachable": True,
                               "error": None, "children": []}]}
        self.results[rq.TrustGraph] = {"depth": 2, "tree": {"onion": "b" * 56,
                                                            "children": [child]},
                                       "nodes": [child, child["children"][0]]}
        self.results[rq.Settings] = {**self.results[rq.Settings], "player": HOSTILE}

    async def run(self, request):
        self.ran.append(request)
        if isinstance(request, rq.TrustAdd) and "bad" in request.onion:
            raise UsageError("not an onion address: bad")
        return self.results[type(request)]


@pytest.fixture
async def ui(tmp_path):
    log = tmp_path / "node.log"
    log.write_text(f"line one\nshare {HOSTILE} added\n")
    ops = FakeOps(tmp_path)
    server = UiServer(ops, log_path=log, interval=0.05)
    await server.start()
    async with aiohttp.ClientSession() as http:
        yield server, ops, http
    await server.close()


def base(server) -> str:
    return f"http://127.0.0.1:{server.port}"


async def login(server, http) -> tuple[str, str]:
    """Redeem a fresh link: the session cookie and the page's CSRF token."""
    link = (await server.link())["url"]
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/"
        cookie = resp.cookies[server.cookie]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        sid = cookie.value
    async with http.get(base(server) + "/trust",
                        headers={"Cookie": f"{server.cookie}={sid}"}) as resp:
        text = await resp.text()
    return sid, re.search(r'name=csrf value="([^"]+)"', text).group(1)


def assert_secured(resp) -> None:
    for name, value in HEADERS.items():
        assert resp.headers.get(name) == value, name
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]


async def test_a_link_is_good_once_and_becomes_a_strict_httponly_cookie(ui):
    server, ops, http = ui
    link = (await server.link())["url"]
    assert re.fullmatch(rf"http://127\.0\.0\.1:{server.port}/management/[\w-]{{43}}", link)
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/"
        assert_secured(resp)
        sid = resp.cookies[server.cookie].value
    async with http.get(link, allow_redirects=False) as resp:  # used: nothing
        assert resp.status == 404 and await resp.text() == "404: Not Found"
        assert server.cookie not in resp.cookies
    async with http.get(base(server) + "/", headers={"Cookie": f"{server.cookie}={sid}"}) as resp:
        assert resp.status == 200 and "Overview" in await resp.text()
        assert_secured(resp)


@pytest.mark.parametrize("path", ["/management/wrong", "/management/" + "A" * 43, "/", "/shares",
                                  "/events", "/static/ui.js", "/settings", "/nowhere"])
async def test_wrong_token_or_no_cookie_is_a_plain_404(ui, path):
    server, ops, http = ui
    await server.link()  # a link exists; it is not the one guessed
    for cookie in ({}, {"Cookie": f"{server.cookie}=guessed"}):
        async with http.get(base(server) + path, headers=cookie, allow_redirects=False) as resp:
            assert resp.status == 404 and await resp.text() == "404: Not Found"
            assert server.cookie not in resp.cookies
            assert_secured(resp)
    assert ops.ran == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1",
                                  "127.0.0.1:1", "localhost", "{onion}.onion", ""])
async def test_a_foreign_host_is_refused_even_with_a_session(ui, host):
    server, ops, http = ui
    sid, _ = await login(server, http)
    ops.ran.clear()
    host = host.format(port=server.port, onion="d" * 56)
    link = (await server.link())["url"].split(str(server.port), 1)[1]
    for path in ("/", "/shares", link):
        async with http.get(base(server) + path, allow_redirects=False,
                            headers={"Host": host, "Cookie": f"{server.cookie}={sid}"}) as resp:
            assert resp.status == 404, (host, path)
            assert_secured(resp)
    assert ops.ran == []
    async with http.get(base(server) + "/", allow_redirects=False,  # localhost:<port> is ours
                        headers={"Host": f"localhost:{server.port}",
                                 "Cookie": f"{server.cookie}={sid}"}) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("origin, send_csrf", [
    (None, True), ("http://evil.example", True), ("null", True),
    ("http://127.0.0.1:1", True), ("http://localhost:{port}", True),
    ("http://127.0.0.1:{port}", False), ("http://127.0.0.1:{port}", "wrong"),
])
async def test_a_cross_origin_or_tokenless_post_is_forbidden_and_runs_nothing(ui, origin,
                                                                             send_csrf):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    ops.ran.clear()
    headers = {"Cookie": f"{server.cookie}={sid}"}
    if origin:
        headers["Origin"] = origin.format(port=server.port)
    form = {"onion": "c" * 56}
    if send_csrf:
        form["csrf"] = csrf if send_csrf is True else send_csrf
    async with http.post(base(server) + "/trust/add", data=form, headers=headers,
                         allow_redirects=False) as resp:
        assert resp.status == 403
        assert_secured(resp)
    assert ops.ran == []


async def test_a_same_origin_post_runs_the_clis_request_and_redirects(ui):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}
    ops.ran.clear()
    async with http.post(base(server) + "/trust/add", allow_redirects=False, headers=headers,
                         data={"csrf": csrf, "onion": "c" * 56}) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/trust"
    assert ops.ran == [rq.TrustAdd(onion="c" * 56)]
    async with http.get(base(server) + "/trust", headers=headers) as resp:
        text = await resp.text()
    assert f"trusted {'c' * 56}.onion" in text  # the message, once
    async with http.get(base(server) + "/trust", headers=headers) as resp:
        assert "trusted c" not in await resp.text()
    # refused as the control API refuses it: the operation's own error, shown after redirect
    async with http.post(base(server) + "/trust/add", headers=headers,
                         data={"csrf": csrf, "onion": "bad<b>"}) as resp:
        text = await resp.text()
    assert "not an onion address: bad" in text and "<b>" not in text.split("<main>")[1]
    ops.ran.clear()
    async with http.post(base(server) + "/trust/depth", headers=headers,
                         data={"csrf": csrf, "depth": "7"}) as resp:
        assert "depth must be from 1 to 6" in await resp.text()
    assert ops.ran[:1] != [rq.TrustDepth(depth=7)]
    async with http.post(base(server) + "/downloads", allow_redirects=False, headers=headers,
                         data={"csrf": csrf, "uri": "http://x/private/y"}) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/downloads"
    assert rq.Get(uri="http://x/private/y", target=str(ops.home / "downloads")) in ops.ran
    async with http.post(base(server) + "/mirrors/add", headers=headers,
                         data={"csrf": csrf, "onion": "d" * 56, "follow": "1"}) as resp:
        assert f"mirroring {'d' * 56}.onion at http://m/public/t" in await resp.text()
    assert rq.MirrorAdd(onion="d" * 56, follow=True) in ops.ran
    async with http.post(base(server) + "/releases/check", headers=headers,
                         data={"csrf": csrf}) as resp:
        assert ("update check (this is obt 0.1.0): obt 0.2.0 found, verified and seeded "
                "(verified); 1 refused") in await resp.text()
    assert rq.UpdateCheck() in ops.ran


async def test_hostile_names_render_inert(ui):
    server, ops, http = ui
    sid, _ = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}"}
    pages = ("/", "/shares", "/downloads", "/shares?path=/src", "/search?q=x", "/settings",
             f"/shares/{TID}/peers", "/catalogue?uri=http://y/public/t", "/mirrors",
             "/releases", "/trust/graph")
    for path in pages:
        async with http.get(base(server) + path, headers=headers) as resp:
            text = await resp.text()
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(" in text, path  # shown as text (settings show JSON)
        # the only script is the page's own file
        assert re.findall(r"<script[^>]*>", text) == ['<script src="/static/ui.js" defer>']
    assert rq.SharePreview(path="/src") in ops.ran
    assert rq.Search(terms=["x"]) in ops.ran and rq.Catalogue(uri="http://y/public/t") in ops.ran


async def test_a_public_catalogue_uri_shows_its_items_to_fetch(ui):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}
    public = f"http://{onion_from_pubkey(bytes(32))}.onion/public/{'t' * 22}"
    ops.ran.clear()
    async with http.post(base(server) + "/downloads", allow_redirects=False, headers=headers,
                         data={"csrf": csrf, "uri": public}) as resp:
        assert resp.status == 303 and resp.headers["Location"].startswith("/catalogue?uri=")
        where = resp.headers["Location"]
    assert ops.ran == []  # nothing downloaded
    async with http.get(base(server) + where, headers=headers) as resp:
        text = await resp.text()
    assert ops.ran == [rq.Catalogue(uri=public)]
    assert '<input type=hidden name="uri" value="http://y/private/z">' in text  # Fetch

async def test_events_stream_live_figures(ui):
    server, ops, http = ui
    sid, _ = await login(server, http)
    async with http.get(base(server) + "/events",
                        headers={"Cookie": f"{server.cookie}={sid}"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
        assert_secured(resp)
        seen = []
        while len(seen) < 2:
            line = (await resp.content.readline()).decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    row = seen[0]["t"]["cd" * 20]
    assert row["pct"] == "25.0 %" and row["progress"] == 0.25 and row["eta"] == "15 s"
    assert HOSTILE in seen[0]["o"]["log-node"]  # text for textContent, never HTML


async def test_a_session_ends_when_idle_and_at_its_longest_and_its_event_stream_with_it(
        tmp_path):
    now = [1000.0]
    server = UiServer(FakeOps(tmp_path), log_path=tmp_path / "none.log", interval=0.05,
                      clock=lambda: now[0])
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def status(sid: str, path: str = "/trust") -> int:
                async with http.get(base(server) + path, allow_redirects=False,
                                    headers={"Cookie": f"{server.cookie}={sid}"}) as resp:
                    return resp.status

            idle, _ = await login(server, http)
            busy, _ = await login(server, http)
            now[0] += SESSION_IDLE - 60
            assert await status(busy) == 200  # busy is seen; idle is not
            now[0] += 120
            assert await status(idle) == 404 and await status(busy) == 200
            while now[0] - 1000.0 < SESSION_MAX - SESSION_IDLE / 2:  # busy all along
                now[0] += SESSION_IDLE / 2
                assert await status(busy) == 200
            now[0] += SESSION_IDLE / 2
            assert await status(busy) == 404  # past its longest life, busy or not
            # a page left open keeps its session through the event stream, until its end
            live, _ = await login(server, http)
            async with http.get(base(server) + "/events",
                                headers={"Cookie": f"{server.cookie}={live}"}) as resp:
                assert resp.status == 200
                assert (await resp.content.readline()).startswith(b"event: update")
                now[0] += SESSION_IDLE + 1  # a stream's next update sees the session ended
                async with asyncio.timeout(5):  # else the stream goes on: a failure
                    await resp.content.read()  # to its end
            assert await status(live) == 404
    finally:
        await server.close()


async def test_the_share_form_takes_k_hidden_files_and_scrubbing_and_refuses_a_bad_k(ui):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}
    async with http.get(base(server) + "/shares?path=/src&include_hidden=1",
                        headers=headers) as resp:
        text = await resp.text()
    assert rq.SharePreview(path="/src", include_hidden=True) in ops.ran
    assert 'name=onions min=1 max=8 value="2"' in text  # the node's K, proposed
    assert '<input type=hidden name="include_hidden" value="1">' in text
    for k, scrub, flash in (("3", "1", "shared src on 3 onions"),
                            ("0", "", "1 to 8 onions, not 0"), ("9", "", "not 9"),
                            ("two", "", "onions must be a whole number")):
        ops.ran.clear()
        data = {"csrf": csrf, "path": "/src", "onions": k, "include_hidden": "1"}
        if scrub:
            data["scrub"] = scrub
        async with http.post(base(server) + "/shares", allow_redirects=False, headers=headers,
                             data=data) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/shares"
        async with http.get(base(server) + "/shares", headers=headers) as resp:
            assert flash in await resp.text(), k
        shared = [r for r in ops.ran if isinstance(r, rq.Share)]
        assert shared == ([rq.Share(path="/src", onions=3, include_hidden=True, scrub=True)]
                          if k == "3" else []), k  # a bad K never reaches the node


def acts(ops) -> list:
    """What the forms ran (not what the pages read)."""
    return [r for r in ops.ran if isinstance(r, (rq.Share, rq.Publish))]


async def test_a_share_is_published_with_its_description_from_the_share_form_or_its_row(ui):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}

    async def post(where: str, **fields) -> str:
        ops.ran.clear()
        async with http.post(base(server) + where, allow_redirects=False, headers=headers,
                             data={"csrf": csrf, **fields}) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/shares"
        async with http.get(base(server) + "/shares", headers=headers) as resp:
            return await resp.text()

    said = await post("/shares", path="/src", onions="2", public="1",
                      description=" Lisbon trams at night ")
    assert acts(ops) == [rq.Share(path="/src", onions=2),
                       rq.Publish(id="ef" * 20, public=True, description="Lisbon trams at night")]
    assert "shared src on 3 onions" in said and "src: public" in said
    said = await post("/shares", path="/src", onions="2", description="no publish")
    assert acts(ops) == [] and "a description goes with publishing" in said
    await post(f"/shares/{TID}/publish", public="1", description="from the row")
    assert acts(ops) == [rq.Publish(id=TID, public=True, description="from the row")]
    await post(f"/shares/{TID}/publish", public="1", description="  ")
    assert acts(ops) == [rq.Publish(id=TID, public=True, description=None)]  # empty: as before


async def test_a_download_row_links_to_its_bytes_per_path(ui):
    server, ops, http = ui
    sid, _ = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}"}
    dl = "cd" * 20
    async with http.get(base(server) + "/downloads", headers=headers) as resp:
        assert f'href="/downloads/{dl}/peers"' in await resp.text()
    ops.ran.clear()
    async with http.get(base(server) + f"/downloads/{dl}/peers", headers=headers) as resp:
        text = await resp.text()
    assert ops.ran == [rq.Peers(id=dl)] and "<td>in</td>" in text
    # how its paths grew: the count, why it settled, each path tried
    assert "Paths: 2 of at most 8 (settled: path 3 added +4%, under 15%)" in text
    assert "<td>kept</td>" in text and "<td>closed</td>" in text


async def test_the_settings_form_shows_the_files_values_and_sends_them_to_the_node(ui):
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}
    ops.results[rq.Settings] = {**ops.results[rq.Settings], "file": {"onions": 5,
                                                                     "relay": False}}
    ops.results[rq.SettingsSet] = {"path": "/h/config.toml", "changed": {"onions": [5, 3]}}
    async with http.get(base(server) + "/settings", headers=headers) as resp:
        text = await resp.text()
    assert '<input name="onions" value="5"' in text  # what config.toml says
    assert '<input name="stall_timeout" value="120.0"' in text  # else the default
    assert "<option>true</option><option selected>false</option>" in text
    assert 'name="player"' not in text and 'name="tor"' not in text
    async with http.post(base(server) + "/settings", allow_redirects=False, headers=headers,
                         data={"csrf": csrf, "onions": "3", "relay": "false"}) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/settings"
    assert ops.ran[-1] == rq.SettingsSet(values={"onions": "3", "relay": "false"})
    async with http.get(base(server) + "/settings", headers=headers) as resp:
        assert "saved to /h/config.toml: onions: 5 → 3." in await resp.text()


class FakeTor:
    log_path = "/nonexistent/tor.log"

    def __init__(self, onion: str) -> None:
        self.onion, self.added, self.removed = onion, [], []

    async def add_onion(self, ports, key=None, *, await_publication=True, client_auth=None):
        self.added.append((ports, key, await_publication))
        self.client_auth = client_auth
        return self.onion, key or f"ED25519-V3:secret-{len(self.added)}"

    async def remove_onion(self, address):
        self.removed.append(address)


async def test_onion_is_published_on_demand_once_per_tor_and_its_host_admitted(tmp_path):
    tor = FakeTor("e" * 56)
    server = UiServer(FakeOps(tmp_path), log_path=tmp_path / "none.log", tor=tor)
    await server.start()
    try:
        plain = await server.link()
        assert "onion_url" not in plain and tor.added == []  # off by default
        first = await server.link(onion=True)
        again = await server.link(onion=True)
        assert tor.added == [({80: ("127.0.0.1", server.port)}, None, True)]
        token = first["url"].rsplit("/", 1)[1]
        assert first["onion_url"] == f"http://{'e' * 56}.onion/management/{token}"
        assert again["onion_url"] != first["onion_url"]  # a new token each time
        async with aiohttp.ClientSession() as http:
            async with http.get(first["url"], allow_redirects=False,
                                headers={"Host": f"{'e' * 56}.onion"}) as resp:
                assert resp.status == 303  # the onion's own name is a good Host
            sid = resp.cookies[server.cookie].value
            async with http.post(base(server) + "/trust/add", allow_redirects=False,
                                 data={"onion": "x", "csrf": "x"},
                                 headers={"Host": f"{'e' * 56}.onion",
                                          "Origin": f"http://127.0.0.1:{server.port}",
                                          "Cookie": f"{server.cookie}={sid}"}) as resp:
                assert resp.status == 403  # the origin must be the onion's
        await server.republish()  # what the node does after it restarted its tor
        assert tor.added[1:] == [({80: ("127.0.0.1", server.port)}, "ED25519-V3:secret-1",
                                  True)]  # the same key: the same address, links still good
        assert (await server.link(onion=True))["onion_url"].startswith(f"http://{'e' * 56}")
        assert len(tor.added) == 2 and tor.client_auth is None
    finally:
        await server.close()
    assert tor.removed == ["e" * 56]


async def test_client_authorization_replaces_the_onion_and_hands_out_the_key_once(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    tor = FakeTor("e" * 56)
    server = UiServer(FakeOps(tmp_path), log_path=tmp_path / "none.log", tor=tor)
    await server.start()
    try:
        await server.link(onion=True)
        authed = await server.link(client_auth=True)
        assert tor.removed == ["e" * 56] and len(tor.added) == 2
        assert tor.added[1][1] is None  # a new key: a new address, old links die
        key = authed["client_auth"]["private_key"]
        assert len(key) == 52 and len(tor.client_auth) == 52 and tor.client_auth != key
        assert authed["client_auth"]["auth_private"] == f"{'e' * 56}:descriptor:x25519:{key}"
        assert authed["onion_url"].startswith(f"http://{'e' * 56}.onion/management/")
        # the public key tor got is the private key's own
        raw = base64.b32decode(key + "====")
        public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert base64.b32encode(public).decode().rstrip("=") == tor.client_auth
        again = await server.link(client_auth=True)  # kept: asked again, the same onion
        assert len(tor.added) == 2 and again["client_auth"]["private_key"] == key
        plain = await server.link(onion=True)  # asked without: replaced again
        assert len(tor.added) == 3 and "client_auth" not in plain and tor.client_auth is None
    finally:
        await server.close()


async def test_the_trust_graph_is_a_picture_of_the_walk(ui):
    server, ops, http = ui
    sid, _ = await login(server, http)
    async with http.get(base(server) + "/trust/graph",
                        headers={"Cookie": f"{server.cookie}={sid}"}) as resp:
        text = await resp.text()
    svg = text.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count("<circle") == 3 and svg.count("<path") == 2
    assert svg.count('stroke="#b00020"') == 1  # the unreachable node, drawn hollow and red
    assert f"{'f' * 16}…</text>" in svg and "this node</text>" in svg
    assert "<script" not in svg and "2 node(s) reached through trust, 1 unreachable" in text


async def test_the_overview_draws_the_relays_rate_over_time(ui):
    server, ops, http = ui
    sid, _ = await login(server, http)
    cookie = {"Cookie": f"{server.cookie}={sid}"}
    async with http.get(base(server) + "/", headers=cookie) as resp:
        assert "Relay rate" not in await resp.text()  # no relay: no chart
    ops.results[rq.RelayStatus] = {"enabled": True, "relayed_total": 9, "relayed_today": 9,
                                   "history": [[1000.0, 0], [1010.0, 2048], [1020.0, 1024]]}
    async with http.get(base(server) + "/", headers=cookie) as resp:
        text = await resp.text()
    img = text.split("Relay rate, last hour</h2>", 1)[1].split(">", 1)[0]
    assert 'src="/relay-chart.svg"' in img and "data-reload=10" in img  # the script reloads it
    async with http.get(base(server) + "/relay-chart.svg") as resp:
        assert resp.status == 404  # no session, no picture
    async with http.get(base(server) + "/relay-chart.svg", headers=cookie) as resp:
        assert resp.headers["Content-Type"].startswith("image/svg+xml")
        assert_secured(resp)
        svg = await resp.text()
    assert svg.startswith("<svg") and "<polyline" in svg
    points = svg.split('points="', 1)[1].split('"', 1)[0].split()
    assert len(points) == 3 and float(points[1].split(",")[1]) < float(points[0].split(",")[1])
    assert "2.0 KiB/s" in svg  # the top of the scale: the fastest point
    ops.results[rq.RelayStatus] = {**ops.results[rq.RelayStatus], "history": [[1000.0, 5]]}
    async with http.get(base(server) + "/relay-chart.svg", headers=cookie) as resp:
        svg = await resp.text()  # an image still, which says why it has no line
    assert svg.startswith("<svg") and "Not enough samples" in svg and "<polyline" not in svg


async def test_a_download_row_pauses_and_resumes_with_plain_forms(ui):
    """Pause on a download in progress, Resume on a paused one, none on a finished one;
    each is a form POST that runs the CLI's request and redirects to the downloads page."""
    server, ops, http = ui
    sid, csrf = await login(server, http)
    headers = {"Cookie": f"{server.cookie}={sid}", "Origin": base(server)}
    dl = "cd" * 20
    async with http.get(base(server) + "/downloads", headers=headers) as resp:
        text = await resp.text()
    assert f'action="/downloads/{dl}/pause"' in text and "/resume" not in text
    ops.results[rq.Pause] = {"id": dl, "name": "film", "state": "paused"}
    ops.ran.clear()
    async with http.post(base(server) + f"/downloads/{dl}/pause", allow_redirects=False,
                         headers=headers, data={"csrf": csrf}) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/downloads"
    assert ops.ran == [rq.Pause(id=dl)]
    rows = ops.results[rq.ListTorrents]
    ops.results[rq.ListTorrents] = [rows[0], {**rows[1], "state": "paused"}]
    async with http.get(base(server) + "/downloads", headers=headers) as resp:
        text = await resp.text()
    assert "paused film" in text  # the outcome, once
    assert f'action="/downloads/{dl}/resume"' in text and "/pause" not in text
    ops.results[rq.Resume] = {"id": dl, "name": "film", "state": "downloading"}
    async with http.post(base(server) + f"/downloads/{dl}/resume", headers=headers,
                         data={"csrf": csrf}) as resp:
        assert "resumed film" in await resp.text()
    assert ops.ran[-2:] == [rq.Resume(id=dl), rq.ListTorrents()]
    ops.results[rq.ListTorrents] = [rows[0], {**rows[1], "state": "complete"}]
    async with http.get(base(server) + "/downloads", headers=headers) as resp:
        text = await resp.text()
    assert "/pause" not in text and "/resume" not in text and f"/downloads/{dl}/remove" in text
