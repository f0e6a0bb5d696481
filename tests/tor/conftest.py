"""The Tor tier: one real private Tor network per test session, nodes driven via the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from onionshare_bt.testnet import Testnet, layout

#: a port range of its own, apart from the demo's (17500) and the CLI default (17000)
BASE_PORT = int(os.environ.get("OBT_TEST_BASE_PORT", "18400"))
CLI_TIMEOUT = 300


RELAYS = 4


# -- story modules: stop at the first failed step, and name it ---------------------------
#: the first failed step of an ``incremental`` module, kept on the module
FAILED_STEP = pytest.StashKey[str]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "incremental: the module's tests are the steps of one story, each "
        "relying on the ones before: once a step fails, every later step fails at once, "
        "naming it, without running")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and item.get_closest_marker("incremental") is not None:
        module = item.getparent(pytest.Module)
        if FAILED_STEP not in module.stash:
            phase = "" if report.when == "call" else f" (in {report.when})"
            module.stash[FAILED_STEP] = f"{item.name}{phase}"
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """A step after a failed one fails here instead of running: reported as a failure (a
    skip or xfail would hide it) that names the step that broke the story."""
    if item.get_closest_marker("incremental") is None:
        return
    failed = item.getparent(pytest.Module).stash.get(FAILED_STEP, None)
    if failed is not None:
        pytest.fail(f"previous step {failed} failed; not run", pytrace=False)


@pytest.fixture(scope="session")
def session_net(request, tmp_path_factory, sinkhole) -> Testnet:
    """The session's one private network; stopped at the end, leaving no process behind.

    It runs inside the sinkhole namespace (``bash test.sh``), so that every Tor-tier module's
    leak check covers the network, the nodes and their tors. If it cannot run or does not
    come up, the test that asked for it reports why and the session stops there: one
    message, instead of the same error for every test of the tier.
    """
    net = None
    try:
        if sinkhole is None and not os.environ.get("OBT_ALLOW_NO_SINKHOLE"):
            pytest.fail("the Tor tier runs inside the sinkhole namespace: run it with "
                        "`bash test.sh [pytest args]` (scripts/sinkhole.sh), or set "
                        "OBT_ALLOW_NO_SINKHOLE=1 to run it without the leak check",
                        pytrace=False)
        net = Testnet(tmp_path_factory.mktemp("testnet"), base_port=BASE_PORT, relays=RELAYS)
        started = time.monotonic()
        net.up(timeout=90)
        net.up_seconds = time.monotonic() - started
    except BaseException as exc:
        try:
            left = _stop(net)
        except Exception as cleanup:  # the cause stays the message
            left = [f"unknown: {cleanup}"]
        request.session.shouldfail = (
            "the private Tor network did not start, so the Tor tier stops here: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            + (f" (and tor processes {left} are still running)" if left else ""))
        raise
    try:
        yield net
    finally:
        left = _stop(net)
        assert not net.status()["up"] and not net.state_file.exists()
        assert not left, f"tor processes {left} outlived the network"


def _stop(net: Testnet | None) -> list[int]:
    """Stop ``net`` (if it was made); the pids of its processes still running after."""
    if net is None:
        return []
    pids = [p["pid"] for p in net.status()["processes"]]
    net.down()
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


@pytest.fixture(scope="session")
def testnet(session_net) -> Path:
    """The network file of the session's private network."""
    return session_net.network_file


