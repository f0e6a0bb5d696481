"""What the CLI's commands do: thin clients of the node's control API, plus rendering."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from . import control, daemon
from .errors import NodeNotRunning, Timeout, TorrentError, UsageError
from .output import emit, shown
from .text import size_text as _size
from .output import err as _err


def _console():
    from rich.console import Console

    return Console(stderr=True, markup=False, highlight=False)


def _progress_wanted(state, as_json: bool) -> bool:
    return sys.stderr.isatty() and not as_json and not state.quiet


async def _node(state):
    cfg = state.config
    if await daemon.ensure_running(cfg, say=_err):
        _err(f"started a node in the background (home {cfg.home})")
    return cfg


# -- share ------------------------------------------------------------------------------
async def share(state, path: str, onions: int | None, as_json: bool,
                include_hidden: bool = False, open_share: bool | None = None,
                torrent_out: str | None = None, scrub: bool = False,
                keep_metadata: bool = False) -> None:
    from .engine.metainfo import select

    # fail fast, before starting a node; the node checks again when it hashes
    chosen = select(Path(path), include_hidden=include_hidden, forbidden=(state.config.home,))
    report, scrub = await _check_metadata(state, chosen, include_hidden, scrub, keep_metadata,
                                          as_json)
    cfg = await _node(state)
    if _progress_wanted(state, as_json):
        with _console().status("hashing and publishing the share…"):
            info = await _share_call(cfg, chosen.root, onions, include_hidden, open_share,
                                     scrub)
    else:
        info = await _share_call(cfg, chosen.root, onions, include_hidden, open_share, scrub)
    _say_scrubbed(info.get("scrubbed"), report)
    hidden = int(info.get("hidden_skipped", chosen.hidden_skipped))
    if hidden:
        _err(f"left out {hidden} hidden file(s) or folder(s) (names starting with '.'); "
             "--include-hidden shares them")
    if torrent_out:
        await write_torrent(cfg, info["infohash"], torrent_out)
    if info.get("open"):
        _err(open_recipe(info["uri"], torrent_out))
    keys = ("uri", "infohash", "name", "size", "piece_length", "files", "onions")
    emit({**{k: info[k] for k in keys}, "hidden_skipped": hidden,
          "open": bool(info.get("open")),
          "metadata": {**report.as_dict(), "scrubbed": info.get("scrubbed")}},
         as_json, info["uri"])


async def _share_call(cfg, src: Path, onions, include_hidden: bool,
                      open_share: bool | None = None, scrub: bool = False):
    args = {"path": str(src), "onions": onions}
    if include_hidden:  # sent only when asked: a node that predates it refuses it, loudly
        args["include_hidden"] = True
    if open_share is not None:
        args["open"] = open_share
    if scrub:  # likewise: a node that cannot clean must not share the originals instead
        args["scrub"] = True
    return await control.call(cfg.socket_path, "share", args, timeout=3600)


# -- metadata (docs/metadata.md) --------------------------------------------------------
async def _check_metadata(state, chosen, include_hidden: bool, scrub: bool, keep: bool,
                          as_json: bool):
    """Scan what the share would publish, say what was found, and decide: scrub or not.

    :returns: the scan report, and whether the node is to share cleaned copies
    :raises MetadataFound: metadata found, no flag, and no terminal to ask on (or the
      answer was no)
    """
    from .scan import render, scan_selection

    if scrub and keep:
        raise UsageError("--scrub and --keep-metadata exclude each other")
    if _progress_wanted(state, as_json):
        with _console().status(f"checking {len(chosen.files)} file(s) for metadata…"):
            report = await asyncio.to_thread(scan_selection, chosen, include_hidden)
    else:
        report = await asyncio.to_thread(scan_selection, chosen, include_hidden)
    for line in render(report):
        _err(line)
    if not report.flagged or scrub or keep:
        if report.flagged and keep:
            _err("sharing the files as they are, metadata included (--keep-metadata)")
        return report, scrub
    return report, _ask_scrub(len(report.flagged))


def _ask_scrub(count: int) -> bool:
    """Ask on the terminal whether to share cleaned copies; no terminal, no share."""
    from .errors import MetadataFound

    if not _interactive():
        raise MetadataFound(f"{count} file(s) hold identifying metadata (listed above); "
                            "nothing was shared")
    import click

    try:
        answer = click.prompt("share cleaned copies (y), share as they are (k), or stop (n)?",
                              type=click.Choice(["y", "k", "n"]), err=True)
    except click.Abort:
        answer = "n"
    if answer == "n":
        raise MetadataFound("stopped; nothing was shared", hint="")
    return answer == "y"


def _interactive() -> bool:
    """Whether there is someone at a terminal to ask."""
    return sys.stdin.isatty()


def _say_scrubbed(scrubbed: dict | None, report) -> None:
    if not scrubbed:
        return
    _err(f"shared cleaned copies: {len(scrubbed['cleaned'])} file(s) cleaned, the originals "
         "untouched")
    copied = set(scrubbed["copied"])
    risky = [f.path for f in report.unchecked if f.path in copied]
    if risky:
        _err(f"copied as they are (obt cannot clean them): {len(risky)} file(s), "
             f"{', '.join(shown(p, 80) for p in risky[:5])}")


# -- standard clients (open shares) -----------------------------------------------------
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


async def write_torrent(cfg, torrent_id: str, path: str) -> None:
    """Write a torrent's .torrent (a share's names its trackers) to ``path``."""
    import base64

    from .errors import BadPath

    info = await control.call(cfg.socket_path, "torrent_file", {"id": torrent_id})
    data = base64.b64decode(info["torrent"])
    try:
        Path(path).expanduser().write_bytes(data)
    except OSError as exc:
        raise BadPath(f"cannot write the .torrent to {path}: {exc.strerror or exc}") from exc
    _err(f"wrote the .torrent to {path} ({len(data)} bytes)")


# -- get --------------------------------------------------------------------------------
async def get(state, uri: str, target: str, timeout, no_wait: bool, as_json: bool,
              pick: str | None = None, torrent_out: str | None = None) -> None:
    from .uri import parse_uri

    parsed = parse_uri(uri)  # a malformed URI fails here, before any node starts
    cfg = await _node(state)
    if parsed.kind == "public":
        uri = await _from_catalogue(state, cfg, uri, pick, as_json)
        if uri is None:
            return
    elif pick:
        raise UsageError("--pick goes with a public catalogue URI (…/public/<token>)")
    wait = (timeout or cfg.fetch_timeout) + 120
    args = {"uri": uri, "target": os.path.abspath(target), "timeout": timeout}
    info = await control.call(cfg.socket_path, "get", args, timeout=wait)
    if torrent_out:
        await write_torrent(cfg, info["id"], torrent_out)
    if no_wait:
        emit(info, as_json, info["id"])
        return
    try:
        final = await _follow(state, cfg, info, _progress_wanted(state, as_json))
    except asyncio.CancelledError:
        _err("the download goes on in the node; run the same 'obt get' again to follow it")
        raise
    if final["state"] == "error":
        raise TorrentError(f"{shown(final['name'])}: {shown(final['error'], 500)}")
    path = str(Path(final["path"]) / final["name"])
    emit({**info, "path": path, "state": final["state"]}, as_json, path)


async def _from_catalogue(state, cfg, uri: str, pick: str | None, as_json: bool):
    """List a public catalogue, or return the private URI of the item picked."""
    data = await control.call(cfg.socket_path, "catalogue", {"uri": uri},
                              timeout=cfg.fetch_timeout + 60)
    items = data["items"]
    if not pick:
        lines = [f"{shown(i['infohash'], 16)}  {_size(i['size']):>9}  {i['files']:>5} files  "
                 f"{time.strftime('%Y-%m-%d', time.gmtime(i['added']))}  {shown(i['name'])}"
                 for i in items]
        emit(data, as_json, "\n".join(lines) or "the catalogue is empty")
        return None
    chosen = [i for i in items if pick in (i["name"], i["infohash"])
              or (len(pick) >= 8 and i["infohash"].startswith(pick.lower()))]
    if len(chosen) != 1:
        raise UsageError(f"{len(chosen) or 'no'} catalogue items match {pick!r}",
                         hint="List them with the same 'obt get' without --pick.")
    return chosen[0]["uri"]


async def _follow(state, cfg, info: dict, show: bool) -> dict:
    """Poll the node until the download is complete or failed; draw progress if asked."""
    bar = _Bar(info["name"], info["size"]) if show else None
    last_done, last_change = -1, time.monotonic()
    try:
        while True:
            row = await control.call(cfg.socket_path, "torrent", {"id": info["id"]})
            if row["state"] in ("complete", "error"):
                if bar:
                    bar.update(row)
                return row
            done = row.get("done", 0)
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > cfg.stall_timeout:
                raise Timeout(
                    f"no progress for {cfg.stall_timeout:.0f} s ({row['state']}); "
                    "the download goes on in the node",
                    hint="Run the same 'obt get' later to follow it, or see 'obt list'.",
                )
            if bar:
                bar.update(row)
            await asyncio.sleep(0.5)
    finally:
        if bar:
            bar.close()


class _Bar:
    """A Rich progress bar on stderr for one download."""

    def __init__(self, name: str, size: int) -> None:
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
            console=_console(), transient=False,
        )
        self._task = self._progress.add_task(shown(name, 40), total=size or 1, note="")
        self._progress.start()

    def update(self, row: dict) -> None:
        note = f"{row.get('peers', 0)} peers · {row['state']}"
        self._progress.update(self._task, completed=row.get("done", 0), note=note)

    def close(self) -> None:
        self._progress.stop()


# -- play -------------------------------------------------------------------------------
async def play(state, target: str, file: str | None, out: str, timeout, no_player: bool,
               player: str | None, as_json: bool) -> None:
    """Print the loopback URL of a file of a download (started first for a URI); play it."""
    from .errors import ObtError
    from .stream import player as players
    from .stream.core import is_playlist
    from .uri import parse_uri

    is_uri = "://" in target or ".onion" in target
    if is_uri and parse_uri(target).kind != "private":  # malformed: fails before any node
        raise UsageError("obt play takes a share's private URI or the ID of a torrent")
    cfg = await _node(state)
    torrent_id = target
    if is_uri:
        args = {"uri": target, "target": os.path.abspath(out), "timeout": timeout}
        info = await control.call(cfg.socket_path, "get", args,
                                  timeout=(timeout or cfg.fetch_timeout) + 120)
        torrent_id = info["id"]
    data = await control.call(cfg.socket_path, "play", {"id": torrent_id, "file": file})
    argv = None if no_player else players.choose(player or cfg.player)
    if argv is not None and is_playlist(data["file"]["path"]):
        raise UsageError(f"{shown(data['file']['path'])} is a playlist: a player would fetch "
                         "what it names, outside Tor; obt starts no player on it",
                         hint="Pick another file, or read it with --no-player.")
    emit(data, as_json, data["url"])
    if no_player:
        return
    if argv is None:
        _err('no media player found (mpv, vlc, ffplay); open the URL in one, or set '
             'player = "mpv" in config.toml')
        return
    refused = await _refused(data["url"])
    if refused:
        raise UsageError(f"{shown(data['file']['path'])}: {refused}; obt starts no player on it",
                         hint="Pick another file (obt play ID FILE).")
    _err(f"playing {shown(data['file']['path'])} with {shown(argv[0])}; the download goes "
         "on in the node")
    code = await players.run(players.command(argv, data["url"]))
    if code != 0:
        raise ObtError(f"the player exited with status {code}")


async def _refused(url: str) -> str | None:
    """Why the node's media server refuses a file (its first bytes read as a playlist or as
    text: see :func:`onionshare_bt.stream.core.vet`), or None; waits for those bytes."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        async with http.get(url, headers={"Range": "bytes=0-0"}) as resp:
            if resp.status != 403:
                return None
            text = (await resp.text()).strip()
    return text.removeprefix("obt does not serve this file: ") or "refused by the node"


