"""Medians, targets and the Markdown table, from the samples the runner collected.

Rates are in MB/s (10^6 bytes per second); each cell is the median of the runs with the
range (min–max) after it. Every ratio is a ratio of medians.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

CONDITIONS = ("loopback", "latency")

#: (row label, figure, field, kind): kind "rate" (bytes/s), "s" (seconds) or "mb"
ROWS = [
    ("raw TCP, 1 stream through 1 onion", "raw_1", "rate", "rate"),
    ("raw TCP, 2 streams through 2 onions (total)", "raw_2", "rate", "rate"),
    ("raw TCP, 4 streams through 4 onions (total)", "raw_4", "rate", "rate"),
    ("raw TCP, 8 streams through 8 onions (total)", "raw_8", "rate", "rate"),
    ("obt get, seeder K=1 (one path per onion)", "obt_k1", "rate", "rate"),
    ("obt get, seeder K=2 (one path per onion)", "obt_k2", "rate", "rate"),
    ("obt get, seeder K=4 (one path per onion)", "obt_k4", "rate", "rate"),
    ("obt get, seeder K=8 (one path per onion)", "obt_k8", "rate", "rate"),
    ("obt get, seeder K=2, paths grown (shipped settings)", "obt_adaptive", "rate", "rate"),
    ("obt get K=1, steady (10 % → 90 % of the bytes)", "obt_k1", "steady_rate", "rate"),
    ("obt get K=2, steady", "obt_k2", "steady_rate", "rate"),
    ("obt get K=4, steady", "obt_k4", "steady_rate", "rate"),
    ("obt get K=8, steady", "obt_k8", "steady_rate", "rate"),
    ("obt get, paths grown, steady", "obt_adaptive", "steady_rate", "rate"),
    ("OnionShare + curl", "onionshare", "rate", "rate"),
    ("obt swarm, 3 seeders × K=2", "swarm", "rate", "rate"),
    ("obt get K=2, whole command (size / wall time)", "obt_k2", "wall_rate", "rate"),
    ("OnionShare + curl, whole curl (size / wall time)", "onionshare", "wall_rate", "rate"),
    ("obt swarm, whole command", "swarm", "wall_rate", "rate"),
]
TIME_ROWS = [
    ("`obt share` → URI printed, K=1", "obt_k1", "share_s"),
    ("`obt share` → URI printed, K=2", "obt_k2", "share_s"),
    ("`obt share` → URI printed, K=4", "obt_k4", "share_s"),
    ("`obt get` → first payload byte, K=1", "obt_k1", "ttfb_s"),
    ("`obt get` → first payload byte, K=2", "obt_k2", "ttfb_s"),
    ("`obt get` → first payload byte, K=4", "obt_k4", "ttfb_s"),
    ("`obt get` → first payload byte, K=8", "obt_k8", "ttfb_s"),
    ("`obt get` → first payload byte, paths grown", "obt_adaptive", "ttfb_s"),
    ("`obt get` → first payload byte, swarm", "swarm", "ttfb_s"),
    ("`obt node start` (tor bootstrap included)", "obt_k2", "node_start_s"),
    ("onionshare-cli start → URL printed", "onionshare", "start_s"),
    ("curl → first byte (OnionShare)", "onionshare", "ttfb_s"),
]
#: (row label, figure, field): plain numbers (paths, CPU seconds)
PATH_ROWS = [
    ("paths the grown download settled at", "obt_adaptive", "settled_paths"),
    ("s from the first payload byte until every path carried payload, K=2", "obt_k2",
     "paths_up_s"),
    ("the same, K=4", "obt_k4", "paths_up_s"),
    ("the same, K=8", "obt_k8", "paths_up_s"),
    ("s the first 10 % of the bytes took, K=4 (the ramp)", "obt_k4", "head_s"),
    ("s the last 10 % took, K=4 (the end game)", "obt_k4", "tail_s"),
    ("s 10 % of the bytes take at K=4's steady rate", "obt_k4", "tenth_at_steady_s"),
    ("s the first 10 % took, K=8", "obt_k8", "head_s"),
    ("s the last 10 % took, K=8", "obt_k8", "tail_s"),
    ("s 10 % take at K=8's steady rate", "obt_k8", "tenth_at_steady_s"),
    ("downloader node CPU s per GB, K=1", "obt_k1", "cpu_s_per_gb"),
    ("downloader node CPU s per GB, K=4", "obt_k4", "cpu_s_per_gb"),
    ("downloader node CPU s per GB, K=8", "obt_k8", "cpu_s_per_gb"),
    ("downloader node CPU s per GB, paths grown", "obt_adaptive", "cpu_s_per_gb"),
    ("seeder node CPU s per GB, K=4", "obt_k4", "seeder_cpu_s_per_gb"),
    ("seeder node CPU s per GB, K=8", "obt_k8", "seeder_cpu_s_per_gb"),
    # every process on the machine (the network's tors, both nodes and their tors, the
    # bench) during the transfer: on loopback the cores are the limit, so obt's rate
    # next to raw TCP's is about raw's CPU per GB over obt's
    ("machine CPU s per GB (all processes), raw 4 streams", "raw_4", "machine_cpu_s_per_gb"),
    ("the same, obt K=4", "obt_k4", "machine_cpu_s_per_gb"),
    ("the same, raw 8 streams", "raw_8", "machine_cpu_s_per_gb"),
    ("the same, obt K=8", "obt_k8", "machine_cpu_s_per_gb"),
    ("% of all cores busy, raw 4 streams", "raw_4", "machine_busy_pct"),
    ("the same, obt K=4", "obt_k4", "machine_busy_pct"),
    ("the same, raw 8 streams", "raw_8", "machine_busy_pct"),
    ("the same, obt K=8", "obt_k8", "machine_busy_pct"),
]
MEMORY_ROWS = [
    ("node RSS without tor, 1 share", "memory", "node_rss_1"),
    ("node RSS without tor, 20 shares", "memory", "node_rss_20"),
    ("its tor's RSS, 1 share", "memory", "tor_rss_1"),
    ("its tor's RSS, 20 shares", "memory", "tor_rss_20"),
    ("seeder node RSS, peak during a K=4 download", "obt_k4", "peak_rss_mb"),
    ("downloader node RSS after a K=4 download", "obt_k4", "dl_rss_mb"),
]
#: (target, numerator (figure, field), denominator or None, threshold, "ge"|"le")
TARGETS = [
    ("obt K=1 ≥ 0.9 × raw single onion stream", ("obt_k1", "rate"), ("raw_1", "rate"), 0.9,
     "ge"),
    ("obt K=2 ≥ 1.8 × obt K=1", ("obt_k2", "rate"), ("obt_k1", "rate"), 1.8, "ge"),
    ("obt K=4 ≥ 3 × obt K=1", ("obt_k4", "rate"), ("obt_k1", "rate"), 3.0, "ge"),
    ("obt K=2 ≥ 2 × OnionShare", ("obt_k2", "rate"), ("onionshare", "rate"), 2.0, "ge"),
    ("3-seeder swarm ≥ 2.5 × OnionShare", ("swarm", "rate"), ("onionshare", "rate"), 2.5, "ge"),
    ("node RSS without tor ≤ 150 MB at 20 shares", ("memory", "node_rss_20"), None, 150.0, "le"),
    ("obt K=2 ≥ 0.85 × raw 2 streams", ("obt_k2", "rate"), ("raw_2", "rate"), 0.85, "ge"),
    ("obt K=4 ≥ 0.85 × raw 4 streams", ("obt_k4", "rate"), ("raw_4", "rate"), 0.85, "ge"),
    ("obt K=8 ≥ 0.85 × raw 8 streams", ("obt_k8", "rate"), ("raw_8", "rate"), 0.85, "ge"),
    ("obt K=2 steady ≥ 0.85 × raw 2 streams", ("obt_k2", "steady_rate"), ("raw_2", "rate"),
     0.85, "ge"),
    ("obt K=4 steady ≥ 0.85 × raw 4 streams", ("obt_k4", "steady_rate"), ("raw_4", "rate"),
     0.85, "ge"),
    ("obt K=8 steady ≥ 0.85 × raw 8 streams", ("obt_k8", "steady_rate"), ("raw_8", "rate"),
     0.85, "ge"),
    ("obt paths grown vs obt K=2 one path per onion", ("obt_adaptive", "rate"),
     ("obt_k2", "rate"), 1.0, "ge"),
    ("first byte: obt K=2 − OnionShare ≤ 1 s", ("obt_k2", "ttfb_s"), ("onionshare", "ttfb_s"),
     1.0, "diff_le"),
]


def values(samples: dict, figure: str, field: str) -> list[float]:
    """The field's values over the runs that did not fail."""
    return [s[field] for s in samples.get(figure, []) if "error" not in s and field in s]


