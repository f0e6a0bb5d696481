"""bench/soak.py without a Tor network: its growth and probe verdicts, and one short run of
its churn loop against fake nodes (every event happens, every way the victim vanishes is
probed, the quiet samples are taken, everything the soak started is stopped)."""

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


def test_a_restarted_node_is_compared_with_itself_only():
    quiet = [_q(victim={"pid": 1, "fds": 40}), _q(victim={"pid": 2, "fds": 400}),
             _q(victim={"pid": 2, "fds": 401})]
    assert soak.growth_problems(quiet) == []
    quiet.append(_q(victim={"pid": 2, "fds": 700}))
    assert soak.growth_problems(quiet)[0].startswith("victim fds: 400 -> 700")


def test_a_restarted_tor_is_compared_with_itself_only():
    quiet = [_q(seeder={"pid": 1, "tor_pid": 5, "tor_fds": 10}),
             _q(seeder={"pid": 1, "tor_pid": 6, "tor_fds": 100}),
             _q(seeder={"pid": 1, "tor_pid": 6, "tor_fds": 150})]
    assert soak.growth_problems(quiet) == []
    quiet[0]["seeder"]["tor_pid"] = 6
    assert soak.growth_problems(quiet)[0].startswith("seeder tor_fds: 10 -> 150")


def _probe(**values) -> dict:
    return {"n": 0, "mode": "freeze", "gone_s": 32.0, "held_away": True, "stalled_s": 122.0,
            "identical": True, **values}


def test_the_probe_verdict():
    assert soak.probe_problems([_probe(), _probe(mode="tor", held_away=False,
                                                 stalled_s=None)], 120) == []
    assert soak.probe_problems([], 120) == ["no vanishing-seeder probe ran"]
    late, never, unstalled, broken, failed = soak.probe_problems(
        [_probe(gone_s=46.0), _probe(gone_s=None), _probe(stalled_s=None),
         _probe(identical=False), _probe(error="BenchError: no payload")], 120)
    assert "shown gone only after 46.0 s" in late and "never shown gone" in never
    assert "not called stalled" in unstalled and "byte-identical" in broken
    assert "no payload" in failed
    assert soak.probe_problems([_probe(finished_before_gone=True, gone_s=None)], 120) == []


def test_the_verdict_fails_on_growth_probes_deaths_and_leaks():
    ok = {"growth": [], "probe_problems": [], "failures": ["3 s join churner0: slow"],
          "sinkhole": {"start": 0, "end": 0}}
    assert soak.verdict(ok) == {"pass": True, "reasons": []}
    for bad in ({"growth": ["keeper fds: 1 -> 900"]}, {"probe_problems": ["probe 0: late"]},
                {"failures": ["seeder died during the soak"]},
                {"sinkhole": {"start": 3, "end": 5}}):
        assert not soak.verdict({**ok, **bad})["pass"], bad


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
    #: above any pid_max: psutil finds no such process
    pids = iter(range(10**8, 10**9))
    #: tor pids killed with -9 (by the soak's os.kill)
    killed: set[int] = set()
    #: the victim's download in the keeper: "idle", "moving", "gone" (victim away), "back"
    probe = {"state": "idle"}
    nodes: dict[str, FakeNode] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nodes[self.name] = self
        self.restarts = 0

    async def start(self):
        self.configure()
        self.pid, self.tor_pid = next(self.pids), next(self.pids)
        self.log.append(f"start {self.name}")
        return 0.0

    async def refresh(self):
        if self.tor_pid in self.killed:  # the node restarts its tor
            self.tor_pid, self.restarts = next(self.pids), self.restarts + 1
        return {"pid": self.pid, "tor": {"pid": self.tor_pid, "restarts": self.restarts,
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
                "name": path.name, "size": 1}, 0.0

    async def fetch(self, uri, infohash, size, out, timeout, watch=None):
        await asyncio.sleep(0.05)  # a fetch takes a while (the soak runs them side by side)
        return {"rate": 1.0, "wall_s": 0.05}

    async def cli(self, *args, timeout=0):
        self.log.append(f"cli {self.name} {' '.join(args[:2])}")
        if self.name == "keeper" and args[0] == "get" and "victim" in args[1]:
            self.probe["state"] = "moving"
        return {}

    async def call(self, op, args=None):
        if op == "list":
            return []
        if args and args.get("id") == "victim.bin":
            return self._victim_row()
        return {"state": "complete"}

    def _victim_row(self) -> dict:
        victim = self.nodes["victim"]
        away = victim.pid is None or victim.frozen or victim.tor_pid in self.killed
        if away and self.probe["state"] == "moving":
            self.probe["state"] = "gone"
        elif not away and self.probe["state"] == "gone":
            self.probe["state"] = "back"
        return {"moving": {"state": "downloading", "peers": 2, "done": 1},
                "gone": {"state": "stalled", "peers": 0, "done": 1, "reason": "no peer"},
                "back": {"state": "complete", "peers": 2, "done": 2},
                }.get(self.probe["state"], {"state": "idle"})


async def test_a_short_soak_against_fake_nodes_runs_every_event_and_cleans_up(
        tmp_path, monkeypatch):
    monkeypatch.setattr(soak, "Testnet", FakeNet)
    monkeypatch.setattr(soak, "SoakNode", FakeNode)
    monkeypatch.setattr(soak, "make_file", lambda path, size: path)
    monkeypatch.setattr(soak, "sha256", lambda path: "same")
    monkeypatch.setattr(soak, "sinkhole_packets", lambda: None)
    monkeypatch.setattr(soak, "PROBE_MARGIN", 0.0)
    monkeypatch.setattr(soak, "FREEZE_S", (0.05, 0.1))
    killed_tors = []

    def fake_kill(pid, sig):
        killed_tors.append(pid)
        FakeNode.killed.add(pid)

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
    modes = [p["mode"] for p in report["probes"]]
    assert set(modes) == set(soak.PROBE_MODES), report["probes"]
    assert report["probe_problems"] == [] and report["verdict"]["pass"], report["verdict"]
    assert all(p["stalled_s"] is not None for p in report["probes"] if p["mode"] != "tor")
    assert report["settings"]["keeper"]["announce_interval"] == 60  # the shipped default
    assert all(v == {"relay": False, "free_base": soak.FREE_BASE}
               for v in report["not_default"].values())
    assert set(report["not_default"]) == {"seeder", "keeper", "victim", "churner0", "churner1"}
    assert killed_tors  # some tor was killed with -9
    log = FakeNode.log
    assert "net.down" in log and log.index("stop seeder") < log.index("net.down")
    assert "stop keeper" in log and "stop victim" in log
    assert "cli victim node stop" in log  # one probe stopped the victim cleanly
    assert set(report["nodes"]) >= {"seeder", "keeper"}
    text = soak.summary(report)
    assert "nothing grew without bound" in text


def test_the_soak_refuses_nonsense_arguments():
    with pytest.raises(SystemExit):
        soak.parse_args(["--minutes", "0"])
    assert isinstance(soak.parse_args([]).work, Path)
