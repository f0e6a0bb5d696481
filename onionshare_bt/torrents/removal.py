"""Removing a share or a download: everything the node runs for it stopped and forgotten."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from ..errors import UsageError
from ..store import TorrentRow
from .onions import unpublish
from .shares import own_copy
from .state import SwarmState


async def remove(swarm: SwarmState, row: TorrentRow, delete_data: bool) -> dict:
    """Stop serving and forget a torrent: onions withdrawn, tracker closed, engine dropped.

    A share's files are the user's own and are never deleted (the cleaned copies of a
    ``--scrub`` share are the node's: they are); a download's are deleted only with
    ``delete_data``.
    """
    if delete_data and row.role == "share":
        raise UsageError(
            "--delete-data only deletes downloaded data; obt never deletes a share's files"
        )
    await swarm.tasks.cancel(f"announce:{row.id}")
    await swarm.tasks.cancel(f"paths:{row.id}")
    await unpublish(swarm, row.id, [o.address for o in swarm.store.onions.of(row.id)])
    await swarm.tracker.withdraw(row.id)
    await swarm.bridges.close_torrent(row.id)
    if swarm.engine.has(row.id):
        swarm.engine.remove(row.id, delete_files=delete_data)
    swarm.store.torrents.remove(row.id)
    swarm.peer_ids.pop(row.id, None)
    swarm.announce_errors.pop(row.id, None)
    swarm.growth.pop(row.id, None)
    swarm.metas.pop(row.id, None)
    if row.role == "share" and own_copy(Path(row.save_path), Path(row.save_path),
                                         swarm.config.home):
        await asyncio.to_thread(shutil.rmtree, row.save_path, True)
    return {"id": row.id, "name": row.name, "role": row.role, "deleted_data": delete_data}