def median(samples: dict, figure: str, field: str) -> float | None:
    found = values(samples, figure, field)
    return statistics.median(found) if found else None


def _cell(found: list[float], kind: str) -> str:
    if not found:
        return "—"
    scale, fmt = {"rate": (1e6, "{:.2f}"), "s": (1, "{:.1f}"), "mb": (1, "{:.0f}"),
                  "n": (1, "{:.1f}")}[kind]
    med, lo, hi = (x / scale for x in (statistics.median(found), min(found), max(found)))
    return f"{fmt.format(med)} ({fmt.format(lo)}–{fmt.format(hi)})"


def split(samples: dict, figure: str) -> str:
    """Median share of payload bytes per outbound path, largest first (e.g. ``52/48 %``)."""
    runs = [s["paths"] for s in samples.get(figure, []) if "error" not in s and s.get("paths")]
    if not runs:
        return "—"
    if figure == "swarm":
        return _swarm_split(runs)
    ranks = max(len(paths) for paths in runs)
    shares = []
    for paths in runs:
        total = sum(p["down"] for p in paths) or 1
        fractions = sorted((p["down"] / total for p in paths), reverse=True)
        shares.append(fractions + [0.0] * (ranks - len(fractions)))
    medians = [statistics.median(col) for col in zip(*shares)]
    return "/".join(f"{100 * m:.0f}" for m in medians) + " %"


