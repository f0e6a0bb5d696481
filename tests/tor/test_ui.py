"""Issue 14: the node's web UI in a real browser (Debian's headless Chromium via selenium and
/usr/bin/chromedriver), on the private Tor network.

Node A shares a folder from its UI (the file list and size shown before confirming); node B
pastes the URI into its UI and the download completes byte-identical, its progress updating
live through server-sent events (no reload). The same flow again with JavaScript disabled
(plain forms, post-redirect-get, reloads), and a download paused and resumed from its row's
buttons. Then A publishes a share from its UI, B trusts
A and searches from its UI, and one click fetches the result. Every page is screenshotted
(the folder is printed).

Chromium runs with background networking off and every host name unresolvable but
127.0.0.1, so the sinkhole's leak check holds for the browser too.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .conftest import Node
from .test_node_lifecycle import row

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental

CHROMEDRIVER = "/usr/bin/chromedriver"
#: B's download cap: a 3 MiB share takes several seconds, so progress is seen moving
RATE = 512 * 1024
QUIET = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection",
         "--no-pings", "--dns-prefetch-disable", "--no-proxy-server",
         "--disable-features=OptimizationHints,MediaRouter,Translate,NetworkTimeServiceQuerying",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def browser(javascript: bool) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in QUIET:
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class Ui:
    """One node's UI in one browser."""

    def __init__(self, node: Node, driver: webdriver.Chrome, shots: Path, tag: str,
                 javascript: bool = True) -> None:
        self.node, self.d, self.shots, self.tag = node, driver, shots, tag
        self.javascript = javascript
        link = node.json("ui")["url"]
        self.base = link.split("/management/")[0]
        driver.get(link)
        # the token is gone from the address bar; the session cookie is HttpOnly
        assert driver.current_url == self.base + "/"
        cookie = next(c for c in driver.get_cookies() if c["name"].startswith("obt_ui_"))
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    def go(self, path: str) -> None:
        self.d.get(self.base + path)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{self.tag}-{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def submit(self, form_action: str, **fields: str) -> None:
        """Fill the form posting to ``form_action`` and press its button (a real click)."""
        form = self.d.find_element(By.CSS_SELECTOR, f'form[action="{form_action}"]')
        for name, value in fields.items():
            box = form.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def flash(self) -> str:
        try:
            return " ".join(e.text for e in self.d.find_elements(By.CSS_SELECTOR, ".flash"))
        except StaleElementReferenceException:  # the next page is loading
            return ""

    def expect(self, text: str, timeout: float = 60) -> None:
        """Wait for the page's message to say ``text`` (a form's answer loads after a click)."""
        try:
            self.wait(lambda: text in self.flash(), timeout)
        except TimeoutException:
            body = self.d.find_element(By.TAG_NAME, "body").text
            raise AssertionError(f"no message {text!r} at {self.d.current_url}: {body[:2000]}")

    def cell(self, tid: str, key: str) -> str:
        return self.d.find_element(By.CSS_SELECTOR, f'span[data-t="{tid}"][data-k="{key}"]').text

    def wait(self, cond, timeout: float = 120, poll: float = 0.2):
        """Poll ``cond`` until it is truthy. An element replaced while it was read (a page
        that reloads or redraws itself) is read again on the next poll."""
        return WebDriverWait(self.d, timeout, poll_frequency=poll,
                             ignored_exceptions=(StaleElementReferenceException,)
                             ).until(lambda _d: _read(cond))


#: how chromedriver sometimes reports an element whose page was replaced while it was read
#: (a full run, session 12: right after a form's submit), instead of a stale element
DETACHED = "does not belong to the document"


def _read(cond):
    """``cond()``, or False if an element it read was detached by a page load meanwhile."""
    try:
        return cond()
    except WebDriverException as exc:
        if DETACHED not in (exc.msg or ""):
            raise
        return False


@pytest.fixture(scope="module")
def world(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("ui")
    shots = root / "screenshots"
    shots.mkdir()
    print(f"\nweb UI screenshots: {shots}")
    a, b = Node(root / "a", testnet), Node(root / "b", testnet)
    a.configure(trust_timeout=10)
    b.configure(trust_timeout=10, download_rate=RATE)
    for node in (a, b):
        node.start()
    drivers = []
    try:
        drivers = [browser(True), browser(False)]
        yield {"a": a, "b": b, "root": root, "shots": shots, "js": drivers[0],
               "nojs": drivers[1]}
    finally:
        for d in drivers:
            try:
                d.quit()
            except WebDriverException:
                pass
        for node in (a, b):
            node.stop()


def make_folder(root: Path, name: str, sizes: dict[str, int]) -> Path:
    src = root / name
    (src / "sub").mkdir(parents=True)
    for rel, size in sizes.items():
        (src / rel).write_bytes(secrets.token_bytes(size))
    return src


def share_from_ui(ui: Ui, src: Path) -> tuple[str, str]:
    """Share ``src`` from A's UI: preview first, then confirm; (torrent id, URI)."""
    ui.go("/shares")
    form = ui.d.find_element(By.CSS_SELECTOR, 'form[method="get"][action="/shares"]')
    box = form.find_element(By.NAME, "path")
    box.send_keys(str(src))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    preview = ui.wait(lambda: ui.d.find_elements(By.CSS_SELECTOR, "section.preview"))[0].text
    files = sorted(p.relative_to(src.parent).as_posix() for p in src.rglob("*") if p.is_file())
    for f in files:
        assert f in preview
    assert f"{len(files)} file(s)" in preview and "Anyone with the share's URI" in preview
    ui.shot("shares-preview")
    k = int(ui.d.find_element(By.CSS_SELECTOR, 'section.preview input[name="onions"]')
            .get_attribute("value"))  # the node's K, proposed
    ui.d.find_element(By.CSS_SELECTOR, 'section.preview button[type=submit]').click()
    ui.expect(f"shared {src.name} on {k} onions: http://")
    assert ui.d.current_url == ui.base + "/shares"  # post-redirect-get
    row = next(r for r in ui.d.find_elements(By.CSS_SELECTOR, "tr[data-row]")
               if src.name in r.find_element(By.CSS_SELECTOR, "span.name").text)
    uri = row.find_element(By.CSS_SELECTOR, "input.uri").get_attribute("value")
    # ui.js shows the copy button; without JavaScript the URI is selected by hand
    assert row.find_element(By.CSS_SELECTOR, "button.copy").is_displayed() == ui.javascript
    listed = {t["id"]: t for t in ui.node.json("list")}
    tid = row.get_attribute("data-row")
    assert listed[tid]["uri"] == uri and listed[tid]["name"] == src.name
    assert len(listed[tid]["onions"]) == k
    ui.shot("shares")
    return tid, uri


def paste_uri(ui: Ui, uri: str) -> str:
    ui.go("/downloads")
    ui.submit("/downloads", uri=uri)
    ui.expect("downloading")
    assert ui.d.current_url == ui.base + "/downloads"
    return next(t["id"] for t in ui.node.json("list") if t["uri"] == uri)


def test_a_shares_from_its_ui_and_b_downloads_with_live_progress(world):
    a = Ui(world["a"], world["js"], world["shots"], "js-a")
    a.shot("overview")
    src = make_folder(world["root"] / "src-a", "holiday-js",
                      {"big.bin": 3 * 1024 * 1024, "sub/note.txt": 1000})
    tid, uri = share_from_ui(a, src)
    b = Ui(world["b"], world["js"], world["shots"], "js-b")
    assert paste_uri(b, uri) == tid
    b.d.execute_script("window.obtStay = 1")  # gone if the page is ever reloaded
    seen = []

    def complete() -> bool:
        seen.append((b.cell(tid, "pct"), b.cell(tid, "state")))
        return seen[-1][1] == "complete"

    b.wait(complete, timeout=150, poll=0.1)
    assert b.d.execute_script("return window.obtStay") == 1  # no reload: live updates
    assert int(b.d.find_element(By.TAG_NAME, "body").get_attribute("data-updates")) >= 2
    partial = {pct for pct, _ in seen if pct not in ("0.0 %", "100.0 %")}
    assert partial, seen  # progress seen moving, between empty and full
    assert b.cell(tid, "pct") == "100.0 %"
    assert b.d.find_element(By.CSS_SELECTOR, f'progress[data-t="{tid}"]').get_attribute(
        "value") == "1"
    b.shot("downloads")
    got = world["b"].home / "downloads" / src.name
    assert digests(got) == digests(src)
    b.go("/downloads")  # B's bytes per path, from its download's row
    b.d.find_element(By.CSS_SELECTOR, f'a[href="/downloads/{tid}/peers"]').click()
    shown = [r.text for r in b.d.find_elements(By.CSS_SELECTOR, "tbody tr")]
    paths = world["b"].json("list", "--peers", tid)["paths"]
    assert shown and sum(p["down"] for p in paths) >= 3 * 1024 * 1024, (shown, paths)
    grown = b.d.find_element(By.CSS_SELECTOR, "p.growth").text  # how its paths grew
    assert grown.startswith("Paths: ") and "of at most 8" in grown, grown
    b.shot("download-paths")
    a.go(f"/shares/{tid}/peers")
    assert "Peers" in a.d.title
    a.shot("peers")
    for name in ("search", "trust", "mirrors", "releases", "settings"):
        b.go(f"/{name}")
        b.shot(name)
    b.go("/")
    b.wait(lambda: "100 %" in b.d.find_element(By.CSS_SELECTOR, "[data-o=tor]").text)
    # the tails of the node's log and its tor's (whose notices a running tor always has)
    shown = b.d.find_element(By.CSS_SELECTOR, 'pre[data-o="log-tor"]').text.splitlines()
    assert shown and set(shown) <= set((world["b"].home / "tor" / "tor.log").read_text(
        errors="replace").splitlines())
    assert b.d.find_element(By.CSS_SELECTOR, 'pre[data-o="log-node"]').text
    b.shot("overview")


def test_the_same_flow_with_javascript_off(world):
    driver = world["nojs"]
    a = Ui(world["a"], driver, world["shots"], "nojs-a", javascript=False)
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-updates") is None
    src = make_folder(world["root"] / "src-a", "holiday-nojs",
                      {"pic.bin": 512 * 1024, "sub/readme.txt": 300})
    tid, uri = share_from_ui(a, src)
    b = Ui(world["b"], driver, world["shots"], "nojs-b", javascript=False)
    assert paste_uri(b, uri) == tid

    def complete() -> bool:
        b.d.refresh()
        return b.cell(tid, "state") == "complete"

    b.wait(complete, timeout=150, poll=1.0)
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-updates") is None
    assert b.cell(tid, "pct") == "100.0 %"
    b.shot("downloads")
    assert digests(world["b"].home / "downloads" / src.name) == digests(src)
    # remove it from B's UI: a POST form, then the list without it
    b.d.find_element(By.CSS_SELECTOR, f'form[action="/downloads/{tid}/remove"] button').click()
    b.expect(f"removed {src.name}")
    assert not b.d.find_elements(By.CSS_SELECTOR, f'tr[data-row="{tid}"]')
    assert tid not in {t["id"] for t in world["b"].json("list")}


def test_a_download_pauses_and_resumes_from_its_row_with_javascript_off(world):
    src = make_folder(world["root"] / "src-a", "pausable", {"big.bin": 4 * 1024 * 1024})
    uri = world["a"].json("share", str(src))["uri"]
    b = Ui(world["b"], world["nojs"], world["shots"], "nojs-pause", javascript=False)
    tid = paste_uri(b, uri)
    b.wait(lambda: (row(world["b"], tid) or {}).get("done", 0) > 0, timeout=120)
    b.go("/downloads")
    b.d.find_element(By.CSS_SELECTOR, f'form[action="/downloads/{tid}/pause"] button').click()
    b.expect(f"paused {src.name}")
    assert row(world["b"], tid)["state"] == "paused" and b.cell(tid, "state") == "paused"
    b.d.find_element(By.CSS_SELECTOR, f'form[action="/downloads/{tid}/resume"] button').click()
    b.expect(f"resumed {src.name}")
    b.wait(lambda: (row(world["b"], tid) or {}).get("state") == "complete", timeout=150)
    assert digests(world["b"].home / "downloads" / src.name) == digests(src)


def test_trust_and_search_through_the_ui(world):
    driver = world["js"]
    a = Ui(world["a"], driver, world["shots"], "trust-a")
    src = make_folder(world["root"] / "src-a", "lighthouse-photos", {"lamp.bin": 64 * 1024})
    tid, _uri = share_from_ui(a, src)
    publish = a.d.find_element(By.CSS_SELECTOR, f'form[action="/shares/{tid}/publish"]')
    publish.find_element(By.NAME, "description").send_keys("Beacons of the Algarve coast")
    publish.find_element(By.CSS_SELECTOR, "button").click()
    a.expect("lighthouse-photos: public")
    a_onion = world["a"].json("node", "id")["onion"]
    b = Ui(world["b"], driver, world["shots"], "trust-b")
    b.go("/trust")
    b.submit("/trust/add", onion=a_onion)
    b.expect(f"trusted {a_onion}")
    assert a_onion in [c.text for c in b.d.find_elements(By.CSS_SELECTOR, "td code")]
    assert world["b"].json("trust", "list")["trusted"] == [a_onion]
    b.submit("/trust/depth", depth="2")
    b.expect("trust depth 2")
    b.shot("trust")
    b.d.find_element(By.CSS_SELECTOR, 'a[href="/trust/graph"]').click()
    b.wait(lambda: b.d.current_url == b.base + "/trust/graph")
    labels = b.wait(lambda: [t.text for t in b.d.find_elements(By.CSS_SELECTOR, "svg text")])
    assert labels == ["this node", a_onion[:16] + "…"]  # A answered, drawn at degree 1
    b.shot("trust-graph")
    b.go("/search")
    form = b.d.find_element(By.CSS_SELECTOR, 'form[action="/search"]')
    form.find_element(By.NAME, "q").send_keys("algarve")  # a word of its description only
    form.find_element(By.CSS_SELECTOR, "button").click()
    b.wait(lambda: "node(s) searched" in b.d.find_element(By.TAG_NAME, "main").text)
    names = b.wait(lambda: [c.text for c in b.d.find_elements(By.CSS_SELECTOR, "span.name")])
    assert names == ["lighthouse-photos"]
    assert [c.text for c in b.d.find_elements(By.CSS_SELECTOR, "small.description")] == [
        "Beacons of the Algarve coast"]
    b.shot("search")
    b.d.find_element(By.CSS_SELECTOR, 'form[action="/downloads"] button').click()  # one click
    b.expect("downloading lighthouse-photos")
    assert b.d.current_url == b.base + "/downloads"
    b.wait(lambda: b.cell(tid, "state") == "complete", timeout=150)
    assert digests(world["b"].home / "downloads" / src.name) == digests(src)


def test_foreign_host_and_cross_origin_post_are_refused_in_the_browser(world):
    driver = world["js"]
    b = Ui(world["b"], driver, world["shots"], "refused")
    port = b.base.rsplit(":", 1)[1]
    driver.get(f"http://127.0.0.1:{port}/management/" + "x" * 43)  # a wrong token
    assert "404: Not Found" in driver.find_element(By.TAG_NAME, "body").text
    # a page of another origin (data: is an opaque one) posting a form to B's UI
    onion = world["a"].json("node", "id")["onion"]
    driver.get("data:text/html,<form method=post action='" + b.base + "/trust/remove'>"
               f"<input name=onion value={onion}><button id=go>go</button></form>")
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 30).until(lambda d: d.current_url.startswith(b.base))
    assert driver.find_element(By.TAG_NAME, "body").text in ("404: Not Found", "403: Forbidden")
    assert world["b"].json("trust", "list")["trusted"] == [onion]  # nothing ran


def test_obt_ui_onion_publishes_the_ui_on_an_onion_of_its_own(world):
    a, b = world["a"], world["b"]
    plain = a.json("ui")
    assert "onion_url" not in plain  # off by default
    info = a.json("ui", "--onion")
    onion = info["onion_url"].split("/")[2]
    assert onion.endswith(".onion") and onion != a.json("node", "id")["onion"]
    assert info["onion_url"].rsplit("/", 1)[1] == info["url"].rsplit("/", 1)[1]
    # from node B, through Tor: the link becomes a session and the overview (redirect
    # followed, cookie kept); used once, the same link is a plain 404
    status, body = b.fetch_torrent(info["onion_url"])
    assert status == 200 and b"<h1>Overview</h1>" in body
    status, body = b.fetch_torrent(info["onion_url"])
    assert (status, body) == (404, b"404: Not Found")
    again = a.json("ui", "--onion")
    assert again["onion_url"].split("/")[2] == onion  # one onion while the node runs


def test_obt_ui_client_auth_onion_answers_only_a_tor_holding_the_key(world):
    """A stranger holding the link but not the key cannot reach the UI's onion at all: its
    tor cannot read the service's descriptor. With the key (as Tor Browser asks for it), it
    can; the plain onion of the test before was replaced."""
    import asyncio
    import base64

    import stem.control

    from onionshare_bt.errors import Timeout
    from onionshare_bt.tor import socks

    a, b = world["a"], world["b"]
    before = a.json("ui", "--onion")["onion_url"].split("/")[2]
    info = a.json("ui", "--client-auth")
    address = info["onion_url"].split("/")[2]
    key = info["client_auth"]["private_key"]
    assert address != before
    assert info["client_auth"]["auth_private"] == (
        f"{address.removesuffix('.onion')}:descriptor:x25519:{key}")
    host, port = b.json("node", "status")["tor"]["socks"]

    async def reply_code(onion: str, retry: float | None) -> int:
        loop = asyncio.get_running_loop()
        try:
            _, writer = await socks.open_connection(
                (host, port), onion, 80, timeout=30,
                retry_until=None if retry is None else loop.time() + retry)
        except socks.SocksError as exc:
            return exc.code
        except Timeout:
            return -1
        writer.close()
        return 0

    assert asyncio.run(reply_code(address, 90)) == 0xF4  # tor: client authorization missing
    assert asyncio.run(reply_code(before, None)) != 0  # the replaced onion answers nothing
    control = (b.home / "tor" / "control_port").read_text().split("=", 1)[1].strip()
    ctl_host, ctl_port = control.rsplit(":", 1)
    with stem.control.Controller.from_port(ctl_host, int(ctl_port)) as ctl:
        ctl.authenticate()
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
        reply = ctl.msg(f"ONION_CLIENT_AUTH_ADD {address.removesuffix('.onion')} "
                        f"x25519:{base64.b64encode(raw).decode()}")
        # 250 OK, 251 (replaced a key) or 252 (registered, and the cached descriptor read)
        assert reply.content()[0][0] in ("250", "251", "252"), str(reply)
    status, body = b.fetch_torrent(info["onion_url"])
    assert status == 200 and b"<h1>Overview</h1>" in body


def test_settings_are_changed_from_the_ui_into_config_toml_and_a_bad_value_changes_nothing(
        world):
    """With JavaScript off: B's settings form writes config.toml for the next start (the
    running node keeps its values), refuses a bad value whole, and offers no setting that
    names a program, a tor option, a network or a key."""
    node = world["b"]
    ui = Ui(node, world["nojs"], world["shots"], "settings", javascript=False)
    ui.go("/settings")
    form = ui.d.find_element(By.CSS_SELECTOR, 'form[action="/settings"]')
    names = {el.get_attribute("name") for el in form.find_elements(By.CSS_SELECTOR,
                                                                   "input, select")}
    assert {"stall_timeout", "onions", "relay"} <= names
    assert not names & {"tor", "network", "player", "tor_options", "release_keys"}, names
    before = (node.home / "config.toml").read_text()
    ui.submit("/settings", stall_timeout="95", trust_timeout="not a number")
    ui.expect("trust_timeout must be a number")
    assert (node.home / "config.toml").read_text() == before  # all or nothing
    ui.go("/settings")
    ui.submit("/settings", stall_timeout="95")
    ui.expect("stall_timeout: 120.0 → 95.0")
    assert "download_rate" in before and "trust_timeout = 10" in before
    after = (node.home / "config.toml").read_text()
    assert after == before + "stall_timeout = 95.0\n"  # the rest kept as it was
    shown = node.json("config", "show")["settings"]
    assert shown["stall_timeout"] == 95.0 and shown["trust_timeout"] == 10
    assert node.json("node", "status")["running"] is True
    ui.shot("settings-saved")
