"""bench/soak.py without a Tor network: its growth verdict, and one short run of its churn
loop against fake nodes (every event happens, the quiet samples are taken, everything the
soak started is stopped)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench import soak


def _q(**nodes) -> dict:
    return {name: dict(values) for name, values in nodes.items()}


def test_growth_that_levels_off_is_warm_up():
    quiet = [_q(seeder={"fds": 40, "tasks": 30}), _q(seeder={"fds": 140, "tasks": 35}),
             _q(seeder={"fds": 150, "tasks": 36}), _q(seeder={"fds": 152, "tasks": 35})]
    assert soak.growth_problems(quiet) == []


def test_growth_that_goes_on_is_a_leak():
    quiet = [_q(keeper={"fds": 40, "rss": 100}), _q(keeper={"fds": 90, "rss": 100}),
             _q(keeper={"fds": 140, "rss": 101})]
    problems = soak.growth_problems(quiet)
    assert len(problems) == 1 and problems[0].startswith("keeper fds: 40 -> 140")


def test_one_round_compares_first_and_last_and_missing_values_are_skipped():
    assert soak.growth_problems([_q(s={"tasks": 10}), _q(s={"tasks": 100})]) != []
    assert soak.growth_problems([_q(s={"tasks": 10}), _q(s={"tasks": 60})]) == []
    assert soak.growth_problems([_q(s={"tasks": None}), _q(s={"tasks": 900})]) == []
    assert soak.growth_problems([_q(s={})]) == [
        "fewer than two quiet samples: nothing to compare"]


class FakeNet:
    def __init__(self, root, base_port):
        self.root = root

    def up(self, timeout):
        return self.root / "network.json"

    def down(self):
        FakeNode.log.append("net.down")


class FakeNode(soak.SoakNode):
    log: list[str] = []
    pids = iter(range(1000, 100000))

    async def start(self):
        self.pid, self.tor_pid = next(self.pids), next(self.pids)
        self.log.append(f"start {self.name}")
        return 0.0

    async def refresh(self):
        return {"pid": self.pid, "tor": {"pid": self.tor_pid, "restarts": 0,
                                         "bootstrap": {"progress": 100}},
                "resources": {"fds": 10, "tasks": 5, "threads": 3, "rss": 1,
                              "bridge_connections": 0}, "loop_lag_max_ms": 1.0}

    async def stop(self):
        self.thaw()
        if self.pid is not None:
            self.log.append(f"stop {self.name}")
        self.pid = self.tor_pid = None
        self.download = None

    def freeze(self):
        self.frozen = True

    def thaw(self):
        self.frozen = False

    def kill(self):
        self.log.append(f"kill {self.name}")
        self.pid = self.tor_pid = None
        self.download = None
        return None

    async def sample(self, t):
        return {"node": self.name, "pid": self.pid, "t": t, **(await self.refresh())["resources"]}

    async def share(self, path, onions):
        return {"uri": f"http://x.onion/private/{path.name}", "infohash": path.name,
                "size": 1}, 0.0

    async def fetch(self, uri, infohash, size, out, timeout, watch=None):
        await asyncio.sleep(0.05)  # a fetch takes a while (the soak runs them side by side)
        return {"rate": 1.0, "wall_s": 0.05}

    async def cli(self, *args, timeout=0):
        self.log.append(f"cli {self.name} {' '.join(args[:1])}")
        return {}

    async def call(self, op, args=None):
        return [] if op == "list" else {"state": "complete"}


async def test_a_short_soak_against_fake_nodes_runs_every_event_and_cleans_up(
        tmp_path, monkeypatch):
    monkeypatch.setattr(soak, "Testnet", FakeNet)
    monkeypatch.setattr(soak, "SoakNode", FakeNode)
    monkeypatch.setattr(soak, "make_file", lambda path, size: path)
    killed_tors = []

    def fake_kill(pid, sig):
        killed_tors.append(pid)

    monkeypatch.setattr(soak.os, "kill", fake_kill)
    real_sleep = asyncio.sleep
    monkeypatch.setattr(soak.asyncio, "sleep", lambda s: real_sleep(min(s, 0.01)))
    args = soak.parse_args(["--minutes", "0.05", "--round-minutes", "0.025",
                            "--event-every", "0.02", "--churners", "2", "--seed", "3",
                            "--work", str(tmp_path / "soak"), "--out",
                            str(tmp_path / "out.json")])
    report = await soak.Soak(args).run()
    assert len(report["quiet"]) == 3  # before the churn, then after each of two rounds
    assert set(report["events"]) == set(soak.EVENTS), report["events"]
    assert report["growth"] == [] and report["keeper_fetches"]
    assert killed_tors  # some tor was killed with -9
    log = FakeNode.log
    assert "net.down" in log and log.index("stop seeder") < log.index("net.down")
    assert "stop keeper" in log
    assert set(report["nodes"]) >= {"seeder", "keeper"}
    text = soak.summary(report)
    assert "nothing grew without bound" in text


def test_the_soak_refuses_nonsense_arguments():
    with pytest.raises(SystemExit):
        soak.parse_args(["--minutes", "0"])
    assert isinstance(soak.parse_args([]).work, Path)