def _swarm_split(runs: list[list[dict]]) -> str:
    per: dict[str, list[float]] = {}
    for paths in runs:
        total = sum(p["down"] for p in paths) or 1
        for label in {p.get("seeder", "?") for p in paths}:
            got = sum(p["down"] for p in paths if p.get("seeder") == label)
            per.setdefault(label, []).append(got / total)
    return " · ".join(f"{label} {100 * statistics.median(v):.0f} %"
                      for label, v in sorted(per.items()))


def targets(results: dict) -> list[dict]:
    """Each target's ratio (or value) per condition, and whether it was met."""
    rows = []
    for label, num, den, threshold, how in TARGETS:
        row = {"target": label}
        for cond in CONDITIONS:
            samples = results.get(cond, {}).get("samples")
            if samples is None:
                continue
            top = median(samples, *num)
            bottom = median(samples, *den) if den else 1.0
            if top is None or not bottom:
                row[cond] = None
                continue
            value = top - bottom if how == "diff_le" else top / bottom
            met = value >= threshold if how == "ge" else value <= threshold
            row[cond] = {"value": value, "met": met}
        rows.append(row)
    return rows


def _target_cell(entry: dict | None, unit: str) -> str:
    if entry is None:
        return "—"
    text = {"×": f"{entry['value']:.2f}×", "MB": f"{entry['value']:.0f} MB",
            "s": f"{entry['value']:+.1f} s"}[unit]
    return f"{text} {'met' if entry['met'] else '**missed**'}"