def _stream_lines(row: dict) -> list[str]:
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


# -- list / status ----------------------------------------------------------------------
async def list_torrents(state, peers_of: str | None, as_json: bool) -> None:
    cfg = state.config
    if peers_of:
        data = await control.call(cfg.socket_path, "peers", {"id": peers_of})
        lines = [
            f"{p['direction']:3} {p['onion'][:16] or '-':16} {p['endpoint']:22} "
            f"down {p['down']:>12} up {p['up']:>12} conns {p['connections']}"
            for p in data["paths"]
        ]
        emit(data, as_json, "\n".join(lines) or "no bridge paths")
        return
    rows = await control.call(cfg.socket_path, "list")
    lines = [
        f"{r['id'][:16]}  {r['role']:8}  {r['state']:17} {100 * r.get('progress', 0):5.1f}%  "
        f"{r.get('peers', 0)} peers  ↓{_rate(r.get('rate_down', 0))} ↑{_rate(r.get('rate_up', 0))}"
        f"  {shown(r['name'])}\n    {r['uri']}" + "".join(f"\n{line}" for line in _stream_lines(r))
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or "nothing shared or downloaded yet")


def _rate(bps: int) -> str:
    for unit in ("B/s", "kB/s", "MB/s"):
        if bps < 1000 or unit == "MB/s":
            return f"{bps:.0f} {unit}" if unit == "B/s" else f"{bps:.1f} {unit}"
        bps /= 1000
    return ""


