"""The root ``obt`` group: its options, and every command group added to it."""

from __future__ import annotations

import logging

import click

from .. import __version__
from . import cast, mirror, node, play, release, settings, testnet, torrents, trust, ui
from .base import State, log_to_stderr

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
    log_to_stderr(logging.DEBUG if debug else logging.WARNING)
    ctx.obj = State(home, network, debug, quiet)


# click lists them by name
for module in (torrents, play, cast, node, trust, mirror, release, settings, testnet, ui):
    for cmd in module.COMMANDS:
        main.add_command(cmd)
