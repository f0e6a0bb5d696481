"""A download's paths grown while each adds to its rate (:mod:`onionshare_bt.multiplex.growth`
decides; this carries it out).

One task per download (``paths:<id>``), beside its announce loop. Every :data:`TICK` it
tells the download's :class:`~onionshare_bt.multiplex.growth.PathGrowth` the payload
received and the paths carrying a connection; asked for one more path, it opens another
lane to the connected onion with the fewest lanes (the busiest first among equals): a
loopback endpoint of its own, dialled with a Tor isolation of its own, so a circuit of its
own to the same onion service. Asked to drop it, it closes that lane again. The task ends
when the download does (complete, paused, removed) and keeps its verdict for
``obt list --peers``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time

from ..errors import NodeError
from ..multiplex.core import PathCounters
from ..multiplex.growth import ADD, DROP, MAX_LANES, PathGrowth
from ..store import TorrentRow
from .state import SwarmState

log = logging.getLogger(__name__)

#: seconds between two looks at a download
TICK = 0.5


def start_growing(swarm: SwarmState, row: TorrentRow) -> None:
    """Grow a download's paths, if the node's ``max_paths`` lets it."""
    if swarm.config.max_paths > 1:
        swarm.tasks.spawn(f"paths:{row.id}", _grow(swarm, row.id))


async def _grow(swarm: SwarmState, torrent_id: str) -> None:
    growth = swarm.growth[torrent_id] = PathGrowth(max_paths=swarm.config.max_paths)
    added: list[PathCounters] = []  # the lanes opened, the one being tried last
    try:
        while growth.state != "settled":
            await asyncio.sleep(TICK)
            row = swarm.store.torrents.get(torrent_id)
            if row is None or row.state != "downloading" or not swarm.engine.has(torrent_id):
                left = None
                if growth.state == "probing" and added:  # a lane not measured is not kept
                    await swarm.bridges.drop(added.pop())
                    left = sum(1 for p in swarm.bridges.counters(torrent_id)
                               if p.direction == "out")
                growth.give_up("the download ended", left)
                return
            st = swarm.engine.status(torrent_id)
            live = [p for p in swarm.bridges.counters(torrent_id)
                    if p.direction == "out" and p.active]
            trying = added[-1] if added and growth.state == "probing" else None
            ready = bool(live) and (trying is None or trying.active > 0)
            action = growth.tick(time.monotonic(), st.payload_down, len(live), ready,
                                 max(0, st.total_wanted - st.total_done))
            if action == ADD:
                path = await _add_lane(swarm, torrent_id, live)
                if path is None:
                    growth.give_up("no peer onion can take another lane")
                else:
                    added.append(path)
            elif action == DROP and added:
                path = added.pop()
                log.info("%s: lane %d to %s… added too little; closed", torrent_id[:16],
                         path.lane, path.onion[:8])
                await swarm.bridges.drop(path)
    finally:
        growth.give_up("stopped")


async def _add_lane(swarm: SwarmState, torrent_id: str,
                    live: list[PathCounters]) -> PathCounters | None:
    """Open one more lane to a connected onion; its path, or None if none can take one."""
    lanes: dict[tuple[str, int], list[PathCounters]] = collections.defaultdict(list)
    for path in swarm.bridges.counters(torrent_id):
        if path.direction == "out":
            lanes[(path.onion, path.port)].append(path)
    connected = {(p.onion, p.port) for p in live}
    choices = sorted(
        (len(lanes[key]), -sum(p.down for p in lanes[key]), key) for key in connected
        if len(lanes[key]) < MAX_LANES)
    if not choices:
        return None
    onion, port = choices[0][2]
    lane = max(p.lane for p in lanes[(onion, port)]) + 1
    try:
        endpoint = await swarm.bridges.outbound(torrent_id, onion, port, lane=lane)
    except NodeError as exc:
        log.info("%s: no lane added: %s", torrent_id[:16], exc.message)
        return None
    swarm.engine.connect(torrent_id, endpoint)
    log.info("%s: lane %d to %s… opened", torrent_id[:16], lane, onion[:8])
    return next(p for p in swarm.bridges.counters(torrent_id)
                if p.direction == "out" and (p.onion, p.port, p.lane) == (onion, port, lane))