async def remove(state, op: str, torrent_id: str, delete_data: bool, as_json: bool,
                 onion: str | None = None) -> None:
    args = {"id": torrent_id}
    if op == "remove":
        args["delete_data"] = delete_data
    if onion:
        args["onion"] = onion
    info = await control.call(state.config.socket_path, op, args, timeout=120)
    name = shown(info["name"])
    if onion:
        text = f"{name}: withdrew {info['withdrawn']}; still on {len(info['onions'])}"
    else:
        text = f"{name}: {'no longer shared' if op == 'unshare' else 'removed'}"
    emit(info, as_json, text)


async def node_status(state, as_json: bool) -> None:
    cfg = state.config
    try:
        info = await control.call(cfg.socket_path, "status")
    except NodeNotRunning:
        if as_json:
            emit({"running": False, "home": str(cfg.home)}, True)
            sys.exit(1)
        raise
    info["running"] = True
    boot = info["tor"]["bootstrap"]
    text = (
        f"node pid {info['pid']}, up {info['uptime']:.0f} s, obt {info['version']}\n"
        f"tor: {boot.get('progress')}% ({boot.get('summary', '')}), "
        f"socks {info['tor']['socks'][0]}:{info['tor']['socks'][1]}\n"
        f"onions: {info['onions']}, torrents: {info['torrents']}, network: {info['network']}"
    )
    emit(info, as_json, text)


