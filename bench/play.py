"""``python -m bench.play``: play while it arrives (issue 2.7), side by side in one run.

For each condition (a private Tor network on loopback, then one with ``--latency-ms`` added
to every tor-to-tor link) and each K (onions per share and per download), run by run:

- **play**: a seeder shares a fresh 128 kbit/s Ogg/Opus file (constant bit rate); a fresh
  node runs ``obt play URI --no-player``; ffmpeg decodes the first second from the URL it
  prints. Times: to the URL, and to the first decodable second (ffmpeg done, PCM checked
  against the source's), and for reference to the first payload byte (connection set-up
  over Tor). Then a real-time reader plays the file at 1x from byte 0 for
  ``--play-seconds``: it starts with what it has, and each time the bytes it received fall
  behind its playhead it stalls (counted) until it holds ``REBUFFER`` s ahead again.
- **whole**: the same kind of file, a fresh share and node, ``obt get URI`` (the whole file,
  verified and moved into place), then ffmpeg decodes the first second from disk.

Not run in CI. Every process is ended by PID (:mod:`bench.procs`). Results go to
``<out>/play-latest.json`` and ``<out>/play-latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from onionshare_bt.errors import ObtError

from .procs import (
    BenchError, NetCondition, ObtNode, conditions_of, entry, log, obt_command, run, write_results,
)

HERE = Path(__file__).resolve().parent
BITRATE = 128_000  # bits/s, constant (-vbr off)
#: a stalled reader resumes once it holds this many seconds ahead of its playhead
REBUFFER = 1.0
#: the reader's time step
TICK = 0.02


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.play",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="length of the audio file (default 20: ~19 MB at 128 kbit/s)")
    parser.add_argument("--play-seconds", type=float, default=60.0,
                        help="how long the real-time reader plays (default 60)")
    parser.add_argument("--ks", default="1,2", help="onions per share/download (default 1,2)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="added per tor-to-tor link in the second condition; 0: skip it")
    parser.add_argument("--base-port", type=int, default=30600,
                        help="first port of the loopback network; latency uses +100")
    parser.add_argument("--work", type=Path, default=Path("/tmp/obt-bench-play"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--label", default="")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.ks = tuple(int(k) for k in args.ks.split(","))
    return args


# -- audio ----------------------------------------------------------------------------------
async def make_audio(path: Path, seconds: float) -> Path:
    """A sine at a constant 128 kbit/s, Ogg/Opus."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
               f"sine=frequency=440:duration={seconds:g}", "-c:a", "libopus", "-b:a",
               str(BITRATE), "-vbr", "off", str(path)], timeout=900)
    return path


async def variant(base: Path, path: Path) -> Path:
    """``base`` with a random comment: the same audio, a fresh info-hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-c", "copy", "-metadata",
               f"comment={secrets.token_hex(8)}", str(path)], timeout=120)
    return path


async def first_second(source: str) -> bytes:
    """The first second of ``source`` decoded (48 kHz mono s16le)."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-i", source, "-t", "1", "-f", "s16le", "-ac", "1",
        "-ar", "48000", "-", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 600)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise BenchError("ffmpeg did not decode a second in 600 s") from exc
    if proc.returncode != 0 or len(out) != 96_000:
        raise BenchError(f"ffmpeg failed ({proc.returncode}): {err.decode()[-300:]}")
    return out


