"""Everything the CLI prints: data to stdout, messages and progress to stderr.

One place for rendering: :func:`emit` prints a command's data (one JSON document with
``--json``, else the text the ``*_text`` functions here make of it), :func:`err` says
something on stderr, :class:`Bar` and :func:`busy` draw progress, :func:`print_tree` the
trust graph.

Text from the network (names, versions, reasons, errors of other nodes) is printed only
through :func:`shown`, which removes control and bidi-override characters and caps its
length; and every line of text output passes through :func:`clean` as a last guard, so that
nothing a peer sent can move the cursor, rewrite a line or reorder what the user reads.
JSON output needs neither: ``json.dumps`` escapes every control character.
"""

from __future__ import annotations

import contextlib
import json
import time

import click

from ..text import safe_text
from ..text import size_text as _size

#: longest line printed as text (a last guard; fields have their own, shorter limits)
LINE_LIMIT = 10_000
#: longest remote name shown in a listing
NAME_WIDTH = 120


# -- the two streams ---------------------------------------------------------------------
def shown(value, limit: int = NAME_WIDTH) -> str:
    """Remote text as it may be printed: without control or bidi-override characters, at
    most ``limit`` characters (an ellipsis marks a cut)."""
    text = str(value)
    text = safe_text(text, len(text))
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clean(text: str) -> str:
    """``text`` with each line made safe to print (line breaks kept)."""
    return "\n".join(safe_text(line, LINE_LIMIT) for line in str(text).split("\n"))


def err(message: str) -> None:
    """A message for the user on stderr, prefixed ``obt:``."""
    click.echo(f"obt: {clean(message)}", err=True)


def emit(data, as_json: bool, text: str | None = None) -> None:
    """Print the command's data on stdout: one JSON document, or the given text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif text is not None:
        click.echo(clean(text))


# -- progress (stderr, a terminal only) --------------------------------------------------
def console(stderr: bool = True):
    from rich.console import Console

    return Console(stderr=stderr, markup=False, highlight=False)


@contextlib.contextmanager
def busy(show: bool, what: str):
    """A spinner saying ``what`` while the body runs, if ``show``."""
    if not show:
        yield
        return
    with console().status(what):
        yield


class Bar:
    """A Rich progress bar on stderr for one download."""

    def __init__(self, name: str, size: int) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
            console=console(), transient=False,
        )
        self._task = self._progress.add_task(shown(name, 40), total=size or 1, note="")
        self._progress.start()

    def update(self, row: dict) -> None:
        note = f"{row.get('peers', 0)} peers · {row['state']}"
        self._progress.update(self._task, completed=row.get("done", 0), note=note)

    def close(self) -> None:
        self._progress.stop()


def print_tree(data: dict) -> None:
    """``obt trust graph``: the trusted nodes that answered, as a tree on stdout."""
    from rich.tree import Tree

    def add(branch, node):
        for child in node["children"]:
            label = f"{shown(child['onion'], 56)}.onion  (degree {child['degree']})"
            if not child["reachable"]:
                label += f"  UNREACHABLE: {shown(child['error'], 200)}"
            add(branch.add(label), child)

    tree = Tree(f"{shown(data['tree']['onion'], 56)}.onion (this node, depth {data['depth']})")
    add(tree, data["tree"])
    console(stderr=False).print(tree)


# -- shares and downloads ----------------------------------------------------------------
def rate(bps: float) -> str:
    for unit in ("B/s", "kB/s", "MB/s"):
        if bps < 1000 or unit == "MB/s":
            return f"{bps:.0f} {unit}" if unit == "B/s" else f"{bps:.1f} {unit}"
        bps /= 1000
    return ""


def stream_lines(row: dict) -> list[str]:
    """``obt list``: a download's playable files and its readers, one line each."""
    stream = row.get("stream") or {}
    files = stream.get("playable", [])
    lines = []
    if files:
        names = ", ".join(f"{shown(f['path'], 60)} ({_size(f['from_start'])} of "
                          f"{_size(f['size'])} from start)" for f in files[:3])
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        lines.append(f"    playable: {names}{more}")
    lines += [f"    reader: {shown(r['path'], 60)} at {_size(r['position'])}, "
              f"{_size(r['ahead'])} ahead" for r in stream.get("readers", [])]
    return lines


