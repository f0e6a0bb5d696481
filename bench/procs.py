"""Processes the benchmark starts: bounded commands, obt nodes, memory readings.

Every process the bench starts is recorded here by PID and ended by PID (never by name),
so ``Cleanup.run()`` can leave nothing behind even when a measurement fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from onionshare_bt import config as obt_config
from onionshare_bt import control
from onionshare_bt.errors import ObtError

log = logging.getLogger("bench")

#: seconds allowed for short CLI commands (node start includes tor bootstrap)
CLI_TIMEOUT = 240.0
POLL = 0.1


class BenchError(Exception):
    """A measurement could not be taken."""


def obt_command() -> list[str]:
    """How to run the obt CLI with this interpreter's environment."""
    script = Path(sys.executable).with_name("obt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "onionshare_bt"]


async def run(cmd: list[str], env: dict | None = None, timeout: float = CLI_TIMEOUT) -> str:
    """Run a command to completion within **timeout**; return its stdout.

    :raises BenchError: if it fails or outlives the timeout (it is then killed)
    """
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise BenchError(f"{' '.join(cmd[:3])}… timed out after {timeout:g} s") from exc
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:3])}… exited {proc.returncode}: "
                         f"{err.decode(errors='replace').strip()[-500:]}")
    return out.decode()


