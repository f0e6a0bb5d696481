"""``python -m bench.soak``: churn on a private Tor network while downloads run (by hand).

A seeder and a *keeper* live through the whole soak (only their tors are killed now and
then); a few *churners* join and leave around them. The keeper downloads one share after
another, each churner downloads while it is up, and every ``--event-every`` seconds or so
one of these happens: a churner joins (``obt node start`` and a download), leaves (``obt
node stop``), is killed with -9, is frozen with SIGSTOP for 10–40 s, or some node's tor is
killed with -9 (the node restarts it).

Meanwhile a *victim* seeder shares one file of its own, and over and over the keeper starts
downloading it and the victim vanishes in the middle (frozen with SIGSTOP, its tor killed
with -9, the node killed with -9, or a clean ``obt node stop``, in turn). Each such probe
records how long the keeper took to show it gone (``waiting for peers`` / ``stalled``, with
a reason; the issue's bound is :data:`GONE_WITHIN`), whether it was then called stalled with
the shipped ``stall_timeout`` while the victim stayed away, and whether the download resumed
by itself and finished byte-identical once the victim was back.

Every node runs with obt's shipped settings (``config.py``'s defaults: announce interval
60 s, stall timeout 120 s, K = 2 onions, …), not the tests' shortened ones, save one: no
middle relay (``relay = false``), as in the bench (:func:`bench.procs.config_toml`): a relay
is a second tor process per node and would join the private network's consensus; and so,
since a node without a relay may download only its ``free_base`` (1 GiB) before the ratio
gate closes ("waiting for relay credit", which the first 19-minute run hit after 10 minutes:
the keeper pulls ~1 GiB in that time), ``free_base`` is raised to :data:`FREE_BASE`. The
report records the settings every node read (``config.load``) and the defaults they differ
from.

The soak runs in rounds. After each round the churn pauses, churners stop, downloads end,
and the long-lived nodes are sampled in the same quiet state: file descriptors, RSS,
threads, asyncio tasks and open bridge connections of the node process (``obt node status
--json`` ``resources``; psutil where the node does not say). It fails when one of those grew
past its slack (:data:`SLACK`) between the first and the last quiet sample and was still
growing in the last round: growth that levels off is warm-up, growth that does not is a
leak. Every node is also sampled each minute; the report gives each node's first and last
sample. Results go to ``--out`` (JSON) and ``--md`` (the tables), and a summary is printed.
The exit status is 1 when the verdict (:func:`verdict`) fails.

Every process the soak starts is ended by its PID at the end (a frozen node is thawed
first); nothing is ended by name.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
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

from onionshare_bt import config as obt_config
from onionshare_bt.errors import ObtError
from onionshare_bt.testnet import Testnet

from .procs import BenchError, Cleanup, ObtNode, config_toml, log
from .runner import make_file

HERE = Path(__file__).resolve().parent


def thread_pools() -> int:
    """Threads a node starts on demand, up to a bound, and keeps or reaps as it likes:
    libtorrent's disk and hashing threads (its defaults; the engine leaves them) and
    asyncio's default executor (``asyncio.to_thread``)."""
    import libtorrent as lt

    settings = lt.default_settings()
    return (settings["aio_threads"] + settings["hashing_threads"]
            + min(32, (os.cpu_count() or 1) + 4))


#: growth between the first and the last quiet sample that fails the soak, if more than
#: half of it also came in the last round; threads may grow by the pools that fill on
#: demand (a warm-up of the first rounds: 8 was too tight, smoke run of 2026-12-02)
SLACK = {"fds": 64, "tasks": 64, "threads": thread_pools(), "rss": 128 * 1024 * 1024,
         "bridge_connections": 4, "tor_fds": 64, "tor_rss": 128 * 1024 * 1024}