def torrents_text(rows: list[dict]) -> str:
    return "\n".join(_torrent_text(r) for r in rows) or "nothing shared or downloaded yet"


def _torrent_text(r: dict) -> str:
    head = (f"{r['id'][:16]}  {r['role']:8}  {r['state']:17} "
            f"{100 * r.get('progress', 0):5.1f}%  {r.get('peers', 0)} peers  "
            f"↓{rate(r.get('rate_down', 0))} ↑{rate(r.get('rate_up', 0))}  {shown(r['name'])}")
    return f"{head}\n    {r['uri']}" + "".join(f"\n{line}" for line in stream_lines(r))


def paths_text(data: dict) -> str:
    lines = [
        f"{p['direction']:3} {p['onion'][:16] or '-':16}"
        f"{'+' + str(p['lane']) if p.get('lane') else '':3} {p['endpoint']:22} "
        f"down {p['down']:>12} up {p['up']:>12} conns {p['connections']}"
        for p in data["paths"]
    ] or ["no bridge paths"]
    growth = data.get("growth")
    if growth:
        lines.append(growth_text(growth))
    lines += [
        f"peer {p['host']}:{p['port']:<6} {'seed' if p['seed'] else 'peer'} "
        f"{'in ' if p['incoming'] else 'out'} down {p['payload_down']:>12} "
        f"up {p['payload_up']:>12} waiting on {p.get('requests', 0):>3} blocks  "
        f"{' '.join(p.get('flags', ()))}"
        for p in data.get("engine_peers", ())
    ]
    return "\n".join(lines)


def growth_text(growth: dict) -> str:
    """How a download's path count grew: the count, why it settled, the rate it kept, and
    each path tried (``1→2 +82% kept, 2→3 +4% dropped``)."""
    steps = ", ".join(
        f"{s['paths'] - 1}→{s['paths']} "
        + (f"{(s['rate_after'] - s['rate_before']) / s['rate_before']:+.0%}"
           if s["rate_before"] > 0 else "?")
        + (" kept" if s["kept"] else " dropped")
        for s in growth.get("steps", ()))
    state = growth["state"] + (f": {growth['reason']}" if growth.get("reason") else "")
    measured = f"; {rate(growth['rate'])}" if growth.get("rate") else ""
    return (f"paths: {growth['paths']} of at most {growth['max_paths']} ({state}{measured})"
            + (f"; tried {steps}" if steps else ""))


def _described(item: dict) -> str:
    """The item's description on a line of its own, if it has one."""
    text = item.get("description") or ""
    return f"\n    {shown(text, 300)}" if isinstance(text, str) and text else ""


def catalogue_text(items: list[dict]) -> str:
    lines = [(f"{shown(i['infohash'], 16)}  {'LIVE':>9}  {'':>5}        "
              if i.get("kind") == "cast" else
              f"{shown(i['infohash'], 16)}  {_size(i['size']):>9}  {i['files']:>5} files  ")
             + f"{time.strftime('%Y-%m-%d', time.gmtime(i['added']))}  {shown(i['name'])}"
             + (f"\n    obt listen {shown(i['uri'], 200)}" if i.get("kind") == "cast" else "")
             + _described(i) for i in items]
    return "\n".join(lines) or "the catalogue is empty"


def removed_text(info: dict, unshared: bool, onion: str | None) -> str:
    name = shown(info["name"])
    if onion:
        return f"{name}: withdrew {info['withdrawn']}; still on {len(info['onions'])}"
    return f"{name}: {'no longer shared' if unshared else 'removed'}"


