"""One condition of the benchmark: a private Tor network, then every figure, run by run.

Within a run the figures are taken one after another on the same network (raw TCP,
OnionShare, obt K = 1, 2, 4, 8 with one path per onion, obt with its paths grown as it goes,
the swarm), so they are side by side; runs repeat that sequence. Each obt figure uses a fresh random file, a fresh share and a fresh downloader
node, so no stale peer of an earlier run is ever listed by the tracker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from onionshare_bt.errors import ObtError
from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network
from onionshare_bt.testnet import Testnet

from . import onionshare, raw
from .procs import BenchError, Cleanup, ObtNode, log

#: the K measured unless --ks says otherwise (seeder onions; raw TCP streams)
KS = (1, 2, 4, 8)
#: the onions the seeder shares on in the adaptive figure (the shipped default)
ADAPTIVE_K = 2
SWARM_HELPERS = 2
MEMORY_SHARES = 20
SETTLE = 3.0


@dataclass(frozen=True)
class Plan:
    """What one condition measures.

    :param name: ``loopback`` or ``latency``
    :param root: its working folder
    :param base_port: its testnet's first port
    :param latency_ms: added one-way latency per tor-to-tor link
    :param runs: repetitions
    :param size: bytes per transfer
    :param only: the figures to take (raw, obt, onionshare, swarm, timing, memory)
    :param memory_size: bytes per file in the memory figure
    :param ks: the K (seeder onions, raw streams) to measure
    """

    name: str
    root: Path
    base_port: int
    latency_ms: float
    runs: int
    size: int
    only: frozenset[str]
    memory_size: int
    ks: tuple[int, ...] = KS

    @property
    def timeout(self) -> float:
        """Seconds allowed for one transfer (assumes at least 0.2 MB/s)."""
        return 120.0 + self.size / 200_000


def make_file(path: Path, size: int) -> Path:
    """Write **size** random bytes (incompressible, unique content)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = min(left, 1 << 20)
            f.write(os.urandom(chunk))
            left -= chunk
    return path


def _out_paths(paths: list[dict]) -> list[dict]:
    """The download's outbound paths: remote onion and payload bytes received."""
    return [{"onion": p["onion"], "lane": p.get("lane", 0), "down": p["down"],
             "connections": p["connections"]}
            for p in paths if p["direction"] == "out"]


