"""``obt cast``, ``obt listen`` and ``obt casts``: live audio over onions."""

from __future__ import annotations

import sys

import click

from ..errors import ObtError, UsageError
from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option

#: what ``--stop`` without an ID means: every one
EVERY = "*"


@click.command()
@click.argument("source", required=False)
@click.option("--bitrate", type=click.IntRange(16, 256), default=64, show_default=True,
              help="Opus bitrate, kbit/s.")
@click.option("--fanout", type=click.IntRange(1, 8), default=2, show_default=True,
              help="Listeners this node serves itself; the others get the stream from "
                   "listeners who relay it.")
@click.option("--input-format", metavar="FMT",
              help="SOURCE is a capture device of ffmpeg's input format FMT (alsa, pulse…), "
                   "not a file.")
@click.option("--public", is_flag=True,
              help="List it in this node's public catalogue while it is live.")
@click.option("--name", metavar="TEXT",
              help="Its name in the catalogue (default: the file's name without suffix).")
@click.option("--description", metavar="TEXT", help="What the catalogue says of it.")
@click.option("--stop", is_flag=False, flag_value=EVERY, default=None, metavar="[ID]",
              help="Stop the broadcast ID (every broadcast without an ID).")
@json_option
@command
async def cast(state, source, bitrate, fanout, input_format, public, name, description, stop,
               as_json):
    """Broadcast SOURCE live on an onion of its own; print its URI.

    SOURCE is an audio file, played in real time, '-' for stdin (any format ffmpeg reads;
    the broadcast ends with it), or with --input-format a capture device.
    It is encoded to Ogg/Opus by ffmpeg and every page is signed: listeners check each one,
    whoever relays it to them. Listeners relay it on to further listeners (obt listen), so
    this node serves at most --fanout of them however many listen. With --public it is
    listed in this node's public catalogue while live (obt search finds it).
    """
    if stop is not None:
        await _stop(state, "broadcast", stop, rq.CastStop, as_json)
        return
    if not source:
        raise UsageError("obt cast needs a SOURCE (or --stop)")
    if source == "-" and input_format:
        raise UsageError("stdin is read as a stream of any format ffmpeg knows; "
                         "--input-format is for capture devices")
    cfg = await client.node(state)
    if source == "-":  # stdin: through a named pipe the node's ffmpeg reads
        await _cast_stdin(state, cfg, bitrate, fanout, public, name, description, as_json)
        return
    with r.busy(state.progress(as_json), "starting the broadcast and publishing its onion…"):
        info = await client.send(cfg, rq.Cast(
            source=source, bitrate=bitrate, fanout=fanout, input_format=input_format,
            public=public, name=name, description=description), timeout=180)
    r.emit(info, as_json, info["uri"])


async def _cast_stdin(state, cfg, bitrate, fanout, public, name, description,
                      as_json) -> None:
    """Broadcast stdin: a named pipe (0600, in the node's home) the node's ffmpeg reads,
    fed from here until stdin ends, which ends the broadcast."""
    import asyncio
    import os
    import secrets
    import threading

    pipe = cfg.home / f"cast-{secrets.token_hex(6)}.fifo"
    os.mkfifo(pipe, 0o600)
    loop = asyncio.get_running_loop()
    copier = loop.create_future()

    def copy() -> None:  # a daemon thread: a stdin that never ends cannot hold obt open
        _copy_stdin(pipe)
        loop.call_soon_threadsafe(lambda: copier.done() or copier.set_result(None))

    threading.Thread(target=copy, daemon=True).start()
    try:
        info = await client.send(cfg, rq.Cast(
            source=str(pipe), bitrate=bitrate, fanout=fanout, public=public,
            name="stdin" if name is None and public else name, description=description),
            timeout=180)
        r.emit(info, as_json, info["uri"])
        r.err(f"broadcasting stdin as {info['id']}; it ends when stdin does")
        await copier
    finally:
        if not copier.done():  # the node never opened the pipe: let the copier go
            fd = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        pipe.unlink(missing_ok=True)


