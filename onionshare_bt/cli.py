"""The ``obt`` command line: click declarations and rendering only.

Data goes to stdout (one line, or one JSON document with ``--json``); progress, warnings
and errors go to stderr. Every :class:`~onionshare_bt.errors.ObtError` becomes
``obt: error: <message>`` plus a hint and its exit code; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys

from pathlib import Path

import click

from . import __version__
from .errors import ExitCode, ObtError
from .output import emit
from .output import err as _err

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class State:
    def __init__(self, home, network, debug, quiet):
        self.home, self.network, self.debug, self.quiet = home, network, debug, quiet
        self.flags: dict = {}
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from . import config

            self._config = config.load(home=self.home, network=self.network, **self.flags)
        return self._config


def _log_to_stderr(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)  # stem sets its own logger to DEBUG: filter at the handler
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("stem").setLevel(max(level, logging.INFO))


def _fail(exc: ObtError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    _err(f"error: {exc.message}")
    if exc.hint:
        _err(f"hint: {exc.hint}")
    sys.exit(int(exc.exit_code))


def command(fn):
    """Run an async command body and map its errors to messages and exit codes."""

    @functools.wraps(fn)
    @click.pass_obj
    def wrapper(state: State, *args, **kwargs):
        try:
            result = fn(state, *args, **kwargs)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
        except ObtError as exc:
            _fail(exc, state.debug)
        except KeyboardInterrupt:
            _err("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        return result

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
torrent_out_option = click.option(
    "--torrent-out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Also write the .torrent to FILE (it names the share's onion trackers).")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="obt")
@click.option("--home", type=click.Path(file_okay=False), envvar="OBT_HOME",
              help="The node's state folder [env: OBT_HOME].")
@click.option("--network", type=click.Path(dir_okay=False), envvar="OBT_NETWORK",
              help="Private Tor network file from 'obt testnet up' [env: OBT_NETWORK].")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def main(ctx, home, network, debug, quiet):
    """obt: onion-only BitTorrent. Every byte between peers travels over Tor onion services."""
    _log_to_stderr(logging.DEBUG if debug else logging.WARNING)
    ctx.obj = State(home, network, debug, quiet)


# -- share / get / list -------------------------------------------------------------------
@main.command()
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
@torrent_out_option
@json_option
@command
async def share(state, path, onions, include_hidden, open_share, scrub, keep_metadata,
                torrent_out, as_json):
    """Share a file or folder; print its private URI.

    Inside a folder, hidden files are left out (unless --include-hidden) and symbolic links
    are refused; the node's own home is never shared. An --open share also answers standard
    BitTorrent clients (aria2c under torsocks), which fetch but never seed back.

    Every file is first checked for identifying metadata (GPS positions, names, device
    serials…). If some is found, obt asks (y: share cleaned copies, k: keep it, n: stop);
    --scrub or --keep-metadata answer in advance, and without a terminal one of them is
    needed (exit status 2).
    """
    from .commands import share as run

    await run(state, path, onions, as_json, include_hidden=include_hidden,
              open_share=open_share, torrent_out=torrent_out, scrub=scrub,
              keep_metadata=keep_metadata)


@main.command()
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
    from .commands import get as run

    await run(state, uri, target, timeout, no_wait, as_json, pick=pick, torrent_out=torrent_out)


@main.command()
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
    from .commands import play as run

    await run(state, target, file, out, timeout, no_player, player, as_json)


@main.command(name="list")
@click.option("--peers", "peers_of", metavar="ID", help="Show one torrent's bridge paths.")
@json_option
@command
async def list_(state, peers_of, as_json):
    """List shares and downloads."""
    from .commands import list_torrents

    await list_torrents(state, peers_of, as_json)


@main.command()
@click.argument("torrent_id", metavar="ID")
@click.option("--onion", metavar="ADDRESS", help="Withdraw only this one of the share's onions.")
@json_option
@command
async def unshare(state, torrent_id, onion, as_json):
    """Stop sharing ID: its onion services go away and its URI answers nothing."""
    from .commands import remove as run

    await run(state, "unshare", torrent_id, False, as_json, onion=onion)


@main.command()
@click.argument("torrent_id", metavar="ID")
@click.option("--delete-data", is_flag=True, help="Also delete the downloaded files.")
@json_option
@command
async def remove(state, torrent_id, delete_data, as_json):
    """Forget a share or download (its files stay unless --delete-data)."""
    from .commands import remove as run

    await run(state, "remove", torrent_id, delete_data, as_json)


# -- node ---------------------------------------------------------------------------------
@main.group()
def node():
    """Start, stop and inspect the node daemon."""


@node.command(name="start")
@click.option("--foreground", is_flag=True, help="Run in this process until stopped.")
@click.option("--no-relay", is_flag=True, help="Run no Tor relay (allowance: free base only).")
@click.option("--ready-fd", type=int, default=None, hidden=True)
@json_option
@command
def node_start(state, foreground, no_relay, ready_fd, as_json):
    """Start the node (in the background unless --foreground)."""
    from . import daemon

    if no_relay:
        state.flags["relay"] = False

    if foreground:
        # spawned with --ready-fd, our stderr is node.log: the parent told the user already
        daemon.run_foreground(state.config, ready_fd, say=_err if ready_fd is None else None)
        return
    info = daemon.start_background(state.config, say=_err)
    emit(info, as_json, f"node running (pid {info['pid']})")


@node.command(name="id")
@json_option
@command
async def node_id(state, as_json):
    """Print the node's identity onion (for 'obt trust add' on other nodes)."""
    from .commands import simple

    await simple(state, "node_id", {}, as_json, lambda r: r["onion"])