def say_scrubbed(scrubbed: dict | None, report) -> None:
    if not scrubbed:
        return
    err(f"shared cleaned copies: {len(scrubbed['cleaned'])} file(s) cleaned, the originals "
        "untouched")
    copied = set(scrubbed["copied"])
    risky = [f.path for f in report.unchecked if f.path in copied]
    if risky:
        err(f"copied as they are (obt cannot clean them): {len(risky)} file(s), "
            f"{', '.join(shown(p, 80) for p in risky[:5])}")


#: aria2c's options for an onion-only swarm under torsocks: names resolved through
#: torsocks (not c-ares), sockets on loopback only (torsocks refuses a listener on every
#: address), no DHT, local discovery or peer exchange, and done once the files are in
ARIA2_OPTIONS = ("--async-dns=false --disable-ipv6=true --interface=127.0.0.1 "
                 "--enable-dht=false --enable-dht6=false --bt-enable-lpd=false "
                 "--enable-peer-exchange=false --seed-time=0")


def open_recipe(uri: str, torrent_out: str | None) -> str:
    """How a standard BitTorrent client fetches an open share (stderr of ``obt share``)."""
    torrent = torrent_out or "share.torrent"
    fetch = ("" if torrent_out else
             f"\n  curl --socks5-hostname 127.0.0.1:9050 -o {torrent} {uri}")
    return ("this share is open to standard BitTorrent clients over Tor (they fetch, but "
            "neither relay nor seed back). For example, with Tor's SOCKS port at "
            f"127.0.0.1:9050:{fetch}\n"
            f"  torsocks aria2c {ARIA2_OPTIONS} {torrent}\n"
            "See 'man obt' (OPEN SHARES) for other clients and the privacy caveats.")


# -- the node ----------------------------------------------------------------------------
def status_text(info: dict) -> str:
    boot = info["tor"]["bootstrap"]
    return (
        f"node pid {info['pid']}, up {info['uptime']:.0f} s, obt {info['version']}\n"
        f"tor: {boot.get('progress')}% ({boot.get('summary', '')}), "
        f"socks {info['tor']['socks'][0]}:{info['tor']['socks'][1]}\n"
        f"onions: {info['onions']}{_unpublished(info)}, torrents: {info['torrents']}, "
        f"network: {info['network']}"
    )


def _unpublished(info: dict) -> str:
    """After a start or a tor restart, tor uploads the onions' descriptors as it can."""
    waiting = info["onions"] - info.get("published", info["onions"])
    if waiting <= 0:
        return ""
    parts = [f"{n} {state}" for state, n in info.get("publishing", {}).items()
             if state != "published" and n]
    return f" ({waiting} not yet published" + (f": {', '.join(parts)})" if parts else ")")


def relay_text(info: dict) -> str:
    if not info["enabled"]:
        return "relay: off (--no-relay); the allowance is the free base alone"
    return (
        f"relay {info['nickname']} ${info['fingerprint']} at {info['or_address']}\n"
        f"in consensus: {'yes' if info['in_consensus'] else 'no'}"
        f"{' (' + ' '.join(info['flags']) + ')' if info['flags'] else ''}\n"
        f"relayed for others: {_size(info['relayed_today'])} today, "
        f"{_size(info['relayed_total'])} in total\n"
        f"rate limit: {_size(info['rate_limit'])}/s, burst {_size(info['burst_limit'])}/s"
    )


def ratio_text(info: dict) -> str:
    return (
        f"allowance {_size(info['allowance'])} = free base {_size(info['free_base'])} + "
        f"{info['ratio']:g} × relayed {_size(info['relayed'])}\n"
        f"used {_size(info['used'])}, remaining {_size(info['remaining'])}"
        + ("\ndownloads wait for relay credit" if info["exhausted"] else "")
    )


# -- publishing, search, mirrors ---------------------------------------------------------
def published_text(data: dict) -> str:
    return "\n".join([data["public_uri"]] + [f"  {i['infohash'][:16]}  {shown(i['name'])}"
                                             + _described(i) for i in data["items"]])


