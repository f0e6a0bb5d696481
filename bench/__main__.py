"""``python -m bench``: the benchmark for issue 4 (see bench/README.md).

Brings up one private Tor network per condition (loopback, then, with ``--latency-ms``,
one with that much added latency per tor-to-tor link), takes every figure side by side,
run by run, and writes ``<out>/latest.json`` and ``<out>/latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import subprocess
import sys
import time
from pathlib import Path

import libtorrent

from . import onionshare, report
from .procs import entry, log
from .runner import Condition, Plan

FIGURES = ("raw", "obt", "onionshare", "swarm", "latency", "timing", "memory")
#: figures that the latency condition repeats
LATENCY_FIGURES = frozenset({"raw", "obt", "onionshare", "swarm"})
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median; default 3)")
    parser.add_argument("--size-mb", type=int, default=64, help="MiB per transfer (default 64)")
    parser.add_argument("--only", default=",".join(FIGURES),
                        help=f"comma-separated figures to take (default all: {','.join(FIGURES)}); "
                             "'latency' repeats raw/obt/onionshare/swarm with added latency")
    parser.add_argument("--latency-size-mb", type=int, default=0,
                        help="MiB per transfer in the latency condition (default: --size-mb)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="one-way latency added per tor-to-tor link (default 20)")
    parser.add_argument("--memory-mb", type=int, default=16,
                        help="MiB per file in the memory figure (default 16)")
    parser.add_argument("--base-port", type=int, default=30000,
                        help="first port of the loopback network; the latency one uses +100")
    parser.add_argument("--work", type=Path, default=Path("/tmp/obt-bench"),
                        help="scratch folder (networks, node homes, files)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--label", default="",
                        help="what was measured (e.g. a commit), recorded with the results")
    parser.add_argument("--ks", default="1,2,4,8",
                        help="the K to measure: onions per share for obt, streams for raw TCP "
                             "(default 1,2,4,8; the paths-grown figure always shares on 2)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError:
        parser.error("--ks takes comma-separated numbers, e.g. 2,4")
    if not args.ks or not all(1 <= k <= 8 for k in args.ks):
        parser.error("--ks takes numbers from 1 to 8")
    args.only = frozenset(f.strip() for f in args.only.split(",") if f.strip())
    unknown = args.only - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(sorted(unknown))}")
    if args.runs < 1 or args.size_mb < 1:
        parser.error("--runs and --size-mb must be at least 1")
    return args


def plans(args: argparse.Namespace) -> list[Plan]:
    """The conditions to run, in order."""
    common = dict(runs=args.runs, size=args.size_mb << 20, memory_size=args.memory_mb << 20,
                  ks=args.ks)
    result = []
    base = args.only - {"latency"}
    if base:
        result.append(Plan("loopback", args.work / "loopback", args.base_port, 0.0,
                           only=frozenset(base), **common))
    if "latency" in args.only:
        wanted = (base & LATENCY_FIGURES) or LATENCY_FIGURES
        if args.latency_size_mb:
            common["size"] = args.latency_size_mb << 20
        result.append(Plan("latency", args.work / "latency", args.base_port + 100,
                           args.latency_ms, only=frozenset(wanted), **common))
    return result


def meta(args: argparse.Namespace) -> dict:
    """What the figures were measured with."""
    from onionshare_bt.engine.settings import settings

    tor = subprocess.run(["tor", "--version"], capture_output=True, text=True, timeout=30)
    tuning = {k: v for k, v in settings().items()
              if k in ("request_queue_time", "max_out_request_queue", "send_buffer_watermark",
                       "strict_end_game_mode")}
    import onionshare_bt

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "label": args.label,
        "obt_source": str(Path(onionshare_bt.__file__).parent),
        "runs": args.runs, "size_mb": args.size_mb, "ks": list(args.ks), "latency_ms": args.latency_ms,
        "latency_size_mb": args.latency_size_mb or args.size_mb,
        "memory_file_mb": args.memory_mb,
        "machine": f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
        "tor": tor.stdout.split()[2].rstrip(".") if tor.returncode == 0 else "?",
        "libtorrent": libtorrent.__version__,
        "onionshare": onionshare.version() if onionshare.VENV.exists() else "—",
        "engine_tuning": tuning,
    }


def _cores() -> int:
    import os

    return os.cpu_count() or 0


async def main(args: argparse.Namespace) -> int:
    if "onionshare" in args.only:
        await asyncio.to_thread(onionshare.ensure_installed)
    info = meta(args)
    conditions = {}
    for plan in plans(args):
        log.info("condition %s: %s", plan.name, ", ".join(sorted(plan.only)))
        conditions[plan.name] = await Condition(plan).run()
    json_path, md_path = report.write({"meta": info, "conditions": conditions}, args.out)
    print(md_path.read_text(encoding="utf-8"))
    log.info("wrote %s and %s", json_path, md_path)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return entry(parse_args(argv), main)


if __name__ == "__main__":
    sys.exit(cli())
