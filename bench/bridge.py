"""``python -m bench.bridge``: what the loopback bridges cost, without Tor.

Two real libtorrent sessions in one process; the leecher fetches a random file from the
seeder either **directly** (libtorrent to libtorrent over loopback TCP) or **bridged**, as
the node does it: an outbound bridge endpoint per lane, the inbound bridge in front of the
seeder, every byte copied through both bridges' Python pumps and wire filters (the dial
goes straight to the inbound listener instead of through Tor). Side by side in one run:
the rate and the CPU seconds per GB of the whole process (both sessions' libtorrent, both
bridges), so the bridged rows minus the direct row are the bridges' own cost.

Run by hand: ``python -m bench.bridge [--size-mb 256] [--runs 3] [--lanes 1,2,4,8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.onion import onion_from_pubkey

from .procs import entry, log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bridge",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lanes", default="1,2,4,8",
                        help="bridged rows: lanes (endpoints, connections) per download")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    args.lanes = [int(x) for x in args.lanes.split(",") if x.strip()]
    return args


async def transfer(src: Path, lanes: int | None, work: Path) -> dict:
    """One download of **src**: direct (lanes None) or bridged over **lanes** endpoints."""
    seeder, leecher = Engine(), Engine()
    await seeder.start()
    await leecher.start()
    bridges: list[Bridges] = []
    try:
        meta = await asyncio.to_thread(create, src)
        seeder.add(meta, src.parent, seed=True)
        dest = work / f"dest-{time.monotonic_ns()}"
        dest.mkdir()
        leecher.add(meta, dest)
        if lanes is None:
            endpoints = [("127.0.0.1", seeder.listen_port)]
        else:
            inbound_side = Bridges(dial=None, engine_port=seeder.listen_port)
            inbound = await inbound_side.inbound(meta.id, meta.info_hashes)
            in_port = int(inbound.endpoint.rsplit(":", 1)[1])

            async def dial(onion, port, torrent_id, lane=0):
                return await asyncio.open_connection("127.0.0.1", in_port)

            outbound_side = Bridges(dial=dial, engine_port=leecher.listen_port)
            bridges = [outbound_side, inbound_side]
            onion = onion_from_pubkey(os.urandom(32))
            endpoints = [await outbound_side.outbound(meta.id, onion, 6881, lane=i)
                         for i in range(lanes)]
        cpu0, t0 = time.process_time(), time.monotonic()
        for endpoint in endpoints:
            leecher.connect(meta.id, endpoint)
        while leecher.status(meta.id).progress < 1.0:
            await asyncio.sleep(0.02)
            if time.monotonic() - t0 > 600:
                raise TimeoutError("the transfer did not finish in 600 s")
        took, cpu = time.monotonic() - t0, time.process_time() - cpu0
        return {"rate": meta.size / took, "cpu_s_per_gb": cpu / (meta.size / 1e9)}
    finally:
        for side in bridges:
            await side.close()
        await leecher.close()
        await seeder.close()


async def main(args: argparse.Namespace) -> int:
    rows = [("direct (no bridge)", None)] + [(f"bridged, {k} lane(s)", k) for k in args.lanes]
    samples: dict[str, list[dict]] = {label: [] for label, _ in rows}
    with tempfile.TemporaryDirectory(prefix="obt-bench-bridge-") as tmp:
        work = Path(tmp)
        src = work / "src" / "file.bin"
        src.parent.mkdir()
        with open(src, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        for run in range(args.runs):
            for label, lanes in rows:
                result = await transfer(src, lanes, work)
                log.info("run %d %s: %.1f MB/s, %.1f CPU s/GB", run + 1, label,
                         result["rate"] / 1e6, result["cpu_s_per_gb"])
                samples[label].append(result)
    base = statistics.median(s["cpu_s_per_gb"] for s in samples[rows[0][0]])
    print(f"\n{args.size_mb} MiB, {args.runs} runs, medians; CPU of the whole process "
          "(both libtorrent sessions and both bridges)\n")
    print("| path | MB/s | CPU s per GB | bridges' CPU s per GB |\n|---|---|---|---|")
    for label, _ in rows:
        rate = statistics.median(s["rate"] for s in samples[label]) / 1e6
        cpu = statistics.median(s["cpu_s_per_gb"] for s in samples[label])
        extra = "—" if label == rows[0][0] else f"{cpu - base:.1f}"
        print(f"| {label} | {rate:.0f} | {cpu:.1f} | {extra} |")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return entry(parse_args(argv), main)


if __name__ == "__main__":
    sys.exit(cli())
