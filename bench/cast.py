"""``python -m bench.cast``: live audio over onions (issue 2.8), side by side in one run.

For each condition (a private Tor network on loopback, then one with ``--latency-ms`` added
to every tor-to-tor link), run by run, one broadcaster and six listener nodes (every one
relaying, fan-out 2):

- **upload, 1 vs 6 listeners**: the broadcaster's bytes sent per second over
  ``--window`` seconds with one listener, then again once all six listen (the tree keeps it
  at two streams; a broadcaster sending to every listener, as pearCast does, would send six).
- **delay, depth 1 and 2**: for ``--window`` seconds the bench reads the loopback URL of a
  listener at depth 1 and of one at depth 2 (plain Ogg) and takes, for every page, its
  arrival less the moment the broadcaster could first serve it (``page_origin`` +
  granule / 48 kHz, on this machine's monotonic clock): median and 95th percentile. The
  encoder's own delay (ffmpeg, Opus look-ahead, a 200 ms page) comes on top and is the
  same for any server.
- **gap on a relay's loss**: the depth-1 relay with listeners under it is killed with
  SIGKILL; each of its listeners reports how long it went without a page and how many pages
  it lost.

Not run in CI. Every process is ended by PID (:mod:`bench.procs`). Results go to
``<out>/cast-latest.json`` and ``<out>/cast-latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from onionshare_bt.cast.core import GRANULE_RATE
from onionshare_bt.cast.ogg import PageReader
from onionshare_bt.errors import ObtError

from .procs import (
    BenchError, NetCondition, ObtNode, conditions_of, entry, kill_pid, log, run, send_signal,
    write_results,
)

HERE = Path(__file__).resolve().parent
LISTENERS = 6
FANOUT = 2
BITRATE = 64


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cast",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds each upload and delay figure is taken over (default 20)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="added per tor-to-tor link in the second condition; 0: skip it")
    parser.add_argument("--base-port", type=int, default=30800,
                        help="first port of the loopback network; latency uses +100")
    parser.add_argument("--work", type=Path, default=Path("/tmp/obt-bench-cast"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--label", default="")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def make_audio(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    await run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
               f"sine=frequency=440:duration={seconds:g}", "-ac", "1", str(path)], timeout=300)
    return path


async def until(check, timeout: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)


async def casts(node: ObtNode, role: str) -> list[dict]:
    try:
        rows = await node.call("casts")
    except (ObtError, OSError):
        return []
    return [c for c in rows if c["role"] == role]


async def delays(url: str, origin: float, seconds: float) -> list[float]:
    """Each page's delay at the listener whose loopback stream is **url**."""
    reader, out = PageReader(), []
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
        if resp.status != 200:
            raise BenchError(f"the listener's loopback URL answered HTTP {resp.status}")
        first = True
        end = time.monotonic() + seconds
        async for chunk in resp.content.iter_any():
            now = time.monotonic()
            pages = [p for p in reader.feed(chunk) if not p.is_header]
            if first:  # the backlog a newcomer is given at once: not live
                first = False
                continue
            out += [now - (origin + p.granule / GRANULE_RATE) for p in pages]
            if now > end:
                break
    return out


class CastCondition(NetCondition):
    async def run(self, audio: Path) -> dict:
        try:
            network = await self.network()
            self.caster = ObtNode(self.root / "caster", network)
            self.cleanup.push(self.caster.stop)
            await self.caster.start()
            for run_no in range(self.args.runs):
                try:
                    result = await self._one(run_no, network, audio)
                except (BenchError, OSError, ObtError, aiohttp.ClientError) as exc:
                    log.error("[%s] run %d failed: %s", self.name, run_no, exc)
                    result = {"error": str(exc)}
                result["loadavg_1m"] = os.getloadavg()[0]
                log.info("[%s] run %d: %s", self.name, run_no, {
                    k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})
                self.samples.setdefault("run", []).append(result)
        finally:
            await self.cleanup.run()
        return self.samples

    async def _one(self, run_no: int, network: Path, audio: Path) -> dict:
        nodes = [ObtNode(self.root / f"r{run_no}-l{i}", network) for i in range(LISTENERS)]
        for node in nodes:
            self.cleanup.push(node.stop)
        await asyncio.gather(*(n.start() for n in nodes))
        cast = await self.caster.cli("cast", str(audio), "--fanout", str(FANOUT),
                                     "--bitrate", str(BITRATE), timeout=300)
        result: dict = {}
        try:
            await self._join(nodes[0], cast["uri"])
            result["upload_1_Bps"] = await self._upload()
            # the others at once: the tree forms as their onions are published (a join
            # finding no free slot is tried again)
            await asyncio.gather(*(self._join(node, cast["uri"]) for node in nodes[1:]))
            tree = await self._tree(nodes)
            result["depth"] = max(r["depth"] for r in tree.values())
            result["upload_6_Bps"] = await self._upload()
            [b] = await casts(self.caster, "broadcast")
            origin = b["page_origin"]
            by_depth = {}
            for node in nodes:
                by_depth.setdefault(tree[node.home]["depth"], node)
            got = await asyncio.gather(*(
                delays(tree[by_depth[d].home]["url"], origin, self.args.window) for d in (1, 2)))
            for d, values in zip((1, 2), got):
                result[f"delay_d{d}_median_s"] = statistics.median(values)
                result[f"delay_d{d}_p95_s"] = sorted(values)[int(0.95 * (len(values) - 1))]
            result.update(await self._kill_a_relay(nodes, tree))
        finally:
            await self.caster.cli("cast", "--stop", timeout=60)
            for node in nodes:
                await node.stop()
        return result

    async def _join(self, node: ObtNode, uri: str) -> None:
        await node.cli("listen", uri, "--fanout", str(FANOUT), timeout=120)

        async def ready():
            rows = await casts(node, "listen")
            return rows and rows[0]["pages"] > 0 and rows[0]["offered"] == FANOUT
        await until(ready, 180, f"{node.home.name} to listen and offer to relay")

    async def _tree(self, nodes) -> dict:
        out = {}
        for node in nodes:
            [row] = await casts(node, "listen")
            out[node.home] = row
        return out

    async def _upload(self) -> float:
        [before] = await casts(self.caster, "broadcast")
        t0 = time.monotonic()
        await asyncio.sleep(self.args.window)
        [after] = await casts(self.caster, "broadcast")
        return (after["sent"] - before["sent"]) / (time.monotonic() - t0)

    async def _kill_a_relay(self, nodes, tree) -> dict:
        relays = [n for n in nodes if tree[n.home]["depth"] == 1 and tree[n.home]["serving"]]
        if not relays:
            raise BenchError("no relay at depth 1 serves anyone")
        victim = relays[0]
        dead = tree[victim.home]["onion"]
        orphans = [n for n in nodes if tree[n.home]["parent"] == dead]
        send_signal(victim.pid, signal.SIGKILL)
        victim.pid = None
        await asyncio.to_thread(kill_pid, victim.tor_pid)
        victim.tor_pid = None

        async def rejoined():
            rows = [(await casts(n, "listen"))[0] for n in orphans]
            return all(r["gaps"] for r in rows) and rows
        rows = await until(rejoined, 120, "the dead relay's listeners to join again")
        gaps = [r["gaps"][-1] for r in rows]
        return {"gap_stall_s": max(g["stall_s"] for g in gaps),
                "gap_pages_lost": max(g["pages_lost"] for g in gaps), "orphans": len(orphans)}