@node.command(name="stop")
@json_option
@command
async def node_stop(state, as_json):
    """Stop the node."""
    from . import daemon

    info = await daemon.stop(state.config)
    emit(info, as_json, "node stopped" if info["was_running"] else "no node was running")


@node.command(name="status")
@json_option
@command
async def node_status(state, as_json):
    """Show the node's state: tor bootstrap, onions, ports, uptime, version."""
    from .commands import node_status as run

    await run(state, as_json)


# -- public catalogue, trust, search ------------------------------------------------------
@main.command()
@click.argument("torrent_id", metavar="ID", required=False)
@click.option("--public", "mode", flag_value="public", help="Add ID to the public catalogue.")
@click.option("--private", "mode", flag_value="private", help="Withdraw ID from it.")
@click.option("--list", "mode", flag_value="list", help="List the public catalogue.")
@click.option("--open/--closed", "open_share", default=None,
              help="Admit standard BitTorrent clients to share ID, or obt nodes only again.")
@json_option
@command
async def publish(state, torrent_id, mode, open_share, as_json):
    """Make a share public (reachable through the node's public URI), or private again;
    open it to standard BitTorrent clients, or closed to all but obt nodes."""
    from .commands import publish as run

    await run(state, torrent_id, mode, as_json, open_share=open_share)


@main.group()
def trust():
    """The web of trust: nodes whose public shares you search."""


@trust.command(name="add")
@click.argument("onion")
@json_option
@command
async def trust_add(state, onion, as_json):
    """Trust ONION (xxx.onion, with or without http:// and a path)."""
    from .commands import simple
    from .onion import parse_onion

    parse_onion(onion)  # a bad address is refused here, with the reason, before any node

    await simple(state, "trust", {"action": "add", "onion": onion}, as_json,
                 lambda r: f"trusted {r['onion']}" + ("" if r["added"] else " (already)"))


@trust.command(name="remove")
@click.argument("onion")
@json_option
@command
async def trust_remove(state, onion, as_json):
    """Stop trusting ONION."""
    from .commands import simple

    await simple(state, "trust", {"action": "remove", "onion": onion}, as_json,
                 lambda r: f"no longer trusted: {r['onion']}")


@trust.command(name="list")
@json_option
@command
async def trust_list(state, as_json):
    """The nodes this node trusts directly, and the depth it walks."""
    from .commands import simple

    await simple(state, "trust", {"action": "list"}, as_json,
                 lambda r: "\n".join(r["trusted"]) or "no trusted nodes")


@trust.command(name="depth")
@click.argument("depth", type=click.IntRange(1, 6), required=False)
@json_option
@command
async def trust_depth(state, depth, as_json):
    """Show or set how many degrees of trust searches reach (default 1)."""
    from .commands import simple

    await simple(state, "trust", {"action": "depth", "depth": depth}, as_json,
                 lambda r: f"trust depth {r['depth']}")


@trust.command(name="graph")
@json_option
@command
async def trust_graph(state, as_json):
    """Walk the trusted nodes to the trust depth and draw what answered."""
    from .commands import trust_graph as run

    await run(state, as_json)


@main.command()
@click.argument("terms", nargs=-1, required=True)
@json_option
@command
async def search(state, terms, as_json):
    """Search the public catalogues of every trusted node."""
    from .commands import search as run

    await run(state, list(terms), as_json)


# -- mirrors ------------------------------------------------------------------------------
@main.group()
def mirror():
    """Mirrors: keep other nodes' public trackers alive on onions of this node."""


@mirror.command(name="add")
@click.argument("onion")
@click.option("--follow", is_flag=True,
              help="Keep copying the node's catalogue as it changes (default: copy once).")
@json_option
@command
async def mirror_add(state, onion, follow, as_json):
    """Copy ONION's public tracker data and serve it on a new onion; print its URI."""
    from .commands import mirror_add as run
    from .onion import parse_onion

    parse_onion(onion)
    await run(state, onion, follow, as_json)


@mirror.command(name="list")
@json_option
@command
async def mirror_list(state, as_json):
    """The nodes this node mirrors, their items, peers and last sync."""
    from .commands import mirror_list as run

    await run(state, as_json)


