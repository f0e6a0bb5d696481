"""``python -m bench.soak``: churn on a private Tor network while downloads run (by hand).

A seeder and a *keeper* live through the whole soak (only their tors are killed now and
then); a few *churners* join and leave around them. The keeper downloads one share after
another, each churner downloads while it is up, and every ``--event-every`` seconds or so
one of these happens: a churner joins (``obt node start`` and a download), leaves (``obt
node stop``), is killed with -9, is frozen with SIGSTOP for 10–40 s, or some node's tor is
killed with -9 (the node restarts it).

The soak runs in rounds. After each round the churn pauses, churners stop, downloads end,
and the long-lived nodes are sampled in the same quiet state: file descriptors, RSS,
threads, asyncio tasks and open bridge connections of the node process (``obt node status
--json`` ``resources``; psutil where the node does not say). It fails when one of those grew
past its slack (:data:`SLACK`) between the first and the last quiet sample and was still
growing in the last round: growth that levels off is warm-up, growth that does not is a
leak. Every node is also sampled each minute; the report gives each node's first and last
sample. Results go to ``--out`` (JSON) and a summary is printed.

Every process the soak starts is ended by its PID at the end (a frozen node is thawed
first); nothing is ended by name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil

from onionshare_bt.errors import ObtError
from onionshare_bt.tor.testnet import Testnet

from .procs import BenchError, Cleanup, ObtNode, log
from .runner import make_file

HERE = Path(__file__).resolve().parent
#: growth between the first and the last quiet sample that fails the soak, if more than
#: half of it also came in the last round
SLACK = {"fds": 64, "tasks": 64, "threads": 8, "rss": 128 * 1024 * 1024,
         "bridge_connections": 4}
#: relative weights of the churn events
EVENTS = {"join": 3, "leave": 2, "kill": 2, "freeze": 2, "tor": 2}
QUIET_TIMEOUT = 120.0
FREEZE_S = (10.0, 40.0)
FAILURES = (BenchError, ObtError, OSError, psutil.Error)


class SoakNode(ObtNode):
    """An obt node of the soak: its own home, announce interval 10 s, no relay."""

    def __init__(self, name: str, home: Path, network_file: Path) -> None:
        super().__init__(home, network_file, onions=2)
        self.name = name
        self.frozen = False
        #: (infohash, target folder) of the download it runs, if any
        self.download: tuple[str, Path] | None = None

    @property
    def up(self) -> bool:
        return self.pid is not None

    async def start(self) -> float:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            "onions = 2\nrelay = false\nannounce_interval = 10\n")
        started = time.monotonic()
        await self.cli("node", "start")
        await self.refresh()
        return time.monotonic() - started

    async def refresh(self) -> dict:
        """The node's status; keeps its pids current (a restarted tor has a new one)."""
        status = await self.call("status")
        self.pid, self.tor_pid = status["pid"], status["tor"]["pid"]
        return status

    async def stop(self) -> None:
        self.thaw()
        if self.pid is not None:
            try:
                await self.refresh()
            except ObtError:
                pass
        await super().stop()
        self.download = None

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = False

    def kill(self) -> tuple[int, float] | None:
        """kill -9 the node; returns its tor's (pid, start time): it leaves by itself when
        it notices (or at the node's next start), else the soak ends it."""
        tor = _identity(self.tor_pid)
        os.kill(self.pid, signal.SIGKILL)
        self.pid = self.tor_pid = None
        self.download = None
        return tor

    async def sample(self, t: float) -> dict:
        """What the node process (and, apart, its tor) holds now."""
        status = await self.refresh()
        held = dict(status.get("resources") or {})
        proc = psutil.Process(self.pid)
        with proc.oneshot():
            held.setdefault("fds", proc.num_fds())
            held.setdefault("rss", proc.memory_info().rss)
            held.setdefault("threads", proc.num_threads())
        try:
            tor = psutil.Process(self.tor_pid)
            held.update(tor_rss=tor.memory_info().rss, tor_fds=tor.num_fds())
        except psutil.Error:
            pass
        return {"node": self.name, "pid": self.pid, "t": round(t, 1),
                "tor_restarts": status["tor"]["restarts"],
                "loop_lag_max_ms": status.get("loop_lag_max_ms"), **held}


