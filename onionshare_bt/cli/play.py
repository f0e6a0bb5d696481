"""``obt play``: a file of a download on a loopback URL, and a media player on it."""

from __future__ import annotations

import os

import click

from ..errors import ObtError, UsageError
from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option


@click.command()
@click.argument("target", metavar="URI|ID")
@click.argument("file", required=False)
@click.option("-o", "--output", "out", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder to download into, for a URI not yet fetched.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=None,
              help="Seconds to wait for the share's onion to answer (default 120).")
@click.option("--no-player", "--print-url", "no_player", is_flag=True,
              help="Print the URL only; start no player.")
@click.option("--player", metavar="COMMAND",
              help="The player to start (default: config 'player', else mpv, vlc or ffplay "
                   "on PATH).")
@json_option
@command
async def play(state, target, file, out, timeout, no_player, player, as_json):
    """Play a file of a download while it arrives.

    Prints a URL on 127.0.0.1 (with a secret token) that serves FILE of the download ID, or
    of the share at URI (which this starts downloading into -o when the node does not have
    it yet), with byte ranges; the pieces a player reads are fetched first. Then starts a
    media player on it, unless --no-player. FILE is an index, a path or a name (default: the
    first audio or video file).
    """
    from ..stream import player as players
    from ..stream.core import is_playlist
    from ..uri import parse_uri

    is_uri = "://" in target or ".onion" in target
    if is_uri and parse_uri(target).kind != "private":  # malformed: fails before any node
        raise UsageError("obt play takes a share's private URI or the ID of a torrent")
    cfg = await client.node(state)
    torrent_id = target
    if is_uri:
        request = rq.Get(uri=target, target=os.path.abspath(out), timeout=timeout)
        info = await client.send(cfg, request, timeout=(timeout or cfg.fetch_timeout) + 120)
        torrent_id = info["id"]
    data = await client.send(cfg, rq.Play(id=torrent_id, file=file))
    argv = None if no_player else players.choose(player or cfg.player)
    if argv is not None and is_playlist(data["file"]["path"]):
        raise UsageError(f"{r.shown(data['file']['path'])} is a playlist: a player would "
                         "fetch what it names, outside Tor; obt starts no player on it",
                         hint="Pick another file, or read it with --no-player.")
    r.emit(data, as_json, data["url"])
    if no_player:
        return
    if argv is None:
        r.err('no media player found (mpv, vlc, ffplay); open the URL in one, or set '
              'player = "mpv" in config.toml')
        return
    refused = await _refused(data["url"])
    if refused:
        raise UsageError(f"{r.shown(data['file']['path'])}: {refused}; obt starts no player "
                         "on it", hint="Pick another file (obt play ID FILE).")
    r.err(f"playing {r.shown(data['file']['path'])} with {r.shown(argv[0])}; the download "
          "goes on in the node")
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


COMMANDS = (play,)