def kill_pid(pid: int, grace: float = 5.0) -> None:
    """SIGTERM one process we started, then SIGKILL it if it lingers."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(grace)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


def rss_mb(pid: int) -> float:
    """Resident memory of one process (not its children), in MB (10^6 bytes)."""
    return psutil.Process(pid).memory_info().rss / 1e6


@dataclass
class Cleanup:
    """What to end at the end: async closers, run newest first, each bounded."""

    closers: list = field(default_factory=list)

    def push(self, closer) -> None:
        """Register an async callable (no arguments)."""
        self.closers.append(closer)

    async def run(self) -> None:
        while self.closers:
            closer = self.closers.pop()
            try:
                await asyncio.wait_for(closer(), 90)
            except (TimeoutError, OSError, ObtError, BenchError, psutil.Error) as exc:
                log.warning("cleanup step failed: %s", exc)


def config_toml(onions: int, max_paths: int | None = None) -> str:
    """A bench node's config.toml: K onions, and no middle relay of its own.

    The private network has 4 relays; a relay per node would join it, take a share of
    every circuit at its ``relay_rate``, and linger in the consensus after the node stops
    (each run starts and stops several nodes). On the public network a node's relay is one
    of thousands (and its own circuits avoid it), so the bench leaves it out.
    """
    text = f"onions = {onions}\n"
    keys = getattr(obt_config, "FILE_KEYS", None) or getattr(obt_config, "_FILE_KEYS", {})
    if "relay" in keys:  # older obt versions have no relay
        text += "relay = false\n"
    if max_paths is not None and "max_paths" in keys:  # older ones never grow paths
        text += f"max_paths = {max_paths}\n"
    return text


class ObtNode:
    """One obt node (its own ``OBT_HOME``), driven through the CLI like a user would.

    :param home: its state folder
    :param network_file: the private network to join
    :param onions: ``onions = K`` in its config.toml (its own onions per download/share)
    :param max_paths: ``max_paths`` in its config.toml (None: the shipped default; 0: one
        path per onion the tracker names, no growth)
    """

    def __init__(self, home: Path, network_file: Path, onions: int = 2,
                 max_paths: int | None = None) -> None:
        self.home = home
        self.network_file = network_file
        self.onions = onions
        self.max_paths = max_paths
        self.pid: int | None = None
        self.tor_pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"OBT_HOME": str(self.home), "OBT_NETWORK": str(self.network_file),
                "NO_COLOR": "1"}

    async def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> dict | list:
        """Run ``obt ARGS --json`` against this node and parse its JSON."""
        out = await run([*obt_command(), *args, "--json"], self.env, timeout)
        return json.loads(out)

    async def call(self, op: str, args: dict | None = None) -> dict | list:
        """One control-API request (cheaper than a CLI process, for polling)."""
        return await control.call(self.home / "node.sock", op, args or {}, timeout=10)

    async def start(self) -> float:
        """Write config.toml and start the node; returns seconds until it was ready."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(config_toml(self.onions, self.max_paths))
        started = time.monotonic()
        await self.cli("node", "start")
        took = time.monotonic() - started
        status = await self.cli("node", "status")
        self.pid, self.tor_pid = status["pid"], status["tor"]["pid"]
        return took

    async def stop(self) -> None:
        """``obt node stop``; kill by PID if that fails."""
        if self.pid is None:
            return
        try:
            await self.cli("node", "stop", timeout=60)
        except BenchError as exc:
            log.warning("node %s did not stop cleanly (%s); killing it", self.home.name, exc)
        for pid in (self.pid, self.tor_pid):
            if pid:
                await asyncio.to_thread(kill_pid, pid)
        self.pid = self.tor_pid = None

    async def share(self, path: Path, onions: int) -> tuple[dict, float]:
        """``obt share PATH --onions K``; returns its JSON and seconds until it printed."""
        started = time.monotonic()
        info = await self.cli("share", str(path), "--onions", str(onions), timeout=600)
        return info, time.monotonic() - started

    async def unshare(self, infohash: str) -> None:
        await self.cli("unshare", infohash, timeout=60)

    async def paths(self, infohash: str) -> list[dict]:
        """The torrent's bridge paths with their byte counters."""
        return (await self.call("peers", {"id": infohash}))["paths"]

    def memory(self) -> dict:
        """RSS of the node process alone and of its tor, in MB."""
        return {"node_rss_mb": rss_mb(self.pid), "tor_rss_mb": rss_mb(self.tor_pid)}

    async def fetch(self, uri: str, infohash: str, size: int, out: Path,
                    timeout: float, watch: ObtNode | None = None) -> dict:
        """``obt get URI`` timed from the command's start, polling the node meanwhile.

        :param watch: another node whose RSS to sample during the transfer (the seeder)
        :returns: ``wall_s`` (command start to exit), ``ttfb_s`` (to the first payload
          byte), ``transfer_s`` (first payload byte to every piece verified), ``rate``
          (bytes/s over transfer_s), ``wall_rate``, ``paths`` and ``peak_rss_mb``
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        proc = await asyncio.create_subprocess_exec(
            *obt_command(), "get", uri, "-o", str(out), "--json", "--timeout", "180",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, **self.env})
        marks = {"first": None, "done": None, "peak": 0.0, "p10": None, "p90": None,
                 "path_first": {}, "next_paths": 0.0, "busy_first": None, "busy_done": None}
        cpu_before = cpu_s(self.pid)
        seeder_before = cpu_s(watch.pid) if watch is not None else 0.0
        comm = asyncio.ensure_future(proc.communicate())
        try:
            await self._watch(comm, infohash, size, marks, watch, started + timeout)
            out_b, err_b = await asyncio.wait_for(comm, max(1.0, started + timeout - loop.time()))
        except (TimeoutError, BenchError) as exc:
            if proc.returncode is None:
                proc.kill()
            await asyncio.wait([comm], timeout=10)
            raise BenchError(f"obt get did not complete in {timeout:g} s: {exc}") from exc
        ended = loop.time()
        if proc.returncode != 0:
            raise BenchError(f"obt get exited {proc.returncode}: {err_b.decode()[-400:]}")
        first, done = marks["first"] or ended, marks["done"] or ended
        peers = await self.call("peers", {"id": infohash})
        steady = {}
        if marks["p10"] is not None and marks["p90"] is not None and marks["p90"] > marks["p10"]:
            steady["steady_rate"] = 0.8 * size / (marks["p90"] - marks["p10"])
            # the time the first and the last 10 % of the bytes took, next to what they
            # would have taken at the steady rate: the ramp and the end game
            steady["head_s"] = marks["p10"] - first
            steady["tail_s"] = done - marks["p90"]
            steady["tenth_at_steady_s"] = 0.1 * size / steady["steady_rate"]
        if marks["path_first"]:
            steady["paths_up_s"] = max(marks["path_first"].values()) - first
        if marks["busy_first"] is not None and marks["busy_done"] is not None:
            # every process's CPU from the first payload byte to the last piece, as raw
            # TCP's is taken from "go" to its last byte
            steady.update(machine_cpu(marks["busy_first"], marks["busy_done"],
                                      done - first, size))
        if watch is not None and watch.pid:
            steady["seeder_cpu_s_per_gb"] = (cpu_s(watch.pid) - seeder_before) / (size / 1e9)
        return {"wall_s": ended - started, "ttfb_s": first - started,
                "transfer_s": done - first, "rate": size / max(done - first, 1e-6),
                "wall_rate": size / (ended - started), "paths": peers["paths"],
                "growth": peers.get("growth"), "peak_rss_mb": marks["peak"],
                # the downloader node's own CPU (libtorrent, bridges, hashing; not its tor)
                "cpu_s_per_gb": (cpu_s(self.pid) - cpu_before) / (size / 1e9), **steady}

    async def _watch(self, comm, infohash, size, marks, watch, deadline) -> None:
        """Poll until the download is complete or the command exits."""
        loop = asyncio.get_running_loop()
        while not comm.done() and marks["done"] is None:
            if loop.time() > deadline:
                raise BenchError("deadline passed")
            try:
                row = await self.call("torrent", {"id": infohash})
            except ObtError:
                row = None  # not registered yet
            now = loop.time()
            if row and marks["first"] is None and row.get("payload_down", 0) > 0:
                marks["first"], marks["busy_first"] = now, machine_busy_s()
            if row and (row.get("done", 0) >= size or row["state"] in ("moving", "complete")):
                marks["done"], marks["busy_done"] = now, machine_busy_s()
            for mark, part in (("p10", 0.1), ("p90", 0.9)):
                if row and marks[mark] is None and row.get("done", 0) >= part * size:
                    marks[mark] = now
            if row and marks["first"] is not None and now >= marks["next_paths"]:
                # when each outbound path first carried payload (the paths' ramp)
                marks["next_paths"] = now + 0.5
                for path in await self.paths(infohash):
                    if path["direction"] == "out" and path["down"] > 0:
                        marks["path_first"].setdefault(path["endpoint"], now)
            if watch is not None and watch.pid:
                marks["peak"] = max(marks["peak"], rss_mb(watch.pid))
            await asyncio.wait([comm], timeout=POLL)


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user and system) a process has used so far (0 if it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, TypeError, ValueError):
        return 0.0
    return times.user + times.system


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine have spent busy so far, every process counted
    (the network's tors, the nodes, the bench): user, nice, system, interrupts, steal."""
    t = psutil.cpu_times()
    return (t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
            + getattr(t, "steal", 0.0))


