"""The torrent operations: share, get, list, show, play, open, unshare, remove, pause,
resume.

Composed of the parts they use, given at construction: the node's swarm part
(:class:`~onionshare_bt.torrents.Swarm`), the stream service (``obt play``), the origin
(whose catalogue changes when a share goes), and the liveness watch's verdicts (which
torrents are gated, stalled, and why).
"""

from __future__ import annotations

import base64
from pathlib import Path
from collections.abc import Mapping, Set
from typing import TYPE_CHECKING

from .. import torrents
from ..errors import UsageError
from . import requests as rq
from . import results as rs

if TYPE_CHECKING:
    from ..mirror.origin import Origin
    from ..store import TorrentRow
    from ..stream.server import StreamService


def find(store, ident: str) -> TorrentRow:
    """The one torrent whose id starts with ``ident``.

    :raises UsageError: none or several match
    """
    rows = [r for r in store.torrents.all() if r.id.startswith(ident.lower())]
    if not ident or len(rows) != 1:
        raise UsageError(f"no single torrent matches id {ident!r}", hint="See: obt list")
    return rows[0]


def _complete(row: TorrentRow) -> bool:
    """The torrent holds every piece (a share, or a download moved into place)."""
    return row.role == "share" or row.state == "complete"


class TorrentOps:
    """Shares and downloads, as the control socket and the web UI ask for them.

    :param gated: ids of downloads waiting for relay credit (the node's ledger keeps it)
    :param stalled: ids of downloads the liveness watch calls stalled
    :param reasons: why a download is not moving, by id
    """

    def __init__(self, swarm: torrents.Swarm, stream: StreamService, origin: Origin,
                 gated: Set[str], stalled: Set[str], reasons: Mapping[str, str]) -> None:
        self.swarm, self.stream, self.origin = swarm, stream, origin
        self.gated, self.stalled, self.reasons = gated, stalled, reasons

    async def share(self, req: rq.Share) -> rs.ShareInfo:
        return await self.swarm.share(req.path, req.onions, req.include_hidden,
                                      open_share=req.open, scrub=req.scrub,
                                      wait=not req.no_wait)

    async def share_preview(self, req: rq.SharePreview) -> rs.SharePreviewInfo:
        """The files sharing a path would publish, chosen as :meth:`share` chooses them."""
        from ..engine.metainfo import select

        chosen = select(Path(req.path), include_hidden=req.include_hidden,
                        forbidden=(self.swarm.config.home,))
        return {"path": str(chosen.root), "size": sum(f.size for f in chosen.files),
                "files": [{"path": f.path, "size": f.size} for f in chosen.files],
                "hidden_skipped": chosen.hidden_skipped}

    async def get(self, req: rq.Get) -> rs.DownloadInfo:
        return await self.swarm.get(req.uri, req.target, req.timeout)

    async def list(self, req: rq.ListTorrents) -> list[rs.TorrentInfo]:
        return [self.describe(row) for row in self.swarm.store.torrents.all()]

    async def torrent(self, req: rq.Torrent) -> rs.TorrentInfo:
        return self.describe(find(self.swarm.store, req.id))

    async def torrent_file(self, req: rq.TorrentFile) -> rs.TorrentFileInfo:
        """A torrent's .torrent, base64: a share's as its tracker serves it (naming its
        trackers), a download's as it was fetched."""
        row = find(self.swarm.store, req.id)
        data = self.swarm.tracker.torrent_file(row.id) if row.role == "share" else None
        return {"id": row.id, "name": row.name, "role": row.role, "open": bool(row.open),
                "torrent": base64.b64encode(data or row.torrent).decode()}

    async def peers(self, req: rq.Peers) -> rs.PeersInfo:
        row = find(self.swarm.store, req.id)
        engine = self.swarm.engine
        peers = engine.peers(row.id) if engine.has(row.id) else []
        return {
            "id": row.id,
            "paths": [p.as_dict() for p in self.swarm.bridges.counters(row.id)],
            "engine_peers": [p.__dict__ for p in peers],
        }

    async def play(self, req: rq.Play) -> rs.PlayInfo:
        """A loopback URL for one file of a torrent, served while it downloads."""
        row = find(self.swarm.store, req.id)
        played = self.stream.play(row.id, req.file, complete=_complete(row))
        return {"id": row.id, "name": row.name, "state": row.state, **played}

    async def set_open(self, req: rq.SetOpen) -> rs.OpenInfo:
        """Open a share to standard BitTorrent clients, or close it again."""
        row = self.swarm.set_open(find(self.swarm.store, req.id), req.open)
        return {"id": row.id, "name": row.name, "uri": row.uri, "open": bool(row.open)}

    async def unshare(self, req: rq.Unshare) -> rs.Removed:
        row = find(self.swarm.store, req.id)
        if row.role != "share":
            raise UsageError(f"{row.name!r} is a download; use 'obt remove' for it")
        if req.onion:
            return await self.swarm.withdraw_onion(row, req.onion)
        return await self._forget(row, delete_data=False)

    async def pause(self, req: rq.Pause) -> rs.PauseInfo:
        """Pause a download; it stays paused across node restarts (see
        :func:`~onionshare_bt.torrents.pause`)."""
        row = self.swarm.pause(find(self.swarm.store, req.id))
        return {"id": row.id, "name": row.name, "state": row.state}

    async def resume(self, req: rq.Resume) -> rs.PauseInfo:
        """Resume a paused download; it announces again at once."""
        row = self.swarm.resume(find(self.swarm.store, req.id))
        return {"id": row.id, "name": row.name, "state": row.state}

    async def remove(self, req: rq.Remove) -> rs.Removed:
        return await self._forget(find(self.swarm.store, req.id), req.delete_data)

    async def _forget(self, row: TorrentRow, delete_data: bool) -> rs.Removed:
        result = await self.swarm.remove(row, delete_data)
        self.stream.forget(row.id)
        self.origin.catalogue_changed()
        return result

    def describe(self, row: TorrentRow) -> rs.TorrentInfo:
        """One torrent as shown: its row, the engine's figures, and the watch's verdict."""
        swarm = self.swarm
        meta = swarm.meta(row)
        out: rs.TorrentInfo = {
            "id": row.id, "role": row.role, "name": row.name, "state": row.state,
            "size": meta.size, "uri": row.uri, "path": row.save_path, "error": row.error,
            "onions": [f"{o.address}.onion" for o in swarm.store.onions.of(row.id)],
            "open": bool(row.open),
        }
        if swarm.engine.has(row.id):
            st = swarm.engine.status(row.id)
            out.update(
                progress=st.progress, done=st.total_done, wanted=st.total_wanted,
                rate_down=st.rate_down, rate_up=st.rate_up, peers=st.connected,
                payload_down=st.payload_down, payload_up=st.payload_up, failed=st.failed,
            )
            if row.state == "downloading" and row.id in self.gated:
                out["state"] = "waiting for relay credit"
            elif row.state == "downloading" and row.id in self.stalled:
                out["state"] = "stalled"
            elif row.state == "downloading" and st.connected == 0:
                out["state"] = "waiting for peers"
            if row.role == "download":  # obt play: what plays, and how far ahead of readers
                out["stream"] = self.stream.describe(row.id, complete=_complete(row))
        out["announce_error"] = swarm.announce_errors.get(row.id)
        if row.role == "download":
            out["trackers"] = swarm.store.trackers.of(row.id)
            out["reason"] = self.reasons.get(row.id)
        return out