#: relative weights of the churn events
EVENTS = {"join": 3, "leave": 2, "kill": 2, "freeze": 2, "tor": 2}
QUIET_TIMEOUT = 120.0
FREEZE_S = (10.0, 40.0)
FAILURES = (BenchError, ObtError, OSError, psutil.Error)
#: how the victim vanishes, in turn
PROBE_MODES = ("freeze", "tor", "kill", "stop")
#: the issue's bound: a vanished seeder is shown gone within this
GONE_WITHIN = 45.0
GONE_STATES = ("waiting for peers", "stalled")
#: how long a probe looks for "gone" at all (a late answer is recorded, and fails)
GONE_LOOK = 180.0
#: after the victim is back: time to dial it again and finish
RESUME_WITHIN = 600.0
#: a probe starts only while this much of the round is left (it runs to its end)
PROBE_MARGIN = 60.0
#: the settings the soak reports (what each node read, next to config.py's defaults)
SETTINGS = ("announce_interval", "stall_timeout", "onions", "fetch_timeout",
            "bootstrap_timeout", "relay", "free_base", "ratio", "download_rate", "open_shares")
#: the soak measures churn, not the ratio gate (tests/tor/test_relay.py does): without a
#: relay a node may download its free base only, and the keeper pulls ~6 GB an hour
FREE_BASE = 1 << 40


def node_settings(home: Path) -> dict:
    """The settings a node with this home runs with (the node reads them the same way)."""
    cfg = obt_config.load(home=home)
    return {k: getattr(cfg, k) for k in SETTINGS}


def shipped_defaults() -> dict:
    fields = {f.name: f.default for f in dataclasses.fields(obt_config.Config)}
    return {k: fields[k] for k in SETTINGS}