def machine_cpu(busy_before: float, busy_after: float, seconds: float, size: int) -> dict:
    """``machine_cpu_s_per_gb`` (every process's CPU over a transfer, per GB moved) and
    ``machine_busy_pct`` (the share of all cores busy meanwhile, 100 = every core)."""
    used = busy_after - busy_before
    return {"machine_cpu_s_per_gb": used / (size / 1e9),
            "machine_busy_pct": 100 * used / max(seconds * (psutil.cpu_count() or 1), 1e-6)}


def send_signal(pid: int, sig: int = signal.SIGINT) -> None:
    """Signal one process we started (ignore it if it is gone)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def entry(args, main) -> int:
    """A benchmark's command line: log to stderr, run ``main(args)``, and turn a
    :class:`BenchError` into exit status 1 and Ctrl-C into 130."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        return asyncio.run(main(args))
    except BenchError as exc:
        log.error("bench failed: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 130


def conditions_of(args) -> list[tuple[str, float, int]]:
    """``(name, latency_ms, base_port)`` of each condition a figure benchmark runs:
    loopback, then (with ``--latency-ms``) the same with latency on every tor-to-tor link."""
    conditions = [("loopback", 0.0, args.base_port)]
    if args.latency_ms > 0:
        conditions.append(("latency", args.latency_ms, args.base_port + 100))
    return conditions


def write_results(out: Path, stem: str, meta: dict, results: dict, text: str) -> None:
    """``<out>/<stem>-latest.json`` (every sample) and ``.md`` (the table); the table is
    printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}-latest.json").write_text(json.dumps({"meta": meta, "results": results},
                                                        indent=2))
    (out / f"{stem}-latest.md").write_text(text)
    print(text)


class NetCondition:
    """One condition of a figure benchmark: its own private network (loopback, or with
    ``latency_ms`` on every tor-to-tor link) under ``<work>/<name>``, and what to clean up.

    :param base_port: the network's first port
    """

    def __init__(self, args, name: str, latency_ms: float, base_port: int) -> None:
        self.args, self.name = args, name
        self.latency_ms, self.base_port = latency_ms, base_port
        self.root = args.work / name
        self.cleanup = Cleanup()
        self.samples: dict[str, list] = {}

    async def network(self) -> Path:
        """A fresh network, up; its network file. Taken down by :attr:`cleanup`."""
        from onionshare_bt.testnet import Testnet

        if self.root.exists():
            shutil.rmtree(self.root)
        net = Testnet(self.root / "net", base_port=self.base_port, latency_ms=self.latency_ms)
        self.cleanup.push(lambda: asyncio.to_thread(net.down))
        started = time.monotonic()
        network = await asyncio.to_thread(net.up, 120.0)
        log.info("[%s] network up in %.1f s", self.name, time.monotonic() - started)
        return network
