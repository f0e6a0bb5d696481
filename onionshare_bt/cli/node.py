"""``obt node`` (start, id, stop, status), ``obt relay status`` and ``obt ratio``."""

from __future__ import annotations

import click

from ..errors import Down, NodeNotRunning
from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option


@click.group()
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
    from .. import daemon

    if no_relay:
        state.flags["relay"] = False

    if foreground:
        # spawned with --ready-fd, our stderr is node.log: the parent told the user already
        daemon.run_foreground(state.config, ready_fd, say=r.err if ready_fd is None else None)
        return
    info = daemon.start_background(state.config, say=r.err, debug=state.debug)
    r.emit(info, as_json, f"node running (pid {info['pid']})")


@node.command(name="id")
@json_option
@command
async def node_id(state, as_json):
    """Print the node's identity onion (for 'obt trust add' on other nodes)."""
    cfg = await client.node(state)
    info = await client.send(cfg, rq.NodeId(), timeout=120)
    r.emit(info, as_json, info["onion"])


@node.command(name="stop")
@json_option
@command
async def node_stop(state, as_json):
    """Stop the node."""
    from .. import daemon

    info = await daemon.stop(state.config)
    r.emit(info, as_json, "node stopped" if info["was_running"] else "no node was running")


@node.command(name="status")
@json_option
@command
async def node_status(state, as_json):
    """Show the node's state: tor bootstrap, onions, ports, uptime, version."""
    cfg = state.config
    try:
        info = await client.send(cfg, rq.Status())
    except NodeNotRunning as exc:
        if not as_json:
            raise
        r.emit({"running": False, "home": str(cfg.home)}, True)
        raise Down(exc.message) from exc
    info["running"] = True
    r.emit(info, as_json, r.status_text(info))


@click.group()
def relay():
    """The node's Tor middle relay (never an exit)."""


@relay.command(name="status")
@json_option
@command
async def relay_status(state, as_json):
    """Fingerprint, consensus flags, bytes relayed for others, rate limit."""
    info = await client.send(state.config, rq.RelayStatus())
    r.emit(info, as_json, r.relay_text(info))


@click.command()
@json_option
@command
async def ratio(state, as_json):
    """How much this node may download: free base + ratio × bytes relayed."""
    info = await client.send(state.config, rq.Ratio())
    r.emit(info, as_json, r.ratio_text(info))


COMMANDS = (node, relay, ratio)
