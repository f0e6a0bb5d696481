"""A torrent's onion services: published from fresh or stored keys, withdrawn, and all
published again on a fresh tor.

Each onion maps port 6881 to an inbound bridge listener of its own and, for a share, port
80 to the share's tracker listener.
"""

from __future__ import annotations

import asyncio
import logging

from ..config import PEER_VIRTUAL_PORT, TRACKER_VIRTUAL_PORT
from ..engine.metainfo import Metainfo
from ..errors import ObtError
from ..store import OnionRow
from ..tracker.metafile import legacy_info_hash
from .state import SwarmState

log = logging.getLogger(__name__)


async def publish(swarm: SwarmState, meta: Metainfo, rows: list[OnionRow], tracker_port: int | None):
    """Republish a torrent's onions from stored keys; returns the published rows.

    Each onion's bridge listener opens now; tor gets the service in turn
    (:meth:`~onionshare_bt.tor.client.TorClient.restore_onion`): the addresses exist
    already, and a node restoring a hundred shares at once must neither wedge its tor with
    two hundred services nor call one of them failed because tor was busy (peers and
    downloaders retry until it answers).
    """
    published = []
    try:
        for row in rows:
            ports = await _listen(swarm, meta, row.address, tracker_port)
            swarm.tor.restore_onion(row.address, ports, row.key)
            published.append(row)
    except BaseException:
        await unpublish(swarm, meta.id, [r.address for r in published])
        raise
    return published


async def new_onions(
    swarm: SwarmState, meta: Metainfo, count: int, purpose: str, tracker_port: int | None,
    *, wait: bool = True,
) -> list[OnionRow]:
    """Publish ``count`` fresh onions for a torrent, concurrently; all or none.

    :param wait: wait until each descriptor is uploaded (a share's URI must answer when
      printed); a download's seed-back onions need not hold up its first announce
    """
    results = await asyncio.gather(
        *(_publish_one(swarm, meta, purpose, tracker_port, None, wait) for _ in range(count)),
        return_exceptions=True,
    )
    rows = [r for r in results if isinstance(r, OnionRow)]
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        await unpublish(swarm, meta.id, [r.address for r in rows])
        raise failure
    return rows


async def _publish_one(swarm, meta, purpose, tracker_port, key, wait=True) -> OnionRow:
    path, ports = await _inbound(swarm, meta, tracker_port)
    address, key = await swarm.tor.add_onion(ports, key, await_publication=wait)
    path.onion = address
    swarm.onion_ports[address] = ports
    return OnionRow(address=address, key=key, torrent_id=meta.id, purpose=purpose)


async def _listen(swarm, meta, address: str, tracker_port: int | None) -> dict:
    """Open the inbound bridge listener of a stored onion; returns its port map."""
    path, ports = await _inbound(swarm, meta, tracker_port)
    path.onion = address
    swarm.onion_ports[address] = ports
    return ports


async def _inbound(swarm, meta, tracker_port: int | None):
    """A new inbound bridge path for a torrent, and the onion port map that reaches it."""
    legacy = legacy_info_hash(meta.data)  # what aria2 < 1.37 calls a hybrid torrent
    aliases = {legacy: meta.info_hashes[0]} if legacy else None
    path = await swarm.bridges.inbound(meta.id, meta.info_hashes, aliases)
    ports = {PEER_VIRTUAL_PORT: ("127.0.0.1", int(path.endpoint.rsplit(":", 1)[1]))}
    if tracker_port is not None:
        ports[TRACKER_VIRTUAL_PORT] = ("127.0.0.1", tracker_port)
    return path, ports


async def unpublish(swarm: SwarmState, torrent_id: str, addresses: list[str]) -> None:
    for address in addresses:
        try:
            await swarm.tor.remove_onion(address)
        except ObtError as exc:
            log.warning("could not remove an onion service: %s", exc)
        swarm.onion_ports.pop(address, None)
        await swarm.bridges.close_listener(torrent_id, address)


async def republish_all(swarm: SwarmState) -> None:
    """Publish every onion again (same keys, same local ports) on a fresh tor, in turn."""
    keys = {o.address: o.key for o in swarm.store.onions.all()}
    for address, ports in swarm.onion_ports.items():
        if address in keys:
            swarm.tor.restore_onion(address, ports, keys[address])