def sinkhole_packets() -> int | None:
    """Packets that went into the sinkhole (``scripts/sinkhole.sh``), if the soak runs in it."""
    names = os.environ.get("OBT_SINKHOLE", "").split(":")
    if len(names) != 2:
        return None
    sent = {}
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, rest = line.partition(":")
            sent[name.strip()] = int(rest.split()[9])
    return sum(sent.get(n, 0) for n in names)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class SoakNode(ObtNode):
    """An obt node of the soak: its own home, obt's shipped settings, no relay."""

    def __init__(self, name: str, home: Path, network_file: Path) -> None:
        super().__init__(home, network_file, onions=2)
        self.name = name
        self.frozen = False
        #: (infohash, target folder) of the download it runs, if any
        self.download: tuple[str, Path] | None = None
        #: held by whoever acts on the node (an event, a download step, a probe, a sample):
        #: every obt client command starts the node if it is down, so a download step
        #: racing a stop would bring a left churner back behind the soak's back
        self.busy = asyncio.Lock()

    @property
    def up(self) -> bool:
        return self.pid is not None

    def configure(self) -> None:
        """config.toml: K onions, no relay, :data:`FREE_BASE`; the rest is config.py's."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(config_toml(self.onions)
                                               + f"free_base = {FREE_BASE}\n")

    async def start(self) -> float:
        self.configure()
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
        return {"node": self.name, "pid": self.pid, "tor_pid": self.tor_pid, "t": round(t, 1),
                "tor_restarts": status["tor"]["restarts"],
                "silent_closed": status.get("silent_closed"),
                "loop_lag_max_ms": status.get("loop_lag_max_ms"), **held}


def _identity(pid: int | None) -> tuple[int, float] | None:
    try:
        return (pid, psutil.Process(pid).create_time()) if pid else None
    except psutil.Error:
        return None


def growth_problems(quiet: list[dict], slack: dict = SLACK) -> list[str]:
    """Metrics that grew without levelling off between quiet samples.

    Only samples of the same process are compared (a node restarted in between starts
    afresh; its growth is judged from its first quiet sample as that process).

    :param quiet: one ``{node: {metric: value, "pid": pid}}`` per quiet point, the first
        before any churn
    :returns: one line per problem; empty when nothing grows without bound
    """
    if len(quiet) < 2:
        return ["fewer than two quiet samples: nothing to compare"]
    problems = []
    for node, last in quiet[-1].items():
        mine = [q[node] for q in quiet if node in q and q[node].get("pid") == last.get("pid")]
        if len(mine) < 2:
            if node not in quiet[0]:
                problems.append(f"{node}: no quiet sample before the churn")
            continue  # restarted since; nothing of this process to compare
        for metric, allowed in slack.items():
            # a tor the node restarted starts afresh too
            same = [s for s in mine if not metric.startswith("tor_")
                    or s.get("tor_pid") == last.get("tor_pid")]
            if len(same) < 2:
                continue
            first, previous = same[0], same[-2]
            a, b, c = (s.get(metric) for s in (first, previous, last))
            if a is None or b is None or c is None:
                continue
            if c - a > allowed and c - b > allowed / 2:
                problems.append(f"{node} {metric}: {a} -> {c} (+{c - b} in the last round; "
                                f"slack {allowed})")
    return problems


def probe_problems(probes: list[dict], stall_timeout: float) -> list[str]:
    """Probes that did not show the victim gone in time, or did not recover."""
    problems = []
    if not probes:
        return ["no vanishing-seeder probe ran"]
    for p in probes:
        name = f"probe {p['n']} ({p['mode']})"
        if p.get("error"):
            problems.append(f"{name}: {p['error']}")
            continue
        if p.get("finished_before_gone"):
            continue  # inconclusive, not a failure: the file came whole before the victim left
        if p.get("gone_s") is None:
            problems.append(f"{name}: never shown gone within {GONE_LOOK:.0f} s")
        elif p["gone_s"] > GONE_WITHIN:
            problems.append(f"{name}: shown gone only after {p['gone_s']} s")
        if p.get("held_away") and p.get("stalled_s") is None:
            problems.append(f"{name}: not called stalled while away "
                            f"(stall_timeout {stall_timeout:g} s)")
        if not p.get("identical"):
            problems.append(f"{name}: the download did not complete byte-identical")
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
        self.victim: SoakNode | None = None
        self.victim_share: dict | None = None
        self.victim_digest: str | None = None
        self.churners: list[SoakNode] = []
        self.shares: list[dict] = []
        self.digests: dict[str, str] = {}
        self.quiet: list[dict] = []
        self.series: list[dict] = []
        self.events: dict[str, int] = {}
        self.failures: list[str] = []
        self.orphans: list[tuple[int, float]] = []
        self.keeper_fetches: list[dict] = []
        self.probes: list[dict] = []
        self.settings: dict[str, dict] = {}
        self.sinkhole: dict = {}
        self.started = time.monotonic()

    def _t(self) -> float:
        return time.monotonic() - self.started

    # -- set-up -------------------------------------------------------------------------
    async def run(self) -> dict:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.sinkhole["start"] = sinkhole_packets()
        try:
            await self._network()
            self.seeder = await self._node("seeder")
            self.keeper = await self._node("keeper")
            self.victim = await self._node("victim")
            for i in range(self.args.shares):
                path = make_file(self.root / "files" / f"s{i}" / f"soak-{i}.bin",
                                 self.args.size_mb << 20)
                share = (await self.seeder.share(path, 2))[0]
                self.shares.append(share)
                self.digests[share["infohash"]] = sha256(path)
            path = make_file(self.root / "files" / "victim" / "victim.bin",
                             self.args.probe_mb << 20)
            self.victim_share = (await self.victim.share(path, 2))[0]
            self.victim_digest = sha256(path)
            self.churners = [SoakNode(f"churner{i}", self.root / f"churner{i}",
                                      self.network_file) for i in range(self.args.churners)]
            for node in self.churners:
                node.configure()
                self.cleanup.push(node.stop)
            for node in (self.seeder, self.keeper, self.victim, *self.churners):
                self.settings[node.name] = node_settings(node.home)
            await self._keep_once()  # warm-up: one download before the first quiet sample
            self.quiet.append(await self._quiet_sample())
            rounds = max(1, round(self.args.minutes / self.args.round_minutes))
            for r in range(rounds):
                log.info("round %d of %d", r + 1, rounds)
                until = time.monotonic() + self.args.minutes * 60 / rounds
                async with asyncio.TaskGroup() as group:
                    for step in (self._churn, self._keep, self._tend, self._sample_every,
                                 self._probe):
                        group.create_task(step(until))
                await self._settle()
                self.quiet.append(await self._quiet_sample())
            for node in (self.seeder, self.keeper):
                if node.pid != self.quiet[0][node.name]["pid"]:
                    self.failures.append(f"{node.name} died during the soak")
        finally:
            if self.victim is not None:
                self.victim.thaw()
            await self.cleanup.run()
            await asyncio.to_thread(self._end_orphans)
            self.sinkhole["end"] = sinkhole_packets()
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
            identical = (sha256(out / share["name"]) == self.digests[share["infohash"]])
            self.keeper_fetches.append({"t": round(self._t(), 1), "rate": got["rate"],
                                        "wall_s": round(got["wall_s"], 1),
                                        "identical": identical})
            if not identical:
                self.failures.append(f"{round(self._t())} s keeper: {share['name']} differs "
                                     "from the seeder's")
        finally:
            try:
                await self.keeper.cli("remove", share["infohash"], "--delete-data")
            except FAILURES:
                pass  # never added, or the fetch failed before
            shutil.rmtree(out, ignore_errors=True)

    # -- the vanishing seeder ---------------------------------------------------------------
    async def _probe(self, until: float) -> None:
        """Probe after probe while the round lasts (a probe started runs to its end)."""
        while time.monotonic() < until - PROBE_MARGIN:
            n = len(self.probes)
            record = {"n": n, "mode": PROBE_MODES[n % len(PROBE_MODES)],
                      "t": round(self._t(), 1)}
            self.probes.append(record)
            try:
                await self._probe_once(record)
            except FAILURES as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
                self._failed(f"probe {n} ({record['mode']})", exc)
                await self._victim_back()
            log.info("probe %d: %s", n, {k: v for k, v in record.items() if k != "seen"})

    async def _look(self, tid: str) -> dict | None:
        try:
            return await self.keeper.call("torrent", {"id": tid})
        except ObtError:
            return None

    async def _await_row(self, tid: str, test, within: float, step: float = 0.5):
        """The keeper's row of ``tid`` once ``test(row)`` holds, or None after ``within``."""
        deadline = time.monotonic() + within
        while True:
            row = await self._look(tid)
            if row is not None and test(row):
                return row
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(step)

    async def _probe_once(self, record: dict) -> None:
        share, keeper, victim = self.victim_share, self.keeper, self.victim
        tid, size, mode = share["infohash"], share["size"], record["mode"]
        stall = self.settings["keeper"]["stall_timeout"]
        out = self.root / "probe-out" / str(record["n"])
        await keeper.cli("get", share["uri"], "-o", str(out), "--no-wait", "--timeout", "120",
                         timeout=300)
        try:
            moving = await self._await_row(
                tid, lambda r: r["state"] == "downloading" and r.get("peers", 0) > 0
                and r.get("done", 0) > 0, 300, step=0.1)
            if moving is None:
                raise BenchError("no payload byte from the victim within 300 s")
            await victim.busy.acquire()  # released once it is back (or in finally)
            status = await victim.refresh()
            vanished = time.monotonic()
            await self._vanish(mode, status)
            record["done_before"] = moving["done"]
            seen = await self._await_row(
                tid, lambda r: r["state"] in GONE_STATES + ("complete",)
                and (r["state"] == "complete" or (r.get("peers", 0) == 0 and r.get("reason"))),
                GONE_LOOK)
            if seen is not None and seen["state"] == "complete":
                record["finished_before_gone"] = True
            elif seen is not None:
                record.update(gone_s=round(time.monotonic() - vanished, 1),
                              gone_state=seen["state"], gone_reason=seen["reason"],
                              gone_done=seen.get("done"))
            if mode != "tor" and seen is not None and seen["state"] != "complete":
                # kept away until the shipped stall timeout calls the download stalled
                record["held_away"] = True
                stalled = await self._await_row(
                    tid, lambda r: r["state"] == "stalled",
                    max(0.0, vanished + stall + 30 - time.monotonic()))
                if stalled is not None:
                    record.update(stalled_s=round(time.monotonic() - vanished, 1),
                                  stalled_reason=stalled["reason"])
            away = time.monotonic()
            await self._come_back(mode, status)
            victim.busy.release()
            back = time.monotonic()
            record.update(away_s=round(back - vanished, 1), back_took_s=round(back - away, 1))
            before = (seen or moving).get("done", 0)
            resumed: list[float] = []

            def complete(row: dict) -> bool:
                if not resumed and row.get("done", 0) > before:
                    resumed.append(time.monotonic())
                return row["state"] == "complete"

            done = await self._await_row(tid, complete, RESUME_WITHIN, step=0.5)
            if resumed:
                record["resumed_after_back_s"] = round(resumed[0] - back, 1)
            if done is None:
                row = await self._look(tid) or {}
                raise BenchError(f"not complete {RESUME_WITHIN:.0f} s after the victim came "
                                 f"back: {row.get('state')}, {row.get('done')}/{size}, "
                                 f"{row.get('peers')} peer(s), reason {row.get('reason')}")
            record["complete_after_back_s"] = round(time.monotonic() - back, 1)
            record["identical"] = sha256(out / share["name"]) == self.victim_digest
        finally:
            victim.thaw()
            if victim.busy.locked():
                victim.busy.release()
            try:
                await keeper.cli("remove", tid, "--delete-data")
            except FAILURES:
                pass
            shutil.rmtree(out, ignore_errors=True)

    async def _vanish(self, mode: str, status: dict) -> None:
        victim = self.victim
        if mode == "freeze":
            victim.freeze()
        elif mode == "tor":
            os.kill(status["tor"]["pid"], signal.SIGKILL)
        elif mode == "kill":
            tor = victim.kill()
            if tor is not None:
                self.orphans.append(tor)
        else:
            await victim.cli("node", "stop", timeout=60)
            victim.pid = victim.tor_pid = None

    async def _come_back(self, mode: str, status: dict) -> None:
        victim = self.victim
        if mode == "freeze":
            victim.thaw()
        elif mode == "tor":
            deadline = time.monotonic() + 120
            while (await victim.refresh())["tor"]["restarts"] <= status["tor"]["restarts"]:
                if time.monotonic() > deadline:
                    raise BenchError("the victim did not restart its tor within 120 s")
                await asyncio.sleep(1)
        else:
            await asyncio.to_thread(_wait_gone, status["pid"], 30)
            await victim.start()

    async def _victim_back(self) -> None:
        """After a failed probe: the victim running and awake again, if it can be."""
        victim = self.victim
        victim.thaw()
        try:
            if victim.pid is None:
                await victim.start()
            else:
                await victim.refresh()
        except FAILURES as exc:
            self._failed("victim restart", exc)

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
            node = self.rng.choice(choices[event][0])
            async with node.busy:
                if not _still_feasible(event, node):  # a step in flight changed it
                    log.info("churn: %s %s no longer possible", event, node.name)
                    continue
                log.info("churn: %s %s (pid %s)", event, node.name, node.pid)
                try:
                    await choices[event][1](node)
                except FAILURES as exc:
                    self._failed(f"{event} {node.name}", exc)

    def _feasible(self) -> dict:
        """The events possible now: ``{event: (nodes it may hit, what to do to one)}``."""
        down = [n for n in self.churners if not n.up]
        awake = [n for n in self.churners if n.up and not n.frozen]
        events = {}
        if down:
            events["join"] = (down, self._join)
        if awake:
            events["leave"] = (awake, SoakNode.stop)
            events["kill"] = (awake, self._kill)
            events["freeze"] = (awake, self._freeze)
        events["tor"] = ([self.seeder, self.keeper, *awake], self._kill_tor)
        return events

    async def _join(self, node: SoakNode) -> None:
        try:
            await node.start()
        except BenchError as exc:
            if "already running" in str(exc):
                raise BenchError(f"{exc}; node.lock held by {_holders(node.home / 'node.lock')}")
            raise
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
            for node in self.churners:
                if node.busy.locked():
                    continue
                async with node.busy:
                    if not node.up or node.frozen:
                        continue
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
            for node in [self.seeder, self.keeper, self.victim, *self.churners]:
                if node.busy.locked():
                    continue  # being acted on (a probe holds the victim while it is away)
                async with node.busy:
                    if not node.up or node.frozen:
                        continue
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
        for node in (self.seeder, self.keeper, self.victim):
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
        for node in (self.seeder, self.keeper, self.victim):
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
        for sample in sorted(self.series + [s for q in self.quiet for s in q.values()],
                             key=lambda s: s["t"]):
            entry = per_node.setdefault(sample["node"], {"first": sample, "last": sample,
                                                         "pids": []})
            entry["last"] = sample
            if sample["pid"] not in entry["pids"]:
                entry["pids"].append(sample["pid"])
        defaults = shipped_defaults()
        stall = defaults["stall_timeout"]
        if self.settings:
            stall = self.settings.get("keeper", {}).get("stall_timeout", stall)
        report = {
            "args": {k: str(v) for k, v in vars(self.args).items()},
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "minutes_run": round(self._t() / 60, 1),
            "settings": self.settings, "defaults": defaults,
            "not_default": {name: {k: v for k, v in s.items() if v != defaults[k]}
                            for name, s in self.settings.items()},
            "events": self.events, "keeper_fetches": self.keeper_fetches,
            "probes": self.probes, "quiet": self.quiet, "series": self.series,
            "nodes": per_node, "failures": self.failures, "sinkhole": self.sinkhole,
            "growth": growth_problems(self.quiet), "probe_problems":
                probe_problems(self.probes, stall),
        }
        report["verdict"] = verdict(report)
        return report