@mirror.command(name="remove")
@click.argument("onion")
@json_option
@command
async def mirror_remove(state, onion, as_json):
    """Stop mirroring ONION: its mirror onion is withdrawn and the copy forgotten."""
    from .commands import simple
    from .onion import parse_onion

    parse_onion(onion)
    await simple(state, "mirror", {"action": "remove", "onion": onion}, as_json,
                 lambda r: f"stopped mirroring {r['source']}")


# -- releases -----------------------------------------------------------------------------
@main.group()
def release():
    """Releases of obt: make and sign one (maintainers), seed one, list those held."""


@release.command(name="keygen")
@click.argument("key_file", type=click.Path(dir_okay=False))
@json_option
@command
def release_keygen(state, key_file, as_json):
    """Write a new ed25519 release signing key to KEY_FILE (0600); print its public half."""
    from .release import core
    from .output import emit

    seed = core.generate_seed()
    core.write_key(Path(key_file), seed)
    public = core.public_key(seed).hex()
    emit({"key_file": str(Path(key_file).resolve()), "public_key": public}, as_json, public)


@release.command(name="make")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--version", "version", required=True, help="The release's version (PEP 440).")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="The signing key file (from 'obt release keygen').")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Where to create the obt-<version> folder.")
@json_option
@command
def release_make(state, files, version, key_file, out_dir, as_json):
    """Build a signed release folder from FILES (the sdist and the wheel)."""
    from .release import core
    from .output import emit

    folder = core.make_release([Path(f) for f in files], version,
                               core.read_key(Path(key_file)), Path(out_dir))
    manifest = core.parse_manifest((folder / core.MANIFEST).read_bytes())
    emit({"folder": str(folder), "version": manifest.version,
          "files": [{"name": e.name, "size": e.size, "sha256": e.sha256}
                    for e in manifest.files]}, as_json, str(folder))


@release.command(name="publish")
@click.argument("folder", type=click.Path(file_okay=False))
@json_option
@command
async def release_publish(state, folder, as_json):
    """Verify a release folder and seed it; the node offers it to those who trust it."""
    from .commands import simple

    await simple(state, "release", {"action": "publish", "folder": str(Path(folder).resolve())},
                 as_json, lambda r: f"seeding obt {r['version']}: {r['uri']}")


@release.command(name="list")
@json_option
@command
async def release_list(state, as_json):
    """Releases this node holds, is fetching, or refused (and why)."""
    from .commands import release_list as run

    await run(state, as_json)


@main.group()
def update():
    """Newer obt releases from the trusted set: fetched, verified, seeded, never installed."""


@update.command(name="check")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=None,
              help="Give up following the download after this many seconds.")
@json_option
@command
async def update_check(state, timeout, as_json):
    """Ask the trusted set for a newer signed release; fetch, verify and seed it."""
    from .commands import update_check as run

    await run(state, timeout, as_json)


# -- relay and ratio ----------------------------------------------------------------------
@main.group()
def relay():
    """The node's Tor middle relay (never an exit)."""


@relay.command(name="status")
@json_option
@command
async def relay_status(state, as_json):
    """Fingerprint, consensus flags, bytes relayed for others, rate limit."""
    from .commands import relay_status as run

    await run(state, as_json)


@main.command()
@json_option
@command
async def ratio(state, as_json):
    """How much this node may download: free base + ratio × bytes relayed."""
    from .commands import ratio as run

    await run(state, as_json)


# -- testnet ------------------------------------------------------------------------------
@main.group()
def testnet():
    """A private Tor network on 127.0.0.1 for tests, benchmarks and the demo."""


root_option = click.option(
    "--root", type=click.Path(file_okay=False), envvar="OBT_TESTNET_ROOT",
    default=None, help="Folder for the network's state [default: <home>/../testnet].",
)


@testnet.command(name="up")
@root_option
@click.option("--relays", type=click.IntRange(2, 8), default=4, show_default=True)
@click.option("--base-port", type=click.IntRange(1024, 60000), default=17000, show_default=True)
@click.option("--latency-ms", type=click.FloatRange(0, 500), default=0.0, show_default=True,
              help="Delay added to every tor-to-tor link, each way (as on the real network).")
@json_option
@command
def testnet_up(state, root, relays, base_port, latency_ms, as_json):
    """Bring the private network up; print its network file."""
    from .commands import testnet_up as run

    run(state, root, relays, base_port, as_json, latency_ms)


@testnet.command(name="down")
@root_option
@command
def testnet_down(state, root):
    """Stop the private network's tor processes."""
    from .commands import testnet_down as run

    run(state, root)


@testnet.command(name="status")
@root_option
@json_option
@command
def testnet_status(state, root, as_json):
    """Show the private network's processes."""
    from .commands import testnet_status as run

    run(state, root, as_json)