def unreachable(nodes: list[dict]) -> None:
    """Warn on stderr about each trusted node that did not answer."""
    for bad in nodes:
        err(f"warning: {shown(bad['onion'], 16)}….onion did not answer: "
            f"{shown(bad['error'], 200)}")


def search_text(data: dict) -> str:
    lines = [f"{shown(r['name'])}  "
             f"{'live broadcast' if r.get('kind') == 'cast' else _size(r['size'])}  "
             f"degree {r['degree']}  "
             f"{shown(r['node'], 16)}…{_described(r)}\n    {shown(r['uri'], 200)}"
             for r in data["results"]]
    return "\n".join(lines) or "no results"


def mirrors_text(data: list[dict]) -> str:
    now = time.time()
    lines = []
    for m in data:
        synced = f"synced {now - m['synced']:.0f} s ago" if m["synced"] else "never synced"
        lines.append(f"{shown(m['source'], 62)}  {'follow' if m['follow'] else 'copy'}  "
                     f"{synced}" + (f"  ({shown(m['error'], 200)})" if m["error"] else ""))
        lines.append(f"  {m['public_uri']}")
        lines += [f"    {shown(i['name'])}  {i['peers']} peers  {shown(i['uri'], 200)}"
                  for i in m["items"]]
    return "\n".join(lines) or "no mirrors"


# -- releases ----------------------------------------------------------------------------
def releases_text(data: list[dict]) -> str:
    lines = [f"obt {shown(r['version'], 40)}  {r['state']}"
             + (f"  {shown(r['path'], 300)}" if r["state"] == "verified" else "")
             + (f"  ({shown(r['reason'], 200)})" if r["reason"] else "") for r in data]
    return "\n".join(lines) or "no releases"


def refused_releases(refused: list[dict]) -> None:
    for bad in refused:
        err(f"refused release {shown(bad['version'] or '?', 40)} offered by "
            f"{shown(bad['source'], 16)}…: {shown(bad['reason'], 200)}")


def fetched_release_text(release: dict) -> str:
    lines = [f"obt {shown(release['version'], 40)} fetched and verified (signature and "
             "sha256); this node seeds it. Nothing was installed.",
             f"folder: {shown(release['path'], 300)}"]
    lines += [f"  sha256 {shown(f['sha256'], 64)}  {shown(f['name'])}" for f in release["files"]]
    lines.append("Compare these sha256 with the maintainers' website before installing it "
                 "yourself.")
    return "\n".join(lines)


# -- the private test network ------------------------------------------------------------
def testnet_text(info: dict) -> str:
    lines = [f"up: {info['up']}  network file: {info['network_file']}"] + [
        f"  {p['role']:9} {p['nickname']:12} pid {p['pid']:>7}  "
        f"{'alive' if p['alive'] else 'dead'}"
        for p in info["processes"]
    ]
    return "\n".join(lines)


# -- live broadcasts ------------------------------------------------------------------------
def casts_text(rows: list[dict]) -> str:
    """``obt casts`` (and the end of ``obt list``): broadcasts, then listenings."""
    lines = []
    for c in rows:
        if c["role"] == "broadcast":
            lines.append(f"{c['id']}  broadcast  {c['state']:8} {c['listeners']} listening, "
                         f"{c['serving']} served here, depth {c['depth']}  "
                         f"{shown(c['source'], 40)}")
            lines.append(f"    {c['uri']}")
        else:
            via = c["parent"] or "-"
            lines.append(f"{c['id']}  listen     {c['state']:8} depth {c['depth']} via "
                         f"{shown(via, 20)}, relaying to {c['serving']}/{c['fanout']}, "
                         f"{len(c['gaps'])} gap(s)")
            lines.append(f"    {c['url']}")
        if c.get("error"):
            lines.append(f"    error: {shown(c['error'], 200)}")
    return "\n".join(lines) or "no broadcast and nothing listened to"