def _still_feasible(event: str, node: SoakNode) -> bool:
    if event == "join":
        return not node.up
    return node.up and not node.frozen


def _holders(path: Path) -> list[str]:
    """The processes holding ``path`` open (pid, state, command line): for a diagnosis."""
    held = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if any(f.path == str(path) for f in proc.open_files()):
                held.append(f"{proc.pid} {proc.info['status']} "
                            f"{' '.join(proc.info['cmdline'] or [])[:120]}")
        except psutil.Error:
            pass
    return held


def _wait_gone(pid: int, within: float) -> None:
    try:
        psutil.Process(pid).wait(within)
    except psutil.NoSuchProcess:
        pass


def verdict(report: dict) -> dict:
    """Pass or fail, and why: computed from the figures, never asserted by hand.

    Fails on growth without bound (:func:`growth_problems`), a probe that did not show the
    victim gone within :data:`GONE_WITHIN` s or did not recover byte-identical, a long-lived
    node that died, a keeper copy that differs, or a packet in the sinkhole. Other failed
    steps (a churner's command timing out under churn) are listed, not counted.
    """
    reasons = list(report["growth"]) + list(report["probe_problems"])
    reasons += [f for f in report["failures"] if "died during the soak" in f
                or "differs from the seeder's" in f or "not quiet after" in f]
    sink = report.get("sinkhole") or {}
    if sink.get("start") is not None and sink.get("end") is not None \
            and sink["end"] > sink["start"]:
        reasons.append(f"{sink['end'] - sink['start']} packet(s) went into the sinkhole")
    return {"pass": not reasons, "reasons": reasons}


