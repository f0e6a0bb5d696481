"""``obt mirror`` (add, list, remove)."""

from __future__ import annotations

import click

from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option


@click.group()
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
    from ..onion import parse_onion

    parse_onion(onion)
    cfg = await client.node(state)
    data = await client.send(cfg, rq.MirrorAdd(onion=onion, follow=follow),
                             timeout=cfg.trust_timeout * 2 + cfg.fetch_timeout * 2 + 60)
    if data.get("error"):
        r.err(f"warning: first sync failed (the mirror retries): {r.shown(data['error'], 200)}")
    r.emit(data, as_json, data["public_uri"])


@mirror.command(name="list")
@json_option
@command
async def mirror_list(state, as_json):
    """The nodes this node mirrors, their items, peers and last sync."""
    cfg = await client.node(state)
    data = await client.send(cfg, rq.MirrorList())
    r.emit(data, as_json, r.mirrors_text(data))


@mirror.command(name="remove")
@click.argument("onion")
@json_option
@command
async def mirror_remove(state, onion, as_json):
    """Stop mirroring ONION: its mirror onion is withdrawn and the copy forgotten."""
    from ..onion import parse_onion

    parse_onion(onion)
    cfg = await client.node(state)
    info = await client.send(cfg, rq.MirrorRemove(onion=onion), timeout=120)
    r.emit(info, as_json, f"stopped mirroring {info['source']}")


COMMANDS = (mirror,)
