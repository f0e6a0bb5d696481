"""Removing a share or a download: everything the node runs for it stopped and forgotten."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from ..errors import UsageError
from ..store import TorrentRow
from .onions import unpublish
from .parts import Parts
from .shares import _own_copy


async def remove(parts: Parts, row: TorrentRow, delete_data: bool) -> dict:
    """Stop serving and forget a torrent: onions withdrawn, tracker closed, engine dropped.

    A share's files are the user's own and are never deleted (the cleaned copies of a
    ``--scrub`` share are the node's: they are); a download's are deleted only with
    ``delete_data``.
    """
    if delete_data and row.role == "share":
        raise UsageError(
            "--delete-data only deletes downloaded data; obt never deletes a share's files"
        )
    await parts.tasks.cancel(f"announce:{row.id}")
    await unpublish(parts, row.id, [o.address for o in parts.store.onions.of(row.id)])
    await parts.tracker.withdraw(row.id)
    await parts.bridges.close_torrent(row.id)
    if parts.engine.has(row.id):
        parts.engine.remove(row.id, delete_files=delete_data)
    parts.store.torrents.remove(row.id)
    parts.peer_ids.pop(row.id, None)
    parts.announce_errors.pop(row.id, None)
    parts.metas.pop(row.id, None)
    if row.role == "share" and _own_copy(Path(row.save_path), Path(row.save_path),
                                         parts.config.home):
        await asyncio.to_thread(shutil.rmtree, row.save_path, True)
    return {"id": row.id, "name": row.name, "role": row.role, "deleted_data": delete_data}
