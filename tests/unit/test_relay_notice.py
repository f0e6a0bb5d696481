"""The relay's trade-off is said once per home, on stderr, before the first relay starts,
however the node is started; node.log is 0600. No tor: the spawned node and its control
socket are fakes, the CLI is the real one (isolated OBT_HOME)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from onionshare_bt import config as config_mod
from onionshare_bt import daemon
from onionshare_bt.cli import main
from onionshare_bt.control import ControlServer
from onionshare_bt.errors import UsageError

NOTICE_WORDS = "public IP address is listed in the Tor consensus"


class FakeNode:
    """A control socket that answers like a node: ``answers[op]`` is a value or a function
    of the op's arguments."""

    def __init__(self, home: Path, answers: dict) -> None:
        self.path = home / "node.sock"
        self.answers = {"status": {"pid": 4242}, **answers}
        self.calls: list[tuple[str, dict]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        self.server = ControlServer(self.path, self._handle)
        self.loop.run_until_complete(self.server.start())

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_forever()
            self.loop.run_until_complete(self.server.close())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    async def _handle(self, op: str, args: dict):
        self.calls.append((op, args))
        if op not in self.answers:
            raise UsageError(f"the fake node has no {op}")
        answer = self.answers[op]
        return answer(args) if callable(answer) else answer

    def stop(self) -> None:
        if self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.thread = None


class Spawner:
    """Stands in for ``subprocess.Popen`` in :mod:`daemon`: records what the CLI spawned,
    whether the notice had been recorded by then, and brings the fake node up."""

    def __init__(self, node: FakeNode, home: Path) -> None:
        self.node, self.home = node, home
        self.spawned: list[dict] = []

    def __call__(self, cmd, *, pass_fds, stdout, **kwargs):
        self.spawned.append({
            "cmd": cmd,
            "notice_recorded": (self.home / "relay-notice-shown").exists(),
            "log_mode": stat.S_IMODE(os.fstat(stdout).st_mode),
        })
        self.node.start()
        os.write(pass_fds[0], json.dumps({"ok": True, "pid": 4242}).encode() + b"\n")
        return self

    def poll(self):
        return None


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OBT_HOME", str(home))
    for name in ("OBT_NETWORK", "OBT_TOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    handlers = list(logging.getLogger().handlers)
    yield home
    logging.getLogger().handlers[:] = handlers  # the CLI adds one per run


@pytest.fixture
def node(home):
    fake = FakeNode(home, {})
    yield fake
    fake.stop()


@pytest.fixture
def spawner(home, node, monkeypatch):
    spawn = Spawner(node, home)
    monkeypatch.setattr(daemon.subprocess, "Popen", spawn)
    return spawn


def obt(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- the notice itself ------------------------------------------------------------------
def test_notice_is_due_once_and_only_with_a_public_relay(home):
    cfg = config_mod.load()
    text = daemon.relay_notice(cfg)
    assert NOTICE_WORDS in text and "--no-relay" in text and "relay = false" in text
    assert str(home / "config.toml") in text
    assert daemon.relay_notice(config_mod.load(relay=False)) is None
    assert daemon.relay_notice(config_mod.Config(home=home, network_file=home / "net")) is None
    said: list[str] = []
    assert daemon.tell_relay_notice(cfg, said.append)
    assert said == [text]
    assert stat.S_IMODE(cfg.relay_notice_path.stat().st_mode) == 0o600
    assert not daemon.tell_relay_notice(cfg, said.append) and len(said) == 1


def test_no_one_to_tell_records_nothing(home):
    cfg = config_mod.load()
    assert not daemon.tell_relay_notice(cfg, None)
    assert daemon.relay_notice(cfg) is not None


# -- however the node is started --------------------------------------------------------
def test_share_auto_start_shows_the_notice_once_before_spawning(home, node, spawner, tmp_path):
    node.answers["share"] = lambda args: {
        "uri": "http://x.onion/private/t", "infohash": "ab" * 20, "name": "f", "size": 1,
        "piece_length": 16384, "files": [{"path": "f", "size": 1}], "onions": []}
    shared = tmp_path / "f"
    shared.write_text("x")
    first = obt("share", str(shared), "--json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["uri"] == "http://x.onion/private/t"
    assert first.stderr.count(NOTICE_WORDS) == 1
    assert "started a node in the background" in first.stderr
    assert first.stderr.index(NOTICE_WORDS) < first.stderr.index("started a node")
    assert spawner.spawned[0]["notice_recorded"]  # said before the node was spawned
    assert "--no-relay" not in spawner.spawned[0]["cmd"]
    node.stop()
    again = obt("share", str(shared), "--json")  # auto-started again: not said again
    assert again.exit_code == 0, again.stderr
    assert len(spawner.spawned) == 2 and NOTICE_WORDS not in again.stderr


def test_get_auto_start_shows_the_notice(home, node, spawner):
    node.answers["get"] = {"id": "ab" * 20, "name": "f", "size": 1}
    onion = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"
    result = obt("get", f"http://{onion}.onion/private/{'b' * 32}", "--no-wait", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "ab" * 20
    assert result.stderr.count(NOTICE_WORDS) == 1


def test_node_start_shows_the_notice_and_no_relay_does_not(home, node, spawner):
    quiet = obt("node", "start", "--no-relay", "--json")
    assert quiet.exit_code == 0, quiet.stderr
    assert NOTICE_WORDS not in quiet.stderr
    assert not (home / "relay-notice-shown").exists()
    assert "--no-relay" in spawner.spawned[0]["cmd"]
    node.stop()
    loud = obt("node", "start")
    assert loud.exit_code == 0, loud.stderr
    assert loud.stderr.count(NOTICE_WORDS) == 1 and loud.stdout.startswith("node running")
    assert (home / "relay-notice-shown").exists()


def test_relay_false_in_the_config_file_says_nothing(home, node, spawner):
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("relay = false\n")
    result = obt("node", "start")
    assert result.exit_code == 0 and NOTICE_WORDS not in result.stderr


def test_foreground_start_shows_the_notice(home, monkeypatch):
    ran = []

    async def serve(config, ready_fd):
        ran.append(config.relay)

    monkeypatch.setattr(daemon, "_serve", serve)
    read_fd, write_fd = os.pipe()
    try:  # spawned by a parent (its stderr is node.log): the parent's job, not the child's
        spawned = obt("node", "start", "--foreground", "--ready-fd", str(write_fd))
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert spawned.exit_code == 0 and NOTICE_WORDS not in spawned.stderr
    assert not (home / "relay-notice-shown").exists()
    ran.clear()
    result = obt("node", "start", "--foreground")
    assert result.exit_code == 0, result.stderr
    assert ran == [True] and result.stderr.count(NOTICE_WORDS) == 1
    assert NOTICE_WORDS not in obt("node", "start", "--foreground").stderr


# -- node.log ---------------------------------------------------------------------------
def test_node_log_is_created_0600(home, node, spawner):
    assert obt("node", "start", "--no-relay").exit_code == 0
    log = home / "node.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert spawner.spawned[0]["log_mode"] == 0o600


def test_an_old_0644_node_log_is_made_0600(home, node, spawner):
    home.mkdir(mode=0o700)
    log = home / "node.log"
    log.write_text("old lines\n")
    log.chmod(0o644)
    assert obt("node", "start", "--no-relay").exit_code == 0
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text() == "old lines\n"  # appended to, never truncated
