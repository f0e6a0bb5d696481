"""Which media player ``obt play`` starts, and with what arguments.

The player is the configured one (``player = "mpv"`` in config.toml, or ``--player``; a
command line, split like a shell would), else the first of :data:`KNOWN` on ``PATH``. Known
players get options that keep them off the network on their own (:data:`QUIET`): mpv would
hand an ``http`` URL to youtube-dl first, VLC fetches cover art and metadata online. A player
is never started on a playlist or stream description: it would fetch whatever URL the share
put in it, outside Tor.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from collections.abc import Callable

from ..errors import UsageError

KNOWN = ("mpv", "vlc", "ffplay")
QUIET = {
    "mpv": ("--ytdl=no",),
    "vlc": ("--no-metadata-network-access",),
    "cvlc": ("--no-metadata-network-access",),
    "ffplay": ("-autoexit",),
}


def choose(configured: str | None, which: Callable[[str], str | None] | None = None
           ) -> list[str] | None:
    """The player's command line without the URL; None when none is configured or found.

    :param which: looks a command up on ``PATH`` (default :func:`shutil.which`)
    :raises UsageError: the configured player is not installed, or not a command line
    """
    which = which or shutil.which
    if configured:
        try:
            argv = shlex.split(configured)
        except ValueError as exc:
            raise UsageError(f"the player setting is not a command line: {exc}") from exc
        if not argv or which(argv[0]) is None:
            raise UsageError(f"the player {configured!r} is not installed",
                             hint="Set player in config.toml, or give --player COMMAND.")
        return argv
    for name in KNOWN:
        if which(name):
            return [name]
    return None


def command(argv: list[str], url: str) -> list[str]:
    """The full command: the player, its network-quieting options, the URL."""
    return [*argv, *QUIET.get(os.path.basename(argv[0]), ()), url]


async def run(argv: list[str]) -> int:
    """Run the player in the foreground (the user's terminal); its exit status."""
    proc = await asyncio.create_subprocess_exec(*argv)
    try:
        return await proc.wait()
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.terminate()
        raise
