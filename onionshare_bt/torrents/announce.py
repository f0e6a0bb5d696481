"""A download's announces: its onions announced to the share's tracker and every mirror of
it learnt since, each peer in the replies dialled through an outbound bridge.

One task per download (``announce:<id>``) announces in a loop, at the trackers' interval
while peers are connected and backing off while none is; a completed download's loop starts
again with a ``completed`` announce (its trackers list it as a seeder at once); a paused
download's loop is replaced by one ``stopped`` announce.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

from ..config import PEER_VIRTUAL_PORT
from ..engine.settings import torrent_handshake
from ..errors import NodeError, ObtError
from ..store import TorrentRow
from ..uri import ShareURI, parse_uri
from .paths import start_growing
from .state import SwarmState

log = logging.getLogger(__name__)

#: other trackers (mirrors) a download remembers and announces to
MAX_TRACKERS = 8


def start_announcing(swarm: SwarmState, row: TorrentRow) -> None:
    """Announce a download (and grow its paths while it downloads: :mod:`.paths`)."""
    swarm.peer_ids.setdefault(row.id, secrets.token_bytes(20))
    swarm.tasks.spawn(f"announce:{row.id}", _announce_loop(swarm, row.id))
    start_growing(swarm, row)


def announce_completed(swarm: SwarmState, row: TorrentRow) -> None:
    """A download completed: say so to its trackers now, not at the next interval, and go
    on announcing as a seeder (its paths are not grown again: a seed dials nobody)."""
    swarm.tasks.spawn(f"announce:{row.id}", _announce_loop(swarm, row.id, "completed"))


async def _announce_loop(swarm: SwarmState, torrent_id: str, event: str = "started") -> None:
    """Announce our onions to the source tracker and dial every peer it returns."""
    backoff = 2.0
    while True:
        row = swarm.store.torrents.get(torrent_id)
        if row is None:
            return
        try:
            interval = await announce_once(swarm, row, event)
            event = ""
            swarm.announce_errors.pop(torrent_id, None)
            connected = swarm.engine.status(torrent_id).connected
            wait = interval if connected else backoff
            backoff = 2.0 if connected else min(backoff * 2, 30.0)
        except ObtError as exc:
            swarm.announce_errors[torrent_id] = exc.message
            log.info("announce for %s failed: %s", torrent_id[:16], exc.message)
            wait, backoff = backoff, min(backoff * 2, 30.0)
        await asyncio.sleep(wait)


async def announce_once(swarm: SwarmState, row: TorrentRow, event: str) -> int:
    """Announce to the share's tracker and every mirror of it learnt so far, at once.

    Peers are dialled as each reply comes in; the round fails only when no tracker answers.
    Trackers named in replies (``x-obt-trackers``) are remembered and announced to from the
    next round on: a download survives its source's tracker going away.
    """
    uri = parse_uri(row.uri)
    trackers = [uri] + [ShareURI(o, uri.kind, uri.token) for o in swarm.store.trackers.of(row.id)
                        if o != uri.onion]
    status = swarm.engine.status(row.id)
    own = {o.address for o in swarm.store.onions.of(row.id)}
    interval = swarm.config.announce_interval
    answered, failure = False, None
    calls = [asyncio.ensure_future(_announce_to(swarm, row, t, event, own, status))
             for t in trackers]
    try:
        for result in asyncio.as_completed(calls):
            try:
                reply = await result
            except ObtError as exc:
                failure = failure or exc
                continue
            answered = True
            interval = await _take_reply(swarm, row, uri, own, reply, interval)
    finally:
        for call in calls:
            call.cancel()
    if not answered and failure is not None:
        raise failure
    return interval


async def _take_reply(swarm: SwarmState, row: TorrentRow, uri: ShareURI, own: set[str], reply,
                      interval: int) -> int:
    for onion in reply.trackers:
        if onion not in own and onion != uri.onion:
            if swarm.store.trackers.add(row.id, onion, MAX_TRACKERS):
                log.info("%s: learnt another tracker %s….onion", row.name, onion[:12])
    ours = torrent_handshake(swarm.meta(row))
    for peer_onion, port in sorted(p for p in reply.peers if p[0] not in own):
        try:
            endpoint = await swarm.bridges.outbound(row.id, peer_onion, port)
        except NodeError as exc:  # every endpoint of the torrent is busy: the cap holds
            log.info("%s: %s", row.name, exc.message)
            break
        # a new peer's circuit is built, and our handshake answered, while libtorrent
        # waits for its next round (up to a second) to dial it
        swarm.bridges.dial_ahead(row.id, peer_onion, port, ours)
        swarm.engine.connect(row.id, endpoint)
    return min(interval, max(reply.interval, 5))


async def _announce_to(swarm: SwarmState, row: TorrentRow, tracker: ShareURI, event: str,
                       own: set[str], status):
    """Announce each of our onions to one tracker, all at once; the peers of all replies
    together."""

    async def one(address: str | None):
        params = {
            "info_hash": bytes.fromhex(row.id),
            "peer_id": swarm.peer_ids[row.id],
            "uploaded": status.payload_up,
            "downloaded": status.payload_down,
            "left": max(0, status.total_wanted - status.total_done),
            "numwant": 50,
        }
        if address is not None:
            params.update(ip=f"{address}.onion", port=PEER_VIRTUAL_PORT)
        if event:
            params["event"] = event
        return await swarm.http.announce(tracker, params, swarm.config.fetch_timeout)

    # with no onion of our own (a release not verified yet) we only observe: not listed
    replies = await asyncio.gather(*(one(a) for a in sorted(own) or [None]))
    peers = {peer for reply in replies for peer in reply.peers}
    return dataclasses.replace(replies[-1], peers=tuple(sorted(peers)))


async def announce_stopped(swarm: SwarmState, row: TorrentRow) -> None:
    """One ``stopped`` announce to every tracker of a paused download (best effort)."""
    uri = parse_uri(row.uri)
    trackers = [uri] + [ShareURI(o, uri.kind, uri.token) for o in swarm.store.trackers.of(row.id)
                        if o != uri.onion]
    own = {o.address for o in swarm.store.onions.of(row.id)}
    status = swarm.engine.status(row.id)
    replies = await asyncio.gather(
        *(_announce_to(swarm, row, t, "stopped", own, status) for t in trackers),
        return_exceptions=True)
    for reply in replies:
        if isinstance(reply, ObtError):
            log.info("stopped announce for %s failed: %s", row.id[:16], reply.message)