def markdown(report: dict) -> str:
    """The Markdown tables the README quotes."""
    meta, results = report["meta"], report["conditions"]
    conds = [c for c in CONDITIONS if c in results]
    heads = {"loopback": "loopback", "latency": f"+{meta['latency_ms']:g} ms per tor link"}
    header = "| figure | " + " | ".join(heads[c] for c in conds) + " |\n"
    rule = "|---|" + "---|" * len(conds) + "\n"
    label = f", {meta['label']}" if meta.get("label") else ""
    out = [f"# obt benchmark ({meta['date']}{label})\n\n",
           f"{meta['runs']} runs per condition, median (min–max); {meta['size_mb']} MiB "
           f"per transfer (with latency: {meta.get('latency_size_mb', meta['size_mb'])} MiB); "
           f"MB = 10^6 bytes. {meta['machine']}. tor {meta['tor']}, "
           f"libtorrent {meta['libtorrent']}, onionshare-cli {meta['onionshare']}. "
           "Raw TCP: the total is split evenly across the streams, one onion service per "
           "stream. Rates count from the first payload byte to the last (obt: until every "
           "piece is verified); \"whole command\" rows divide by the command's wall time.\n\n",
           _load_line(results, conds), "## Throughput (MB/s)\n\n", header, rule]
    for label, figure, field, kind in ROWS:
        cells = [_cell(values(results[c]["samples"], figure, field), kind) for c in conds]
        out.append(f"| {label} | " + " | ".join(cells) + " |\n")
    out += ["\n## Per-path split of a download's payload (share of bytes per bridge path)\n\n",
            header, rule]
    for figure in ("obt_k1", "obt_k2", "obt_k4", "obt_k8", "obt_adaptive", "swarm"):
        cells = [split(results[c]["samples"], figure) for c in conds]
        out.append(f"| {figure} | " + " | ".join(cells) + " |\n")
    out += ["\n## Times (s)\n\n", header, rule]
    for label, figure, field in TIME_ROWS:
        cells = [_cell(values(results[c]["samples"], figure, field), "s") for c in conds]
        out.append(f"| {label} | " + " | ".join(cells) + " |\n")
    out += ["\n## Paths and CPU\n\n", header, rule]
    for label, figure, field in PATH_ROWS:
        cells = [_cell(values(results[c]["samples"], figure, field), "n") for c in conds]
        out.append(f"| {label} | " + " | ".join(cells) + " |\n")
    out += ["\n## Memory (MB, resident)\n\n", header, rule]
    for label, figure, field in MEMORY_ROWS:
        cells = [_cell(values(results[c]["samples"], figure, field), "mb") for c in conds]
        out.append(f"| {label} | " + " | ".join(cells) + " |\n")
    out += ["\n## Targets (ratios of medians)\n\n", header.replace("figure", "target"), rule]
    for row in report["targets"]:
        unit = "MB" if "RSS" in row["target"] else "s" if "byte" in row["target"] else "×"
        out.append(f"| {row['target']} | "
                   + " | ".join(_target_cell(row.get(c), unit) for c in conds) + " |\n")
    failures = [(c, f, s["error"]) for c in conds
                for f, runs in results[c]["samples"].items() for s in runs if "error" in s]
    if failures:
        out.append("\n## Failed measurements\n\n")
        out += [f"- {c} / {f}: {e}\n" for c, f, e in failures]
    return "".join(out)


def _load_line(results: dict, conds: list[str]) -> str:
    """The machine's load while the samples were taken (other work skews the figures)."""
    parts = []
    for cond in conds:
        loads = [s["loadavg_1m"] for runs in results[cond]["samples"].values() for s in runs
                 if "loadavg_1m" in s]
        if loads:
            parts.append(f"{cond} {statistics.median(loads):.1f} (max {max(loads):.1f})")
    if not parts:
        return ""
    return "1-minute load average at the samples, median: " + ", ".join(parts) + ".\n\n"


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``latest.json`` (every sample) and ``latest.md`` (the tables) into **out_dir**."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report["targets"] = targets(report["conditions"])
    paths = out_dir / "latest.json", out_dir / "latest.md"
    paths[0].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(report), encoding="utf-8")
    return paths
