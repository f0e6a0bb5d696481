"""``obt share``, ``get``, ``list``, ``unshare``, ``remove``, ``pause`` and ``resume``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from ..errors import TorrentError, UsageError
from ..ops import requests as rq
from . import client, follow, metadata
from . import render as r
from .base import command, json_option, torrent_out_option


@click.command()
@click.argument("path", type=click.Path())
@click.option("--onions", type=click.IntRange(1, 8), default=None,
              help="Onion services to publish the share on (default from config: 2).")
@click.option("--include-hidden", is_flag=True,
              help="Also share files and folders whose name starts with '.'.")
@click.option("--open", "open_share", is_flag=True, default=None,
              help="Admit standard BitTorrent clients under torsocks too (default from "
                   "config: open_shares = false).")
@click.option("--scrub", is_flag=True,
              help="Share cleaned copies without identifying metadata (originals untouched).")
@click.option("--keep-metadata", is_flag=True,
              help="Share the files as they are, metadata included, without asking.")
@click.option("--no-wait", is_flag=True,
              help="Print the URI once the share is made, before tor has published its "
                   "onions (it answers a few seconds later).")
@torrent_out_option
@json_option
@command
async def share(state, path, onions, include_hidden, open_share, scrub, keep_metadata,
                no_wait, torrent_out, as_json):
    """Share a file or folder; print its private URI.

    Inside a folder, hidden files are left out (unless --include-hidden) and symbolic links
    are refused; the node's own home is never shared. An --open share also answers standard
    BitTorrent clients (aria2c under torsocks), which fetch but never seed back.

    Every file is first checked for identifying metadata (GPS positions, names, device
    serials…). If some is found, obt asks (y: share cleaned copies, k: keep it, n: stop);
    --scrub or --keep-metadata answer in advance, and without a terminal one of them is
    needed (exit status 2).
    """
    from ..engine.metainfo import select

    # fail fast, before starting a node; the node checks again when it hashes
    chosen = select(Path(path), include_hidden=include_hidden, forbidden=(state.config.home,))
    report, scrub = await metadata.check(state, chosen, include_hidden, scrub, keep_metadata,
                                         as_json)
    cfg = await client.node(state)
    request = rq.Share(path=str(chosen.root), onions=onions, include_hidden=include_hidden,
                       open=open_share, scrub=scrub, no_wait=no_wait)
    with r.busy(state.progress(as_json), "hashing and publishing the share…"):
        info = await client.send(cfg, request, timeout=3600)
    r.say_scrubbed(info.get("scrubbed"), report)
    hidden = int(info.get("hidden_skipped", chosen.hidden_skipped))
    if hidden:
        r.err(f"left out {hidden} hidden file(s) or folder(s) (names starting with '.'); "
              "--include-hidden shares them")
    if torrent_out:
        await client.write_torrent(cfg, info["infohash"], torrent_out)
    if info.get("open"):
        r.err(r.open_recipe(info["uri"], torrent_out))
    keys = ("uri", "infohash", "name", "size", "piece_length", "files", "onions")
    r.emit({**{k: info[k] for k in keys}, "hidden_skipped": hidden,
            "open": bool(info.get("open")),
            "metadata": {**report.as_dict(), "scrubbed": info.get("scrubbed")}},
           as_json, info["uri"])


@click.command()
@click.argument("uri")
@click.option("-o", "--output", "target", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder to download into.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=None,
              help="Seconds to wait for the share's onion to answer (default 120).")
@click.option("--no-wait", is_flag=True, help="Start the download in the node and return.")
@click.option("--pick", metavar="NAME|INFOHASH",
              help="With a public catalogue URI: download this item.")
@torrent_out_option
@json_option
@command
async def get(state, uri, target, timeout, no_wait, pick, torrent_out, as_json):
    """Download the share at URI (and keep seeding it); list a public catalogue."""
    from ..uri import parse_uri

    parsed = parse_uri(uri)  # a malformed URI fails here, before any node starts
    cfg = await client.node(state)
    if parsed.kind == "public":
        uri = await _from_catalogue(cfg, uri, pick, as_json)
        if uri is None:
            return
    elif pick:
        raise UsageError("--pick goes with a public catalogue URI (…/public/<token>)")
    request = rq.Get(uri=uri, target=os.path.abspath(target), timeout=timeout)
    info = await client.send(cfg, request, timeout=(timeout or cfg.fetch_timeout) + 120)
    if torrent_out:
        await client.write_torrent(cfg, info["id"], torrent_out)
    if no_wait:
        r.emit(info, as_json, info["id"])
        return
    bar = r.Bar(info["name"], info["size"]) if state.progress(as_json) else None
    try:
        try:
            final = await follow.download(cfg, info["id"], bar.update if bar else None)
        finally:
            if bar:
                bar.close()
    except asyncio.CancelledError:
        r.err("the download goes on in the node; run the same 'obt get' again to follow it")
        raise
    if final["state"] == "paused":
        r.err(f"{r.shown(final['name'])} is paused; 'obt resume {final['id'][:16]}' resumes it")
    if final["state"] == "error":
        raise TorrentError(f"{r.shown(final['name'])}: {r.shown(final['error'], 500)}")
    path = str(Path(final["path"]) / final["name"])
    r.emit({**info, "path": path, "state": final["state"]}, as_json, path)


async def _from_catalogue(cfg, uri: str, pick: str | None, as_json: bool) -> str | None:
    """List a public catalogue, or return the private URI of the item picked."""
    data = await client.send(cfg, rq.Catalogue(uri=uri), timeout=cfg.fetch_timeout + 60)
    items = data["items"]
    if not pick:
        r.emit(data, as_json, r.catalogue_text(items))
        return None
    chosen = [i for i in items if pick in (i["name"], i["infohash"])
              or (len(pick) >= 8 and i["infohash"].startswith(pick.lower()))]
    if len(chosen) != 1:
        raise UsageError(f"{len(chosen) or 'no'} catalogue items match {pick!r}",
                         hint="List them with the same 'obt get' without --pick.")
    if chosen[0].get("kind") == "cast":
        raise UsageError(f"{r.shown(pick)} is a live broadcast, not a share",
                         hint=f"Listen to it: obt listen {chosen[0]['uri']}")
    return chosen[0]["uri"]


@click.command(name="list")
@click.option("--peers", "peers_of", metavar="ID", help="Show one torrent's bridge paths.")
@json_option
@command
async def list_(state, peers_of, as_json):
    """List shares and downloads."""
    cfg = state.config
    if peers_of:
        data = await client.send(cfg, rq.Peers(id=peers_of))
        r.emit(data, as_json, r.paths_text(data))
        return
    rows = await client.send(cfg, rq.ListTorrents())
    casts = [] if as_json else await client.send(cfg, rq.Casts())
    text = r.torrents_text(rows) + (f"\n{r.casts_text(casts)}" if casts else "")
    r.emit(rows, as_json, text)


@click.command()
@click.argument("torrent_id", metavar="ID")
@click.option("--onion", metavar="ADDRESS", help="Withdraw only this one of the share's onions.")
@json_option
@command
async def unshare(state, torrent_id, onion, as_json):
    """Stop sharing ID: its onion services go away and its URI answers nothing."""
    info = await client.send(state.config, rq.Unshare(id=torrent_id, onion=onion),
                             timeout=120)
    r.emit(info, as_json, r.removed_text(info, True, onion))


@click.command()
@click.argument("torrent_id", metavar="ID")
@click.option("--delete-data", is_flag=True, help="Also delete the downloaded files.")
@json_option
@command
async def remove(state, torrent_id, delete_data, as_json):
    """Forget a share or download (its files stay unless --delete-data)."""
    info = await client.send(state.config, rq.Remove(id=torrent_id, delete_data=delete_data),
                             timeout=120)
    r.emit(info, as_json, r.removed_text(info, False, None))


@click.command()
@click.argument("torrent_id", metavar="ID")
@json_option
@command
async def pause(state, torrent_id, as_json):
    """Pause download ID; it stays paused, across node restarts too, until resumed."""
    info = await client.send(state.config, rq.Pause(id=torrent_id))
    r.emit(info, as_json, f"paused {r.shown(info['name'])}")


@click.command()
@click.argument("torrent_id", metavar="ID")
@json_option
@command
async def resume(state, torrent_id, as_json):
    """Resume paused download ID."""
    info = await client.send(state.config, rq.Resume(id=torrent_id))
    r.emit(info, as_json, f"resumed {r.shown(info['name'])}")


COMMANDS = (share, get, list_, unshare, remove, pause, resume)
