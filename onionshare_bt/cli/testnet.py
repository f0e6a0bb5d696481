"""``obt testnet`` (up, down, status): the private Tor network on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import Down
from . import render as r
from .base import command, json_option


@click.group()
def testnet():
    """A private Tor network on 127.0.0.1 for tests, benchmarks and the demo."""


root_option = click.option(
    "--root", type=click.Path(file_okay=False), envvar="OBT_TESTNET_ROOT",
    default=None, help="Folder for the network's state [default: <home>/../testnet].",
)


def _testnet(state, root, relays: int = 4, base_port: int = 17000, latency_ms: float = 0.0):
    from ..testnet import Testnet

    root = Path(root) if root else state.config.home.parent / "testnet"
    return Testnet(root.expanduser().resolve(), base_port=base_port, relays=relays,
                   latency_ms=latency_ms)


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
    net = _testnet(state, root, relays, base_port, latency_ms)
    started = time.monotonic()
    path = net.up()
    elapsed = time.monotonic() - started
    if not as_json:
        r.err(f"private Tor network up in {elapsed:.1f} s; use it with --network {path}")
    r.emit({"network_file": str(path), "seconds": round(elapsed, 1)}, as_json, str(path))


@testnet.command(name="down")
@root_option
@command
def testnet_down(state, root):
    """Stop the private network's tor processes."""
    _testnet(state, root).down()
    r.err("private Tor network stopped")


@testnet.command(name="status")
@root_option
@json_option
@command
def testnet_status(state, root, as_json):
    """Show the private network's processes."""
    info = _testnet(state, root).status()
    r.emit(info, as_json, r.testnet_text(info))
    if not info["up"]:
        raise Down("the private Tor network is not up")


COMMANDS = (testnet,)