async def first_payload(node: ObtNode, infohash: str) -> float:
    """The loop time at which the node's download first holds a payload byte."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            row = await node.call("torrent", {"id": infohash})
        except ObtError:
            row = None  # not added yet
        if row and row.get("payload_down", 0) > 0:
            return loop.time()
        await asyncio.sleep(0.05)


# -- the real-time reader ---------------------------------------------------------------------
async def realtime(url: str, seconds: float, size: int) -> dict:
    """Read ``url`` from byte 0 and play it at 1x; count the stalls.

    The playhead advances ``BITRATE / 8`` bytes per second of play once the reader holds
    :data:`REBUFFER` s of audio; when it reaches bytes not yet received the reader stalls
    until it holds :data:`REBUFFER` s ahead again, then plays on.
    """
    rate = BITRATE / 8
    got = {"bytes": 0, "done": False}
    loop = asyncio.get_running_loop()

    async def receive(resp) -> None:
        async for chunk in resp.content.iter_chunked(64 * 1024):
            got["bytes"] += len(chunk)
        got["done"] = True

    stalls, stalled_s, played = 0, 0.0, 0.0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as resp:
        if resp.status != 200:
            raise BenchError(f"the real-time reader got HTTP {resp.status}")
        task = asyncio.ensure_future(receive(resp))
        try:
            # like a player, start once :data:`REBUFFER` s are in (the first second is on
            # disk already: ffmpeg decoded it)
            async with asyncio.timeout(600):
                while got["bytes"] < min(size, REBUFFER * rate) and not task.done():
                    await asyncio.sleep(TICK)
            last = loop.time()
            stall_began = None
            while played < seconds and played * rate < size:
                await asyncio.sleep(TICK)
                now = loop.time()
                if stall_began is None:
                    played += now - last
                    if got["bytes"] < min(size, played * rate) and not got["done"]:
                        stalls, stall_began = stalls + 1, now
                elif got["bytes"] >= min(size, (played + REBUFFER) * rate) or got["done"]:
                    stalled_s += now - stall_began
                    stall_began = None
                last = now
                if task.done() and task.exception():
                    raise BenchError(f"the reader's stream broke: {task.exception()}")
        finally:
            task.cancel()
    return {"stalls": stalls, "stalled_s": stalled_s, "played_s": played}


# -- one condition ----------------------------------------------------------------------------
class PlayCondition(NetCondition):
    async def run(self, base_audio: Path) -> dict:
        try:
            network = await self.network()
            self.seeder = ObtNode(self.root / "seeder", network, onions=2)
            self.cleanup.push(self.seeder.stop)
            await self.seeder.start()
            self.network = network
            for run_no in range(self.args.runs):
                for k in self.args.ks:
                    for figure in ("play", "whole"):
                        await self._guard(f"{figure}_k{k}", self._one(figure, k, run_no,
                                                                      base_audio))
        finally:
            await self.cleanup.run()
        return self.samples

    async def _guard(self, key: str, step) -> None:
        try:
            result = await step
        except (BenchError, OSError, aiohttp.ClientError) as exc:
            log.error("[%s] %s failed: %s", self.name, key, exc)
            result = {"error": str(exc)}
        result["loadavg_1m"] = os.getloadavg()[0]
        log.info("[%s] %s: %s", self.name, key, {k: round(v, 2) if isinstance(v, float) else v
                                                for k, v in result.items()})
        self.samples.setdefault(key, []).append(result)

    async def _one(self, figure: str, k: int, run_no: int, base_audio: Path) -> dict:
        label = f"{figure}-k{k}-r{run_no}"
        audio = await variant(base_audio, self.root / "files" / label / "tone.opus")
        expected = await first_second(str(audio))
        # the random comment is a tag the metadata check reports: share the file as it is
        info = await self.seeder.cli("share", str(audio), "--onions", str(k), "--keep-metadata",
                                     timeout=600)
        node = ObtNode(self.root / f"dl-{label}", self.network, onions=k)
        self.cleanup.push(node.stop)
        out = self.root / "out" / label
        try:
            await node.start()
            if figure == "play":
                return await self._play(node, info, out, expected, audio.stat().st_size)
            return await self._whole(node, info, out, expected)
        finally:
            await node.stop()
            await self.seeder.unshare(info["infohash"])
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(audio.parent, ignore_errors=True)

    async def _play(self, node: ObtNode, info: dict, out: Path, expected: bytes,
                    size: int) -> dict:
        loop = asyncio.get_running_loop()
        started = loop.time()
        watch = asyncio.ensure_future(first_payload(node, info["infohash"]))
        try:
            data = json.loads(await run([*obt_command(), "play", info["uri"], "-o", str(out),
                                         "--no-player", "--json"], node.env, timeout=600))
            url_s = loop.time() - started
            got = await first_second(data["url"])
            first_s = loop.time() - started
            first_byte = await asyncio.wait_for(watch, 60) - started
        finally:
            watch.cancel()
        if got != expected:
            raise BenchError("the first second decoded from the URL differs from the source")
        row = await node.call("torrent", {"id": info["infohash"]})
        result = {"url_s": url_s, "first_byte_s": first_byte, "first_second_s": first_s,
                  "progress_at_first_second": row.get("progress", 0.0)}
        result.update(await realtime(data["url"], self.args.play_seconds, size))
        return result

    async def _whole(self, node: ObtNode, info: dict, out: Path, expected: bytes) -> dict:
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = json.loads(await run([*obt_command(), "get", info["uri"], "-o", str(out),
                                     "--json"], node.env, timeout=1200))
        complete_s = loop.time() - started
        got = await first_second(done["path"])
        if got != expected:
            raise BenchError("the downloaded file's first second differs from the source")
        return {"complete_s": complete_s, "first_second_s": loop.time() - started}


# -- report -----------------------------------------------------------------------------------
def _stat(samples: list[dict], key: str) -> str:
    values = [s[key] for s in samples if key in s]
    if not values:
        errors = [s["error"] for s in samples if "error" in s]
        return f"failed ({errors[0][:60]})" if errors else "—"
    med = statistics.median(values)
    if key == "stalls":
        return f"{med:g} ({min(values)}–{max(values)})"
    return f"{med:.2f} ({min(values):.2f}–{max(values):.2f})"


ROWS = (
    ("`obt play URI` until it prints the URL, s", "play", "url_s"),
    ("`obt play URI` until the first payload byte arrives, s", "play", "first_byte_s"),
    ("`obt play URI` until ffmpeg decoded the first second, s", "play", "first_second_s"),
    ("download progress at that moment", "play", "progress_at_first_second"),
    ("`obt get URI` (whole file) until complete, s", "whole", "complete_s"),
    ("`obt get URI` then ffmpeg: first second, s", "whole", "first_second_s"),
    ("stalls of a 1x reader from byte 0", "play", "stalls"),
    ("seconds stalled", "play", "stalled_s"),
    ("seconds played", "play", "played_s"),
)


def report(results: dict, meta: dict) -> str:
    columns = [(cond, k) for cond in results for k in meta["ks"]]
    names = {"loopback": "loopback", "latency": f"+{meta['latency_ms']:g} ms"}
    head = "| | " + " | ".join(f"{names[c]} K={k}" for c, k in columns) + " |"
    lines = [f"# obt play: first second and stalls ({meta['date']})", "",
             f"{meta['label'] or 'obt'}; {meta['runs']} run(s); a {meta['minutes']:g}-minute "
             f"Ogg/Opus file at {BITRATE // 1000} kbit/s ({meta['size'] / 1e6:.1f} MB); the "
             f"1x reader plays up to {meta['play_seconds']:g} s. Median (min–max).", "",
             head, "|" + "---|" * (len(columns) + 1)]
    for title, figure, key in ROWS:
        cells = [_stat(results[c].get(f"{figure}_k{k}", []), key) for c, k in columns]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


async def main(args) -> int:
    args.work.mkdir(parents=True, exist_ok=True)
    base = await make_audio(args.work / "base.opus", args.minutes * 60)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "label": args.label, "runs": args.runs,
            "minutes": args.minutes, "play_seconds": args.play_seconds, "ks": list(args.ks),
            "latency_ms": args.latency_ms, "size": base.stat().st_size}
    results = {}
    for name, latency, port in conditions_of(args):
        results[name] = await PlayCondition(args, name, latency, port).run(base)
    write_results(args.out, "play", meta, results, report(results, meta))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return entry(parse_args(argv), main)


if __name__ == "__main__":
    sys.exit(cli())