def _identity(pid: int | None) -> tuple[int, float] | None:
    try:
        return (pid, psutil.Process(pid).create_time()) if pid else None
    except psutil.Error:
        return None


def growth_problems(quiet: list[dict], slack: dict = SLACK) -> list[str]:
    """Metrics that grew without levelling off between quiet samples.

    :param quiet: one ``{node: {metric: value}}`` per quiet point, the first before any churn
    :returns: one line per problem; empty when nothing grows without bound
    """
    if len(quiet) < 2:
        return ["fewer than two quiet samples: nothing to compare"]
    first, previous, last = quiet[0], quiet[-2], quiet[-1]
    problems = []
    for node, values in last.items():
        if node not in first:
            problems.append(f"{node}: no quiet sample before the churn")
            continue
        for metric, allowed in slack.items():
            a, b, c = (q.get(node, {}).get(metric) for q in (first, previous, last))
            if a is None or b is None or c is None:
                continue
            if c - a > allowed and c - b > allowed / 2:
                problems.append(f"{node} {metric}: {a} -> {c} (+{c - b} in the last round; "
                                f"slack {allowed})")
    return problems


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.root: Path = args.work
        self.cleanup = Cleanup()
        self.network_file: Path | None = None
        self.seeder: SoakNode | None = None
        self.keeper: SoakNode | None = None
        self.churners: list[SoakNode] = []
        self.shares: list[dict] = []
        self.quiet: list[dict] = []
        self.series: list[dict] = []
        self.events: dict[str, int] = {}
        self.failures: list[str] = []
        self.orphans: list[tuple[int, float]] = []
        self.keeper_fetches: list[dict] = []
        self.started = time.monotonic()

    def _t(self) -> float:
        return time.monotonic() - self.started

    # -- set-up -------------------------------------------------------------------------
    async def run(self) -> dict:
        if self.root.exists():
            shutil.rmtree(self.root)
        try:
            await self._network()
            self.seeder = await self._node("seeder")
            self.keeper = await self._node("keeper")
            for i in range(self.args.shares):
                path = make_file(self.root / "files" / f"s{i}" / f"soak-{i}.bin",
                                 self.args.size_mb << 20)
                self.shares.append((await self.seeder.share(path, 2))[0])
            self.churners = [SoakNode(f"churner{i}", self.root / f"churner{i}",
                                      self.network_file) for i in range(self.args.churners)]
            for node in self.churners:
                self.cleanup.push(node.stop)
            await self._keep_once()  # warm-up: one download before the first quiet sample
            self.quiet.append(await self._quiet_sample())
            rounds = max(1, round(self.args.minutes / self.args.round_minutes))
            for r in range(rounds):
                log.info("round %d of %d", r + 1, rounds)
                until = time.monotonic() + self.args.minutes * 60 / rounds
                async with asyncio.TaskGroup() as group:
                    for step in (self._churn, self._keep, self._tend, self._sample_every):
                        group.create_task(step(until))
                await self._settle()
                self.quiet.append(await self._quiet_sample())
            for node in (self.seeder, self.keeper):
                if node.pid != self.quiet[0][node.name]["pid"]:
                    self.failures.append(f"{node.name} died during the soak")
        finally:
            await self.cleanup.run()
            await asyncio.to_thread(self._end_orphans)
        return self._report()

    async def _network(self) -> None:
        net = Testnet(self.root / "net", base_port=self.args.base_port)
        self.cleanup.push(lambda: asyncio.to_thread(net.down))
        self.network_file = await asyncio.to_thread(net.up, 120.0)
        log.info("private Tor network up")

    async def _node(self, name: str) -> SoakNode:
        node = SoakNode(name, self.root / name, self.network_file)
        self.cleanup.push(node.stop)
        await node.start()
        return node

    def _end_orphans(self) -> None:
        """End the tors of killed nodes that are still there (checked by start time)."""
        for pid, created in self.orphans:
            try:
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    proc.kill()
                    proc.wait(10)
            except psutil.Error:
                pass

    # -- the keeper -----------------------------------------------------------------------
    async def _keep(self, until: float) -> None:
        while time.monotonic() < until:
            try:
                await self._keep_once()
            except FAILURES as exc:
                self._failed("keeper", exc)
                await asyncio.sleep(5)

    async def _keep_once(self) -> None:
        share = self.rng.choice(self.shares)
        out = self.root / "keeper-out" / f"{len(self.keeper_fetches)}"
        try:
            got = await self.keeper.fetch(share["uri"], share["infohash"], share["size"], out,
                                          timeout=600)
            self.keeper_fetches.append({"t": round(self._t(), 1), "rate": got["rate"],
                                        "wall_s": round(got["wall_s"], 1)})
        finally:
            try:
                await self.keeper.cli("remove", share["infohash"], "--delete-data")
            except FAILURES:
                pass  # never added, or the fetch failed before
            shutil.rmtree(out, ignore_errors=True)

    # -- churn ----------------------------------------------------------------------------
    async def _churn(self, until: float) -> None:
        every = self.args.event_every
        while True:
            wait = self.rng.uniform(0.5 * every, 1.5 * every)
            if time.monotonic() + wait >= until:
                return
            await asyncio.sleep(wait)
            choices = self._feasible()
            if not choices:
                continue
            event = self.rng.choices(list(choices), [EVENTS[e] for e in choices])[0]
            self.events[event] = self.events.get(event, 0) + 1
            try:
                await choices[event]()
            except FAILURES as exc:
                self._failed(event, exc)

    def _feasible(self) -> dict:
        down = [n for n in self.churners if not n.up]
        awake = [n for n in self.churners if n.up and not n.frozen]
        pick = self.rng.choice
        events = {}
        if down:
            events["join"] = lambda: self._join(pick(down))
        if awake:
            events["leave"] = lambda: pick(awake).stop()
            events["kill"] = lambda: self._kill(pick(awake))
            events["freeze"] = lambda: self._freeze(pick(awake))
        events["tor"] = lambda: self._kill_tor(pick([self.seeder, self.keeper, *awake]))
        return events

    async def _join(self, node: SoakNode) -> None:
        await node.start()
        for row in await node.call("list"):  # what it had when it left comes back: drop it
            await node.cli("remove", row["id"], "--delete-data", timeout=120)
        shutil.rmtree(self.root / f"{node.name}-out", ignore_errors=True)
        await self._download(node)

    async def _download(self, node: SoakNode) -> None:
        share = self.rng.choice(self.shares)
        out = self.root / f"{node.name}-out" / f"{int(self._t())}"
        await node.cli("get", share["uri"], "-o", str(out), "--no-wait", "--timeout", "120",
                       timeout=300)
        node.download = (share["infohash"], out)

    async def _kill(self, node: SoakNode) -> None:
        tor = node.kill()
        if tor is not None:
            self.orphans.append(tor)

    async def _freeze(self, node: SoakNode) -> None:
        node.freeze()
        asyncio.get_running_loop().call_later(self.rng.uniform(*FREEZE_S), node.thaw)

    async def _kill_tor(self, node: SoakNode) -> None:
        await node.refresh()
        os.kill(node.tor_pid, signal.SIGKILL)

    async def _tend(self, until: float) -> None:
        """Every churner that is up downloads something; a finished copy is deleted."""
        while time.monotonic() < until:
            await asyncio.sleep(5)
            for node in [n for n in self.churners if n.up and not n.frozen]:
                try:
                    await self._tend_one(node)
                except FAILURES as exc:
                    self._failed(f"tend {node.name}", exc)

    async def _tend_one(self, node: SoakNode) -> None:
        if node.download is None:
            await self._download(node)
            return
        infohash, out = node.download
        row = await node.call("torrent", {"id": infohash})
        if row["state"] in ("complete", "error"):
            await node.cli("remove", infohash, "--delete-data", timeout=120)
            shutil.rmtree(out, ignore_errors=True)
            node.download = None

    # -- measuring ------------------------------------------------------------------------
    async def _sample_every(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(min(60.0, max(0.0, until - time.monotonic())))
            for node in [self.seeder, self.keeper, *self.churners]:
                if node.up and not node.frozen:
                    try:
                        self.series.append(await node.sample(self._t()))
                    except FAILURES as exc:
                        self._failed(f"sample {node.name}", exc)

    async def _settle(self) -> None:
        """The quiet state: churners stopped, tors back, the long-lived nodes' bridges idle."""
        for node in self.churners:
            if node.up:
                await node.stop()
        deadline = time.monotonic() + QUIET_TIMEOUT
        for node in (self.seeder, self.keeper):
            while True:
                status = await node.refresh()
                held = status.get("resources") or {}
                boot = status["tor"]["bootstrap"].get("progress")
                if boot == 100 and not held.get("bridge_connections"):
                    break
                if time.monotonic() > deadline:
                    self.failures.append(f"{node.name} not quiet after {QUIET_TIMEOUT:.0f} s: "
                                         f"tor at {boot} %, {held.get('bridge_connections')} "
                                         "bridge connections open")
                    break
                await asyncio.sleep(2)

    async def _quiet_sample(self) -> dict:
        point = {}
        for node in (self.seeder, self.keeper):
            point[node.name] = await node.sample(self._t())
        log.info("quiet sample: %s", {n: {k: s.get(k) for k in SLACK} for n, s in point.items()})
        return point

    def _failed(self, what: str, exc: BaseException) -> None:
        line = f"{round(self._t())} s {what}: {exc}"
        log.warning("%s", line)
        self.failures.append(line)

    # -- report ---------------------------------------------------------------------------
    def _report(self) -> dict:
        per_node: dict[str, dict] = {}
        for sample in self.series + [s for q in self.quiet for s in q.values()]:
            entry = per_node.setdefault(sample["node"], {"first": sample, "last": sample})
            if sample["t"] < entry["first"]["t"]:
                entry["first"] = sample
            if sample["t"] >= entry["last"]["t"]:
                entry["last"] = sample
        return {
            "args": {k: str(v) for k, v in vars(self.args).items()},
            "events": self.events, "keeper_fetches": self.keeper_fetches,
            "quiet": self.quiet, "series": self.series, "nodes": per_node,
            "failures": self.failures, "growth": growth_problems(self.quiet),
        }


def summary(report: dict) -> str:
    keys = ("fds", "rss", "threads", "tasks", "bridge_connections", "loop_lag_max_ms")
    lines = ["node        sample  " + "  ".join(f"{k:>18}" for k in keys)]
    for name, entry in sorted(report["nodes"].items()):
        for which in ("first", "last"):
            s = entry[which]
            values = [f"{s.get(k)!s:>18}" if k != "rss" else f"{(s.get(k) or 0) / 1e6:>15.1f} MB"
                      for k in keys]
            lines.append(f"{name:11} {which:6}  " + "  ".join(values))
    lines.append(f"events: {report['events']}; keeper fetched {len(report['keeper_fetches'])} "
                 f"times; {len(report['failures'])} failed step(s)")
    for line in report["failures"][:20]:
        lines.append(f"  failed: {line}")
    for line in report["growth"] or ["nothing grew without bound"]:
        lines.append(f"growth: {line}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="churn time (default 30)")
    parser.add_argument("--round-minutes", type=float, default=10.0,
                        help="minutes between quiet samples (default 10)")
    parser.add_argument("--churners", type=int, default=3, help="nodes that come and go")
    parser.add_argument("--shares", type=int, default=3, help="files the seeder shares")
    parser.add_argument("--size-mb", type=int, default=16, help="MiB per shared file")
    parser.add_argument("--event-every", type=float, default=20.0,
                        help="mean seconds between churn events (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible)")
    parser.add_argument("--base-port", type=int, default=30400,
                        help="first port of the private network (default 30400)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/obt-soak"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "soak-latest.json")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.round_minutes <= 0 or args.churners < 1 or args.shares < 1:
        parser.error("--minutes, --round-minutes, --churners and --shares must be positive")
    if args.seed is None:
        args.seed = random.randrange(1 << 32)
    return args


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    log.info("soak: %.0f min, %d churners, seed %d", args.minutes, args.churners, args.seed)
    try:
        report = asyncio.run(Soak(args).run())
    except KeyboardInterrupt:
        return 130
    except (BenchError, ObtError) as exc:
        log.error("soak failed: %s", exc)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(summary(report))
    log.info("wrote %s", args.out)
    return 1 if report["growth"] else 0


if __name__ == "__main__":
    sys.exit(cli())