# -- identity, publishing, trust, search ----------------------------------------------
async def simple(state, op: str, args: dict, as_json: bool, render) -> None:
    """Call one control op and print its result (JSON, or ``render(result)``)."""
    cfg = await _node(state)
    result = await control.call(cfg.socket_path, op, args, timeout=120)
    emit(result, as_json, render(result))


async def publish(state, torrent_id: str | None, mode: str | None, as_json: bool,
                  open_share: bool | None = None) -> None:
    cfg = await _node(state)
    if open_share is not None:
        await _open_share(cfg, torrent_id, mode, open_share, as_json)
        return
    if mode == "list" or (mode is None and torrent_id is None):
        data = await control.call(cfg.socket_path, "published")
        lines = [data["public_uri"]] + [f"  {i['infohash'][:16]}  {shown(i['name'])}"
                                       for i in data["items"]]
        emit(data, as_json, "\n".join(lines))
        return
    if not torrent_id or mode not in ("public", "private"):
        raise UsageError("give an ID with --public or --private (or use --list)")
    info = await control.call(cfg.socket_path, "publish",
                              {"id": torrent_id, "public": mode == "public"})
    emit(info, as_json,
         info["public_uri"] if info["public"] else f"{shown(info['name'])}: private")


async def _open_share(cfg, torrent_id: str | None, mode: str | None, open_share: bool,
                      as_json: bool) -> None:
    """``obt publish --open|--closed ID`` (with ``--public``/``--private`` too, if given)."""
    if not torrent_id or mode == "list":
        raise UsageError("give the ID of a share with --open or --closed")
    info = await control.call(cfg.socket_path, "open", {"id": torrent_id, "open": open_share})
    if mode in ("public", "private"):
        published = await control.call(cfg.socket_path, "publish",
                                       {"id": torrent_id, "public": mode == "public"})
        info["public"] = published["public"]
        info["public_uri"] = published.get("public_uri")
    if open_share:
        _err(open_recipe(info["uri"], None))
    admits = "open to standard clients" if open_share else "obt nodes only"
    emit(info, as_json, f"{shown(info['name'])}: {admits}")