def _copy_stdin(pipe) -> None:
    import os

    try:
        with open(pipe, "wb") as out:  # blocks until the node's ffmpeg opens it
            while chunk := os.read(sys.stdin.fileno(), 64 * 1024):
                out.write(chunk)
    except BrokenPipeError:  # the broadcast was stopped
        pass


@click.command()
@click.argument("uri", required=False)
@click.option("-o", "--output", "out", metavar="FILE",
              help="Write the stream (Ogg/Opus) to FILE; '-' writes it to stdout until it "
                   "ends.")
@click.option("--fanout", type=click.IntRange(0, 8), default=2, show_default=True,
              help="Further listeners this node relays the stream to.")
@click.option("--play", "play", is_flag=True,
              help="Start a media player on the stream (config 'player', else mpv, vlc or "
                   "ffplay on PATH).")
@click.option("--stop", is_flag=False, flag_value=EVERY, default=None, metavar="[ID]",
              help="Stop listening ID (all listening without an ID).")
@json_option
@command
async def listen(state, uri, out, fanout, play, stop, as_json):
    """Listen to the live broadcast at URI, and relay it to further listeners.

    The node joins the broadcast, pulls the stream through Tor from whoever the broadcaster
    names, checks every page, and serves it on an onion of its own to up to --fanout
    listeners. It prints a URL on 127.0.0.1 for any player (mpv URL); with -o it also
    writes the stream to a file. When the node it listens through goes, it joins again
    elsewhere and goes on after the last page it had (obt casts shows the gaps).
    """
    if stop is not None:
        await _stop(state, "listening", stop, rq.ListenStop, as_json)
        return
    if not uri:
        raise UsageError("obt listen needs the broadcast's URI (or --stop)")
    from ..uri import parse_cast_uri

    parse_cast_uri(uri)  # a malformed URI fails before any node starts
    cfg = await client.node(state)
    to_file = out if out and out != "-" else None
    info = await client.send(cfg, rq.Listen(uri=uri, fanout=fanout, out=to_file), timeout=60)
    if out == "-":
        r.err(f"listening {info['id']}: writing the stream to stdout")
        await _copy(info["url"])
        return
    r.emit(info, as_json, info["url"])
    if play:
        from ..stream import player as players

        argv = players.choose(cfg.player)
        if argv is None:
            raise UsageError("no media player found (mpv, vlc, ffplay)",
                             hint='Open the URL in one, or set player = "mpv" in config.toml.')
        r.err(f"playing the broadcast with {r.shown(argv[0])}; the node goes on listening "
              f"(obt listen --stop {info['id']})")
        code = await players.run(players.command(argv, info["url"]))
        if code != 0:
            raise ObtError(f"the player exited with status {code}")


@click.command()
@json_option
@command
async def casts(state, as_json):
    """List live broadcasts and listenings: listeners, depth, relaying, gaps."""
    rows = await client.send(state.config, rq.Casts())
    r.emit(rows, as_json, r.casts_text(rows))


async def _stop(state, role: str, ident: str, request, as_json: bool) -> None:
    cfg = state.config
    rows = [c for c in await client.send(cfg, rq.Casts()) if c["role"] == (
        "broadcast" if role == "broadcast" else "listen")]
    chosen = rows if ident == EVERY else [c for c in rows if c["id"].startswith(ident)]
    if not chosen:
        raise UsageError(f"no {role} {'' if ident == EVERY else repr(ident)}".rstrip(),
                         hint="See: obt casts")
    stopped = [await client.send(cfg, request(id=c["id"]), timeout=60) for c in chosen]
    r.emit(stopped, as_json, "\n".join(f"stopped {role} {c['id']}" for c in stopped))


async def _copy(url: str) -> None:
    """The node's loopback stream, to stdout, until it ends."""
    import aiohttp

    out = sys.stdout.buffer
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        async with http.get(url) as resp:
            if resp.status != 200:
                raise ObtError(f"the node did not serve the stream (HTTP {resp.status})")
            async for chunk in resp.content.iter_any():
                out.write(chunk)
                out.flush()


COMMANDS = (cast, listen, casts)