METRICS = ("fds", "rss", "threads", "tasks", "bridge_connections", "tor_fds", "tor_rss",
           "loop_lag_max_ms")


def _value(sample: dict, key: str) -> str:
    v = sample.get(key)
    if v is None:
        return "–"
    if key in ("rss", "tor_rss"):
        return f"{v / 1e6:.1f} MB"
    return str(v)


def summary(report: dict) -> str:
    keys = ("fds", "rss", "threads", "tasks", "bridge_connections", "loop_lag_max_ms")
    lines = ["node        sample  " + "  ".join(f"{k:>18}" for k in keys)]
    for name, entry in sorted(report["nodes"].items()):
        for which in ("first", "last"):
            s = entry[which]
            lines.append(f"{name:11} {which:6}  "
                         + "  ".join(f"{_value(s, k):>18}" for k in keys))
    lines.append(f"events: {report['events']}; keeper fetched {len(report['keeper_fetches'])} "
                 f"times; {len(report['probes'])} probe(s); "
                 f"{len(report['failures'])} failed step(s)")
    for p in report["probes"]:
        lines.append("  probe " + ", ".join(f"{k}={v}" for k, v in p.items()))
    for line in report["failures"][:20]:
        lines.append(f"  failed: {line}")
    for line in report["growth"] or ["nothing grew without bound"]:
        lines.append(f"growth: {line}")
    v = report["verdict"]
    lines.append("verdict: " + ("PASS" if v["pass"] else "FAIL: " + "; ".join(v["reasons"])))
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The tables of ``bench/results/soak-latest.md``."""
    args, v = report["args"], report["verdict"]
    shown = ("minutes", "round_minutes", "churners", "shares", "size_mb", "probe_mb",
             "event_every", "seed")
    command = " ".join(f"--{k.replace('_', '-')} {args[k]}" for k in shown if k in args)
    out = [f"# Soak: {report['minutes_run']} min on the private Tor network",
           "", f"{args.get('label') or 'obt'}, {report.get('date', '')}", "",
           f"`python -m bench.soak {command}`",
           "",
           "**Verdict: " + ("PASS" if v["pass"] else "FAIL") + "**"
           + ("" if v["pass"] else ": " + "; ".join(v["reasons"])),
           ""]
    defaults = report["defaults"]
    out += ["## Settings every node ran with", "",
            "| setting | shipped default | " + " | ".join(report["settings"]) + " |",
            "|---|---|" + "---|" * len(report["settings"])]
    for k in defaults:
        out.append(f"| {k} | {defaults[k]} | "
                   + " | ".join(str(s.get(k)) for s in report["settings"].values()) + " |")
    out += ["", "## Per node: first and last sample", "",
            "| node | pids | sample | t (s) | " + " | ".join(METRICS) + " |",
            "|---|---|---|---|" + "---|" * len(METRICS)]
    for name, entry in sorted(report["nodes"].items()):
        for which in ("first", "last"):
            s = entry[which]
            out.append(f"| {name} | {len(entry['pids'])} | {which} | {s['t']} | "
                       + " | ".join(_value(s, k) for k in METRICS) + " |")
    out += ["", "## Quiet samples of the long-lived nodes (the growth verdict compares these)",
            "", "| point | node | pid | t (s) | " + " | ".join(METRICS[:5]) + " |",
            "|---|---|---|---|" + "---|" * 5]
    for i, point in enumerate(report["quiet"]):
        for name, s in point.items():
            out.append(f"| {i} | {name} | {s['pid']} | {s['t']} | "
                       + " | ".join(_value(s, k) for k in METRICS[:5]) + " |")
    out += ["", "Growth: " + ("; ".join(report["growth"]) or "nothing grew without bound")
            + f" (slack {SLACK})", ""]
    out += ["## Vanishing seeder probes (keeper downloading from the victim only)", "",
            "| # | mode | shown gone after (s) | state, reason | stalled after (s) | away (s) "
            "| first new byte after back (s) | complete after back (s) | identical | error |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for p in report["probes"]:
        gone = f"{p.get('gone_state')}: {p.get('gone_reason')}" if p.get("gone_state") else "–"
        out.append(f"| {p['n']} | {p['mode']} | {p.get('gone_s', '–')} | {gone} | "
                   f"{p.get('stalled_s', '–')} | {p.get('away_s', '–')} | "
                   f"{p.get('resumed_after_back_s', '–')} | "
                   f"{p.get('complete_after_back_s', '–')} | {p.get('identical', '–')} | "
                   f"{p.get('error', '')} |")
    fetches = report["keeper_fetches"]
    rates = sorted(f["rate"] for f in fetches)
    out += ["", "## Churn", "",
            f"Events: {report['events']}.",
            f"Keeper fetches from the long-lived seeder: {len(fetches)}, "
            f"{sum(1 for f in fetches if f.get('identical'))} byte-identical"
            + (f"; rate median {rates[len(rates) // 2] / 1e6:.2f} MB/s" if rates else "")
            + ".",
            f"Sinkhole packets: {report['sinkhole']}.",
            f"Failed steps ({len(report['failures'])}):", ""]
    out += [f"- {line}" for line in report["failures"]] or ["- none"]
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="churn time (default 30)")
    parser.add_argument("--round-minutes", type=float, default=10.0,
                        help="minutes between quiet samples (default 10)")
    parser.add_argument("--churners", type=int, default=3, help="nodes that come and go")
    parser.add_argument("--shares", type=int, default=3, help="files the seeder shares")
    parser.add_argument("--size-mb", type=int, default=16, help="MiB per shared file")
    parser.add_argument("--probe-mb", type=int, default=48,
                        help="MiB of the victim's file (default 48)")
    parser.add_argument("--event-every", type=float, default=20.0,
                        help="mean seconds between churn events (default 20)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproducible)")
    parser.add_argument("--base-port", type=int, default=30400,
                        help="first port of the private network (default 30400)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/obt-soak"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "soak-latest.json")
    parser.add_argument("--md", type=Path, default=None,
                        help="the tables (default: --out with .md)")
    parser.add_argument("--label", default="", help="what was measured (e.g. obt at abc1234)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.round_minutes <= 0 or args.churners < 1 or args.shares < 1:
        parser.error("--minutes, --round-minutes, --churners and --shares must be positive")
    if args.seed is None:
        args.seed = random.randrange(1 << 32)
    if args.md is None:
        args.md = args.out.with_suffix(".md")
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
    args.md.write_text(markdown(report))
    print(summary(report))
    log.info("wrote %s and %s", args.out, args.md)
    return 0 if report["verdict"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(cli())