class Condition:
    """Run every figure of one :class:`Plan` and collect the samples."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.samples: dict[str, list] = defaultdict(list)
        self.cleanup = Cleanup()
        self.network_file: Path | None = None
        self.seeder: ObtNode | None = None

    async def run(self) -> dict:
        """Bring the network up, take every figure, tear everything down.

        :returns: ``{"samples": {figure: [per-run dicts]}, "network_up_s": float}``
        """
        plan = self.plan
        if plan.root.exists():
            shutil.rmtree(plan.root)
        try:
            up_s = await self._network()
            wants_obt = plan.only & {"obt", "swarm", "timing"}
            if wants_obt:
                self.seeder = ObtNode(plan.root / "seeder", self.network_file)
                await self.seeder.start()
                self.cleanup.push(self.seeder.stop)
            for run in range(plan.runs):
                log.info("[%s] run %d of %d", plan.name, run + 1, plan.runs)
                await self._run_once(run)
        finally:
            await self.cleanup.run()
        return {"samples": dict(self.samples), "network_up_s": up_s}

    async def _network(self) -> float:
        """Bring this condition's private network up; returns the seconds it took."""
        plan = self.plan
        net = Testnet(plan.root / "net", base_port=plan.base_port, latency_ms=plan.latency_ms)
        started = time.monotonic()
        self.cleanup.push(lambda: asyncio.to_thread(net.down))
        self.network_file = await asyncio.to_thread(net.up, 120.0)
        took = time.monotonic() - started
        log.info("[%s] private Tor network up in %.1f s", plan.name, took)
        return took

    async def _run_once(self, run: int) -> None:
        only = self.plan.only
        if only & {"raw", "onionshare"}:
            await self._guard("tor_phase", self._tor_phase(run))
        if only & {"obt", "timing"}:
            for k in self.plan.ks:
                await self._guard(f"obt_k{k}", self._obt(run, k))
            await self._guard("obt_adaptive", self._obt(run, ADAPTIVE_K, adaptive=True))
        if "swarm" in only:
            await self._guard("swarm", self._swarm(run))
        if "memory" in only:
            await self._guard("memory", self._memory(run))

    async def _guard(self, figure: str, step) -> None:
        """Run one figure; a failure is recorded as a sample with ``error``, not raised."""
        try:
            await step
        except (BenchError, ObtError, OSError) as exc:
            log.error("[%s] %s failed: %s", self.plan.name, figure, exc)
            self.samples[figure].append({"error": str(exc)})

    # -- raw TCP and OnionShare: two plain tors ------------------------------------------
    async def _tor_phase(self, run: int) -> None:
        """Raw TCP and OnionShare, through two plain tors started for this run."""
        plan = self.plan
        network = Network.load(self.network_file)
        server = TorClient(plan.root / f"tor-server-{run}", network, bootstrap_timeout=90)
        client = TorClient(plan.root / f"tor-client-{run}", network, bootstrap_timeout=90)
        try:
            await asyncio.gather(server.start(), client.start())
            if "raw" in plan.only:
                for streams in plan.ks:
                    await self._guard(f"raw_{streams}", self._raw(server, client, streams))
            if "onionshare" in plan.only:
                await self._guard("onionshare", self._onionshare(run, server, client))
        finally:
            await asyncio.gather(server.close(), client.close())

    async def _raw(self, server: TorClient, client: TorClient, streams: int) -> None:
        """One raw figure; a stream that cannot be opened (a stuck rendezvous) gets one
        more try on fresh onions, since that is Tor's set-up, not the transfer."""
        for attempt in (1, 2):
            try:
                result = await raw.measure(server, client, streams, self.plan.size,
                                           self.plan.timeout)
                break
            except raw.ConnectFailed as exc:
                if attempt == 2:
                    raise
                log.warning("[%s] raw_%d: %s; trying again", self.plan.name, streams, exc)
        result["attempts"] = attempt
        self._record(f"raw_{streams}", result)

    async def _onionshare(self, run: int, server: TorClient, client: TorClient) -> None:
        """onionshare-cli serves a fresh file through **server**; curl fetches it."""
        plan = self.plan
        path = make_file(plan.root / "files" / f"onionshare-r{run}.bin", plan.size)
        out = plan.root / "out" / f"onionshare-r{run}.bin"
        out.parent.mkdir(parents=True, exist_ok=True)
        workdir = plan.root / f"onionshare-{run}"
        try:
            async with onionshare.OnionShare(server, path, workdir) as share:
                result = await onionshare.curl_fetch(share.url, client.socks_address, out,
                                                     plan.size, plan.timeout)
                result["start_s"] = share.start_s
            self._record("onionshare", result)
        finally:
            path.unlink(missing_ok=True)
            out.unlink(missing_ok=True)

    # -- obt ----------------------------------------------------------------------------
    async def _fresh_share(self, label: str, k: int) -> tuple[dict, float, Path]:
        """A new random file shared by the seeder on K onions."""
        path = make_file(self.plan.root / "files" / f"{label}.bin", self.plan.size)
        info, share_s = await self.seeder.share(path, k)
        return info, share_s, path

    async def _node(self, label: str, k: int, max_paths: int | None = None
                    ) -> tuple[ObtNode, float]:
        """Start a fresh node (stopped by the cleanup at the latest)."""
        node = ObtNode(self.plan.root / label, self.network_file, onions=k,
                       max_paths=max_paths)
        self.cleanup.push(node.stop)
        return node, await node.start()

    async def _obt(self, run: int, k: int, adaptive: bool = False) -> None:
        """A fresh downloader with ``onions = K`` fetches a fresh K-onion share: one path
        per onion (``max_paths = 0``), or, **adaptive**, with the shipped settings (its
        paths grown while each adds 15 %)."""
        plan = self.plan
        name = "adaptive" if adaptive else f"k{k}"
        info, share_s, path = await self._fresh_share(f"{name}-r{run}", k)
        node, start_s = await self._node(f"dl-{name}-r{run}", k,
                                         max_paths=None if adaptive else 0)
        try:
            result = await node.fetch(info["uri"], info["infohash"], plan.size,
                                      plan.root / "out" / f"{name}-r{run}", plan.timeout,
                                      watch=self.seeder)
            result["dl_rss_mb"] = node.memory()["node_rss_mb"]
        finally:
            await node.stop()
            await self.seeder.unshare(info["infohash"])
            path.unlink(missing_ok=True)
            shutil.rmtree(plan.root / "out" / f"{name}-r{run}", ignore_errors=True)
        result.update(share_s=share_s, node_start_s=start_s, paths=_out_paths(result["paths"]))
        if result.get("growth"):
            result["settled_paths"] = result["growth"]["paths"]
        self._record(f"obt_{name}", result)

    async def _swarm(self, run: int) -> None:
        """3 seeders (the original plus 2 that fetched first) x K=2, a fresh node fetches."""
        plan = self.plan
        info, _share_s, path = await self._fresh_share(f"swarm-r{run}", 2)
        uri, ih = info["uri"], info["infohash"]
        helpers = []
        try:
            for i in range(SWARM_HELPERS):
                helpers.append((await self._node(f"sw{i}-r{run}", 2))[0])
            await asyncio.gather(*(
                h.fetch(uri, ih, plan.size, plan.root / "out" / f"sw{i}-r{run}", plan.timeout)
                for i, h in enumerate(helpers)))
            owner = {o.removesuffix(".onion"): "original" for o in info["onions"]}
            for i, helper in enumerate(helpers):
                owner.update({p["onion"]: f"helper{i + 1}" for p in await helper.paths(ih)
                              if p["direction"] == "in"})
            fresh, _ = await self._node(f"sw-fresh-r{run}", 2)
            result = await fresh.fetch(uri, ih, plan.size, plan.root / "out" / f"swf-r{run}",
                                       plan.timeout)
            await fresh.stop()
        finally:
            for helper in helpers:
                await helper.stop()
            await self.seeder.unshare(ih)
            path.unlink(missing_ok=True)
            for name in (f"sw0-r{run}", f"sw1-r{run}", f"swf-r{run}"):
                shutil.rmtree(plan.root / "out" / name, ignore_errors=True)
        paths = _out_paths(result["paths"])
        for p in paths:
            p["seeder"] = owner.get(p["onion"], "unknown")
        result["paths"] = paths
        self._record("swarm", result)

    async def _memory(self, run: int) -> None:
        """RSS of a fresh node seeding 1, then 20 shares (tor reported apart)."""
        plan = self.plan
        node, _ = await self._node(f"mem-r{run}", 2)
        files = plan.root / "files" / f"mem-r{run}"
        try:
            sample = {}
            for i in range(MEMORY_SHARES):
                await node.share(make_file(files / f"m{i}.bin", plan.memory_size), 2)
                if i + 1 in (1, MEMORY_SHARES):
                    await asyncio.sleep(SETTLE)
                    mem = node.memory()
                    sample[f"node_rss_{i + 1}"] = mem["node_rss_mb"]
                    sample[f"tor_rss_{i + 1}"] = mem["tor_rss_mb"]
        finally:
            await node.stop()
            shutil.rmtree(files, ignore_errors=True)
        self._record("memory", sample)

    def _record(self, figure: str, result: dict) -> None:
        result["loadavg_1m"] = os.getloadavg()[0]  # other work on the machine skews figures
        log.info("[%s] %s: %s", self.plan.name, figure, _brief(result))
        self.samples[figure].append(result)


def _brief(result: dict) -> str:
    """A one-line view of a sample for the progress log."""
    parts = []
    for key in ("rate", "wall_s", "ttfb_s", "share_s", "node_rss_20", "settled_paths",
                "cpu_s_per_gb"):
        if key in result:
            value = result[key]
            parts.append(f"{key}={value / 1e6:.2f} MB/s" if key == "rate" else f"{key}={value:.2f}")
    if "paths" in result:
        parts.append("paths=" + ",".join(f"{p['down'] / 1e6:.1f}" for p in result["paths"]))
    return " ".join(parts) or str(result)