async def trust_graph(state, as_json: bool) -> None:
    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "trust", {"action": "graph"},
                              timeout=cfg.trust_timeout * 8 + 60)
    if as_json:
        emit(data, True)
        return
    from rich.tree import Tree

    def add(branch, node):
        for child in node["children"]:
            label = f"{shown(child['onion'], 56)}.onion  (degree {child['degree']})"
            if not child["reachable"]:
                label += f"  UNREACHABLE: {shown(child['error'], 200)}"
            add(branch.add(label), child)

    tree = Tree(f"{shown(data['tree']['onion'], 56)}.onion (this node, depth {data['depth']})")
    add(tree, data["tree"])
    from rich.console import Console

    Console(markup=False, highlight=False).print(tree)


async def search(state, terms: list[str], as_json: bool) -> None:
    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "search", {"terms": terms},
                              timeout=cfg.trust_timeout * 8 + 60)
    for bad in data["unreachable"]:
        _err(f"warning: {shown(bad['onion'], 16)}….onion did not answer: "
             f"{shown(bad['error'], 200)}")
    lines = [f"{shown(r['name'])}  {_size(r['size'])}  degree {r['degree']}  "
             f"{shown(r['node'], 16)}…\n    {shown(r['uri'], 200)}" for r in data["results"]]
    emit(data, as_json, "\n".join(lines) or "no results")


# -- mirrors ----------------------------------------------------------------------------
async def mirror_add(state, onion: str, follow: bool, as_json: bool) -> None:
    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "mirror",
                              {"action": "add", "onion": onion, "follow": follow},
                              timeout=cfg.trust_timeout * 2 + cfg.fetch_timeout * 2 + 60)
    if data.get("error"):
        _err(f"warning: first sync failed (the mirror retries): {shown(data['error'], 200)}")
    emit(data, as_json, data["public_uri"])


async def mirror_list(state, as_json: bool) -> None:
    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "mirror", {"action": "list"})
    now = time.time()
    lines = []
    for m in data:
        synced = f"synced {now - m['synced']:.0f} s ago" if m["synced"] else "never synced"
        lines.append(f"{shown(m['source'], 62)}  {'follow' if m['follow'] else 'copy'}  "
                     f"{synced}" + (f"  ({shown(m['error'], 200)})" if m["error"] else ""))
        lines.append(f"  {m['public_uri']}")
        lines += [f"    {shown(i['name'])}  {i['peers']} peers  {shown(i['uri'], 200)}"
                  for i in m["items"]]
    emit(data, as_json, "\n".join(lines) or "no mirrors")


# -- releases ---------------------------------------------------------------------------
async def release_list(state, as_json: bool) -> None:
    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "release", {"action": "list"})
    lines = [f"obt {shown(r['version'], 40)}  {r['state']}"
             + (f"  {shown(r['path'], 300)}" if r["state"] == "verified" else "")
             + (f"  ({shown(r['reason'], 200)})" if r["reason"] else "") for r in data]
    emit(data, as_json, "\n".join(lines) or "no releases")


async def update_check(state, timeout: float | None, as_json: bool) -> None:
    from .errors import ReleaseRefused

    cfg = await _node(state)
    data = await control.call(cfg.socket_path, "update_check", {},
                              timeout=cfg.trust_timeout * 8 + cfg.fetch_timeout + 60)
    for gone in data["unreachable"]:
        _err(f"warning: {shown(gone['onion'], 16)}….onion did not answer: "
             f"{shown(gone['error'], 200)}")
    for bad in data["refused"]:
        _err(f"refused release {shown(bad['version'] or '?', 40)} offered by "
             f"{shown(bad['source'], 16)}…: {shown(bad['reason'], 200)}")
    release = data["release"]
    if release is None:
        if data["refused"]:
            raise ReleaseRefused("no newer release in the trusted set verifies; "
                                 "nothing was fetched or seeded")
        emit(data, as_json, f"obt {shown(data['current'], 40)} is the newest release in the "
                            f"trusted set ({data['offers']} offered)")
        return
    release = await _follow_release(state, cfg, release, timeout,
                                    _progress_wanted(state, as_json))
    data["release"] = release
    if release["state"] == "refused":
        raise ReleaseRefused(f"obt {shown(release['version'], 40)} was refused: "
                             f"{shown(release['reason'], 200)}; "
                             "its files were deleted and it is not seeded")
    lines = [f"obt {shown(release['version'], 40)} fetched and verified (signature and sha256); "
             "this node seeds it. Nothing was installed.",
             f"folder: {shown(release['path'], 300)}"]
    lines += [f"  sha256 {shown(f['sha256'], 64)}  {shown(f['name'])}" for f in release["files"]]
    lines.append("Compare these sha256 with the maintainers' website before installing it "
                 "yourself.")
    emit(data, as_json, "\n".join(lines))


