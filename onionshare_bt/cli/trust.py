"""``obt publish``, ``obt trust`` (add, remove, list, depth, graph) and ``obt search``."""

from __future__ import annotations

import click

from ..errors import UsageError
from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option


@click.command()
@click.argument("torrent_id", metavar="ID", required=False)
@click.option("--public", "mode", flag_value="public", help="Add ID to the public catalogue.")
@click.option("--private", "mode", flag_value="private", help="Withdraw ID from it.")
@click.option("--list", "mode", flag_value="list", help="List the public catalogue.")
@click.option("--open/--closed", "open_share", default=None,
              help="Admit standard BitTorrent clients to share ID, or obt nodes only again.")
@click.option("--description", metavar="TEXT", default=None,
              help="With --public: what the catalogue says of the share (searchable; one "
                   "line, at most 1024 characters).")
@json_option
@command
async def publish(state, torrent_id, mode, open_share, description, as_json):
    """Make a share public (reachable through the node's public URI), or private again;
    open it to standard BitTorrent clients, or closed to all but obt nodes."""
    if description is not None and mode != "public":
        raise UsageError("--description goes with --public")
    cfg = await client.node(state)
    if open_share is not None:
        await _open_share(cfg, torrent_id, mode, open_share, as_json, description)
        return
    if mode == "list" or (mode is None and torrent_id is None):
        data = await client.send(cfg, rq.Published())
        r.emit(data, as_json, r.published_text(data))
        return
    if not torrent_id or mode not in ("public", "private"):
        raise UsageError("give an ID with --public or --private (or use --list)")
    info = await client.send(cfg, rq.Publish(id=torrent_id, public=mode == "public",
                                             description=description))
    r.emit(info, as_json,
           info["public_uri"] if info["public"] else f"{r.shown(info['name'])}: private")


async def _open_share(cfg, torrent_id: str | None, mode: str | None, open_share: bool,
                      as_json: bool, description: str | None = None) -> None:
    """``obt publish --open|--closed ID`` (with ``--public``/``--private`` too, if given)."""
    if not torrent_id or mode == "list":
        raise UsageError("give the ID of a share with --open or --closed")
    info = await client.send(cfg, rq.SetOpen(id=torrent_id, open=open_share))
    if mode in ("public", "private"):
        published = await client.send(cfg, rq.Publish(id=torrent_id, public=mode == "public",
                                                       description=description))
        info["public"] = published["public"]
        info["public_uri"] = published.get("public_uri")
    if open_share:
        r.err(r.open_recipe(info["uri"], None))
    admits = "open to standard clients" if open_share else "obt nodes only"
    r.emit(info, as_json, f"{r.shown(info['name'])}: {admits}")


@click.group()
def trust():
    """The web of trust: nodes whose public shares you search."""


@trust.command(name="add")
@click.argument("onion")
@json_option
@command
async def trust_add(state, onion, as_json):
    """Trust ONION (xxx.onion, with or without http:// and a path)."""
    from ..onion import parse_onion

    parse_onion(onion)  # a bad address is refused here, with the reason, before any node
    cfg = await client.node(state)
    info = await client.send(cfg, rq.TrustAdd(onion=onion), timeout=120)
    r.emit(info, as_json, f"trusted {info['onion']}" + ("" if info["added"] else " (already)"))


@trust.command(name="remove")
@click.argument("onion")
@json_option
@command
async def trust_remove(state, onion, as_json):
    """Stop trusting ONION."""
    cfg = await client.node(state)
    info = await client.send(cfg, rq.TrustRemove(onion=onion), timeout=120)
    r.emit(info, as_json, f"no longer trusted: {info['onion']}")


@trust.command(name="list")
@json_option
@command
async def trust_list(state, as_json):
    """The nodes this node trusts directly, and the depth it walks."""
    cfg = await client.node(state)
    info = await client.send(cfg, rq.TrustList(), timeout=120)
    r.emit(info, as_json, "\n".join(info["trusted"]) or "no trusted nodes")


@trust.command(name="depth")
@click.argument("depth", type=click.IntRange(1, 6), required=False)
@json_option
@command
async def trust_depth(state, depth, as_json):
    """Show or set how many degrees of trust searches reach (default 1)."""
    cfg = await client.node(state)
    info = await client.send(cfg, rq.TrustDepth(depth=depth), timeout=120)
    r.emit(info, as_json, f"trust depth {info['depth']}")


@trust.command(name="graph")
@json_option
@command
async def trust_graph(state, as_json):
    """Walk the trusted nodes to the trust depth and draw what answered."""
    cfg = await client.node(state)
    data = await client.send(cfg, rq.TrustGraph(), timeout=cfg.trust_timeout * 8 + 60)
    if as_json:
        r.emit(data, True)
        return
    r.print_tree(data)


@click.command()
@click.argument("terms", nargs=-1, required=True)
@json_option
@command
async def search(state, terms, as_json):
    """Search the public catalogues of every trusted node."""
    cfg = await client.node(state)
    data = await client.send(cfg, rq.Search(terms=list(terms)),
                             timeout=cfg.trust_timeout * 8 + 60)
    r.unreachable(data["unreachable"])
    r.emit(data, as_json, r.search_text(data))


COMMANDS = (publish, trust, search)
