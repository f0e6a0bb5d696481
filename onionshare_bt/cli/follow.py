"""Following what goes on in the node: poll an operation until it is done.

Polling only; what the user sees of each step is the ``show`` callback's business
(a :class:`~onionshare_bt.cli.render.Bar`, or nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..config import Config
from ..errors import Timeout
from ..ops import requests as rq
from .client import send

#: seconds between two polls
POLL_INTERVAL = 0.5

Show = Callable[[dict], None]


async def download(cfg: Config, torrent_id: str, show: Show | None = None) -> dict:
    """Poll a download until it is complete, failed or paused; its last row.

    :raises Timeout: no progress for ``stall_timeout`` seconds (the download goes on)
    """
    last_done, last_change = -1, time.monotonic()
    while True:
        row = await send(cfg, rq.Torrent(id=torrent_id))
        if row["state"] in ("complete", "error", "paused"):
            if show:
                show(row)
            return row
        done = row.get("done", 0)
        if done != last_done:
            last_done, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > cfg.stall_timeout:
            raise Timeout(
                f"no progress for {cfg.stall_timeout:.0f} s ({row['state']}); "
                "the download goes on in the node",
                hint="Run the same 'obt get' later to follow it, or see 'obt list'.",
            )
        if show:
            show(row)
        await asyncio.sleep(POLL_INTERVAL)


async def release(cfg: Config, release_id: str, timeout: float | None,
                  show: Show | None = None) -> dict:
    """Poll a release being fetched until it is verified or refused; its last state.

    :raises Timeout: past ``timeout``, or no progress for ``stall_timeout`` seconds
    """
    started = time.monotonic()
    last_done, last_change = -1, started
    while True:
        found = await send(cfg, rq.ReleaseShow(id=release_id))
        if found["state"] != "fetching":
            return found
        done = found.get("done", 0)
        now = time.monotonic()
        if done != last_done:
            last_done, last_change = done, now
        if (timeout and now - started > timeout) or now - last_change > cfg.stall_timeout:
            raise Timeout("the release is still being fetched; it goes on in the node",
                          hint="Run 'obt update check' again later, or see "
                               "'obt release list'.")
        if show:
            show({"done": done, "peers": found.get("peers", 0), "state": "fetching"})
        await asyncio.sleep(POLL_INTERVAL)