ROWS = (
    ("broadcaster upload, 1 listener, kB/s", "upload_1_Bps", 1e-3),
    ("broadcaster upload, 6 listeners (fan-out 2), kB/s", "upload_6_Bps", 1e-3),
    ("tree depth with 6 listeners", "depth", 1),
    ("delay at depth 1, median s", "delay_d1_median_s", 1),
    ("delay at depth 1, 95th percentile s", "delay_d1_p95_s", 1),
    ("delay at depth 2, median s", "delay_d2_median_s", 1),
    ("delay at depth 2, 95th percentile s", "delay_d2_p95_s", 1),
    ("a relay killed: longest time without a page, s", "gap_stall_s", 1),
    ("a relay killed: most pages lost", "gap_pages_lost", 1),
)


def _stat(samples: list[dict], key: str, scale: float) -> str:
    values = [s[key] * scale for s in samples if key in s]
    if not values:
        errors = [s["error"] for s in samples if "error" in s]
        return f"failed ({errors[0][:60]})" if errors else "—"
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}–{max(values):.2f})"


def report(results: dict, meta: dict) -> str:
    names = {"loopback": "loopback", "latency": f"+{meta['latency_ms']:g} ms per link"}
    conds = list(results)
    lines = [f"# obt cast: live audio over onions ({meta['date']})", "",
             f"{meta['label'] or 'obt'}; {meta['runs']} run(s); Opus {BITRATE} kbit/s in 200 ms "
             f"pages; {LISTENERS} listeners, each relaying (fan-out {FANOUT}); figures over "
             f"{meta['window']:g} s. Median (min–max). Delay: from the moment the broadcaster "
             "could serve a page to its arrival at the listener.", "",
             "| | " + " | ".join(names[c] for c in conds) + " |",
             "|" + "---|" * (len(conds) + 1)]
    for title, key, scale in ROWS:
        lines.append(f"| {title} | " + " | ".join(
            _stat(results[c].get("run", []), key, scale) for c in conds) + " |")
    ratio = []
    for c in conds:
        runs = [s for s in results[c].get("run", []) if "upload_1_Bps" in s and "upload_6_Bps" in s]
        if runs:
            grown = statistics.median(s["upload_6_Bps"] / s["upload_1_Bps"] for s in runs)
            ratio.append(f"{names[c]}: {grown:.2f}")
    lines += ["", "Broadcaster upload with 6 listeners ÷ with 1: " + "; ".join(ratio)
              + f" (a broadcaster serving every listener itself: {LISTENERS})."]
    return "\n".join(lines) + "\n"


async def main(args) -> int:
    args.work.mkdir(parents=True, exist_ok=True)
    # long enough for every run's joins, windows and the relay's loss
    audio = await make_audio(args.work / "tone.wav", 600)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "label": args.label, "runs": args.runs,
            "window": args.window, "latency_ms": args.latency_ms}
    results = {}
    for name, latency, port in conditions_of(args):
        results[name] = await CastCondition(args, name, latency, port).run(audio)
    write_results(args.out, "cast", meta, results, report(results, meta))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return entry(parse_args(argv), main)


if __name__ == "__main__":
    sys.exit(cli())