@dataclass
class Node:
    """One obt node's home, driven through the installed CLI in subprocesses."""

    home: Path
    network: Path

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBT_")}
        env.update(OBT_HOME=str(self.home), OBT_NETWORK=str(self.network),
                   NO_COLOR="1", COLUMNS="80")
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = CLI_TIMEOUT, **extra) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "onionshare_bt", *args], env=self.env(**extra),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str) -> subprocess.Popen:
        # as from a terminal: Ctrl-C interrupts. A suite started as a background job of a
        # shell without job control inherits SIGINT ignored, and so would the command (a
        # Ctrl-C test then saw `obt get` run to the end and exit 0)
        return subprocess.Popen(
            [sys.executable, "-m", "onionshare_bt", *args], env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def json(self, *args: str, timeout: float = CLI_TIMEOUT):
        proc = self.run(*args, "--json", timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def configure(self, **settings) -> None:
        """Write the node's config.toml (before its first start).

        Test nodes run no relay unless asked (``relay=True``): two tor processes per node
        would crowd the 2-core machines; tests/tor/test_relay.py covers the relay.
        """
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = {"relay": False, **settings}
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        (self.home / "config.toml").write_text("\n".join(lines) + "\n")

    def newnym(self) -> None:
        """``SIGNAL NEWNYM`` on this node's tor (its control port, cookie authentication)."""
        import stem.control

        address = (self.home / "tor" / "control_port").read_text().strip().split("=", 1)[1]
        host, port = address.rsplit(":", 1)
        with stem.control.Controller.from_port(host, int(port)) as controller:
            controller.authenticate()
            controller.signal(stem.Signal.NEWNYM)

    def fetch_torrent(self, uri: str, timeout: float = 90, tries: list[str] | None = None,
                      purge: bool = False) -> tuple[int, bytes]:
        """GET a share's .torrent through this node's tor (status, body).

        :param tries: a list to which each failed attempt is added (when, how long, why)
        :param purge: retry as obt's own client does (``tor/reach.py``): once attempts have
          failed for 30 s, and then at most once a minute, ``NEWNYM`` on this node's tor, so
          tor asks the HSDirs again (it asks each once in 15 minutes otherwise: an onion
          looked up before its descriptor was stored stays "not found" that long)
        """
        import asyncio

        import aiohttp
        from aiohttp_socks import ProxyConnector

        host, port = self.json("node", "status")["tor"]["socks"]

        from aiohttp_socks import ProxyError, ProxyTimeoutError

        tries = [] if tries is None else tries

        spell = {"failing": None, "purged": 0.0}

        async def purge_if_due() -> None:
            now = time.monotonic()
            spell["failing"] = spell["failing"] or now
            if purge and now - spell["failing"] >= 30 and now - spell["purged"] >= 60:
                spell["purged"] = now
                await asyncio.to_thread(self.newnym)
                tries.append(f"+{now - started:.0f}s NEWNYM")

        async def fetch():
            connector = ProxyConnector.from_url(f"socks5://{host}:{port}", rdns=True)
            async with aiohttp.ClientSession(connector=connector) as http:
                while True:  # like any client: the first try after a publication may fail
                    began = time.monotonic()
                    try:  # an attempt stuck on stale intro points is retried afresh
                        async with http.get(uri, timeout=aiohttp.ClientTimeout(total=30)
                                            ) as resp:
                            return resp.status, await resp.read()
                    except (ProxyError, ProxyTimeoutError, TimeoutError,
                            aiohttp.ClientConnectionError) as exc:
                        code = getattr(exc, "error_code", None)  # tor's SOCKS reply
                        socks = f" (SOCKS 0x{code:02X})" if isinstance(code, int) else ""
                        tries.append(f"+{began - started:.0f}s {time.monotonic() - began:.1f}s "
                                     f"{type(exc).__name__}: {exc}{socks}"[:160])
                        await purge_if_due()
                        await asyncio.sleep(1)

        started = time.monotonic()
        try:
            return asyncio.run(asyncio.wait_for(fetch(), timeout))
        except TimeoutError:
            raise AssertionError(f"{uri[:40]}… did not answer within {timeout:g} s through "
                                 f"{self.home.name}'s tor; {len(tries)} attempts: "
                                 + "; ".join(tries[:3] + ["…"] + tries[-3:])) from None

    def start(self) -> dict:
        if not (self.home / "config.toml").exists():
            self.configure()
        proc = self.run("node", "start", "--json")
        assert proc.returncode == 0, proc.stderr + self.log()
        return json.loads(proc.stdout)

    def stop(self) -> None:
        self.run("node", "stop", timeout=60)

    def log(self) -> str:
        path = self.home / "node.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def tor_log(self, lines: int = 15) -> str:
        """The last lines of this node's tor's log (notice level)."""
        path = self.home / "tor" / "tor.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _node(tmp_path_factory, testnet, name: str):
    node = Node(tmp_path_factory.mktemp(name), testnet)
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def node_a(tmp_path_factory, testnet):
    yield from _node(tmp_path_factory, testnet, "node-a")


@pytest.fixture(scope="session")
def node_b(tmp_path_factory, testnet):
    yield from _node(tmp_path_factory, testnet, "node-b")


@pytest.fixture(scope="session")
def adversary(tmp_path_factory, testnet):
    """A hostile party with a tor and onions of its own (tests/tor/adversary.py)."""
    from tests.tor.adversary import Adversary

    adv = Adversary(tmp_path_factory.mktemp("adversary") / "tor", testnet)
    adv.start()
    yield adv
    adv.close()


@pytest.fixture
def fresh_node(tmp_path, testnet) -> Node:
    """A node home nobody started yet (stopped at the end if a test started it)."""
    node = Node(tmp_path / "home", testnet)
    yield node
    node.stop()