async def _follow_release(state, cfg, release: dict, timeout: float | None,
                          show: bool) -> dict:
    size = sum(f["size"] for f in release["files"])
    bar = _Bar(f"obt {shown(release['version'], 36)}", size) if show else None
    started = time.monotonic()
    last_done, last_change = -1, started
    try:
        while True:
            release = await control.call(cfg.socket_path, "release",
                                         {"action": "show", "id": release["id"]})
            if release["state"] != "fetching":
                return release
            done = release.get("done", 0)
            now = time.monotonic()
            if done != last_done:
                last_done, last_change = done, now
            if (timeout and now - started > timeout) or now - last_change > cfg.stall_timeout:
                raise Timeout("the release is still being fetched; it goes on in the node",
                              hint="Run 'obt update check' again later, or see "
                                   "'obt release list'.")
            if bar:
                bar.update({"done": done, "peers": release.get("peers", 0),
                            "state": "fetching"})
            await asyncio.sleep(0.5)
    finally:
        if bar:
            bar.close()


# -- relay / ratio ----------------------------------------------------------------------


async def relay_status(state, as_json: bool) -> None:
    info = await control.call(state.config.socket_path, "relay_status")
    if not info["enabled"]:
        text = "relay: off (--no-relay); the allowance is the free base alone"
    else:
        text = (
            f"relay {info['nickname']} ${info['fingerprint']} at {info['or_address']}\n"
            f"in consensus: {'yes' if info['in_consensus'] else 'no'}"
            f"{' (' + ' '.join(info['flags']) + ')' if info['flags'] else ''}\n"
            f"relayed for others: {_size(info['relayed_today'])} today, "
            f"{_size(info['relayed_total'])} in total\n"
            f"rate limit: {_size(info['rate_limit'])}/s, burst {_size(info['burst_limit'])}/s"
        )
    emit(info, as_json, text)


async def ratio(state, as_json: bool) -> None:
    info = await control.call(state.config.socket_path, "ratio")
    text = (
        f"allowance {_size(info['allowance'])} = free base {_size(info['free_base'])} + "
        f"{info['ratio']:g} × relayed {_size(info['relayed'])}\n"
        f"used {_size(info['used'])}, remaining {_size(info['remaining'])}"
        + ("\ndownloads wait for relay credit" if info["exhausted"] else "")
    )
    emit(info, as_json, text)


# -- testnet ----------------------------------------------------------------------------
def _testnet(state, root, relays: int = 4, base_port: int = 17000, latency_ms: float = 0.0):
    from .testnet import Testnet

    root = Path(root) if root else state.config.home.parent / "testnet"
    return Testnet(root.expanduser().resolve(), base_port=base_port, relays=relays,
                   latency_ms=latency_ms)


def testnet_up(state, root, relays: int, base_port: int, as_json: bool,
               latency_ms: float = 0.0) -> None:
    net = _testnet(state, root, relays, base_port, latency_ms)
    started = time.monotonic()
    path = net.up()
    elapsed = time.monotonic() - started
    if not as_json:
        _err(f"private Tor network up in {elapsed:.1f} s; use it with --network {path}")
    emit({"network_file": str(path), "seconds": round(elapsed, 1)}, as_json, str(path))


def testnet_down(state, root) -> None:
    _testnet(state, root).down()
    _err("private Tor network stopped")


def testnet_status(state, root, as_json: bool) -> None:
    info = _testnet(state, root).status()
    lines = [f"up: {info['up']}  network file: {info['network_file']}"] + [
        f"  {p['role']:9} {p['nickname']:12} pid {p['pid']:>7}  "
        f"{'alive' if p['alive'] else 'dead'}"
        for p in info["processes"]
    ]
    emit(info, as_json, "\n".join(lines))
    if not info["up"]:
        sys.exit(1)

