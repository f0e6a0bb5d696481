"""``obt share`` and identifying metadata (docs/metadata.md): scan what the share would
publish, say what was found, and decide with the user whether to share cleaned copies."""

from __future__ import annotations

import asyncio
import sys

import click

from ..errors import MetadataFound, UsageError
from .render import busy, err


async def check(state, chosen, include_hidden: bool, scrub: bool, keep: bool,
                as_json: bool):
    """Scan the files chosen, list what was found on stderr, and decide: scrub or not.

    :returns: the scan report, and whether the node is to share cleaned copies
    :raises MetadataFound: metadata found, no flag, and no terminal to ask on (or the
      answer was no)
    """
    from ..scan import render, scan_selection

    if scrub and keep:
        raise UsageError("--scrub and --keep-metadata exclude each other")
    with busy(state.progress(as_json), f"checking {len(chosen.files)} file(s) for metadata…"):
        report = await asyncio.to_thread(scan_selection, chosen, include_hidden)
    for line in render(report):
        err(line)
    if not report.flagged or scrub or keep:
        if report.flagged and keep:
            err("sharing the files as they are, metadata included (--keep-metadata)")
        return report, scrub
    return report, ask_scrub(len(report.flagged))


def ask_scrub(count: int) -> bool:
    """Ask on the terminal whether to share cleaned copies; no terminal, no share."""
    if not interactive():
        raise MetadataFound(f"{count} file(s) hold identifying metadata (listed above); "
                            "nothing was shared")
    try:
        answer = click.prompt("share cleaned copies (y), share as they are (k), or stop (n)?",
                              type=click.Choice(["y", "k", "n"]), err=True)
    except click.Abort:
        answer = "n"
    if answer == "n":
        raise MetadataFound("stopped; nothing was shared", hint="")
    return answer == "y"


def interactive() -> bool:
    """Whether there is someone at a terminal to ask."""
    return sys.stdin.isatty()
