"""The torrent operations: share, get, list, show, play, open, unshare, remove, pause,
resume.

Composed of the parts they use, given at construction: the node's swarm part
(:class:`~onionshare_bt.torrents.Swarm`), the stream service (``obt play``), the origin
(whose catalogue changes when a share goes), and the liveness watch's verdicts (which
torrents are gated, stalled, and why).
"""

from __future__ import annotations

import base64
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
        return self.swarm.preview(req.path, req.include_hidden)

    async def get(self, req: rq.Get) -> rs.DownloadInfo:
        return await self.swarm.get(req.uri, req.target, req.timeout)

    async def list(self, req: rq.ListTorrents) -> list[rs.TorrentInfo]:
        return [self.describe(row) for row in self.swarm.all()]

    async def torrent(self, req: rq.Torrent) -> rs.TorrentInfo:
        return self.describe(self.swarm.find(req.id))

    async def torrent_file(self, req: rq.TorrentFile) -> rs.TorrentFileInfo:
        """A torrent's .torrent, base64: a share's as its tracker serves it (naming its
        trackers), a download's as it was fetched."""
        row = self.swarm.find(req.id)
        return {"id": row.id, "name": row.name, "role": row.role, "open": bool(row.open),
                "torrent": base64.b64encode(self.swarm.torrent_file(row)).decode()}

    async def peers(self, req: rq.Peers) -> rs.PeersInfo:
        return self.swarm.peers(self.swarm.find(req.id))

    async def play(self, req: rq.Play) -> rs.PlayInfo:
        """A loopback URL for one file of a torrent, served while it downloads."""
        row = self.swarm.find(req.id)
        played = self.stream.play(row.id, req.file, complete=_complete(row))
        return {"id": row.id, "name": row.name, "state": row.state, **played}

    async def set_open(self, req: rq.SetOpen) -> rs.OpenInfo:
        """Open a share to standard BitTorrent clients, or close it again."""
        row = self.swarm.set_open(self.swarm.find(req.id), req.open)
        return {"id": row.id, "name": row.name, "uri": row.uri, "open": bool(row.open)}

    async def unshare(self, req: rq.Unshare) -> rs.Removed:
        row = self.swarm.find(req.id)
        if row.role != "share":
            raise UsageError(f"{row.name!r} is a download; use 'obt remove' for it")
        if req.onion:
            return await self.swarm.withdraw_onion(row, req.onion)
        return await self._forget(row, delete_data=False)

    async def pause(self, req: rq.Pause) -> rs.PauseInfo:
        """Pause a download; it stays paused across node restarts (see
        :func:`~onionshare_bt.torrents.pause`)."""
        row = self.swarm.pause(self.swarm.find(req.id))
        return {"id": row.id, "name": row.name, "state": row.state}

    async def resume(self, req: rq.Resume) -> rs.PauseInfo:
        """Resume a paused download; it announces again at once."""
        row = self.swarm.resume(self.swarm.find(req.id))
        return {"id": row.id, "name": row.name, "state": row.state}

    async def remove(self, req: rq.Remove) -> rs.Removed:
        return await self._forget(self.swarm.find(req.id), req.delete_data)

    async def _forget(self, row: TorrentRow, delete_data: bool) -> rs.Removed:
        result = await self.swarm.remove(row, delete_data)
        self.stream.forget(row.id)
        self.origin.catalogue_changed()
        return result

    def describe(self, row: TorrentRow) -> rs.TorrentInfo:
        """One torrent as shown: what the swarm knows of it (:meth:`.Swarm.status`), the
        liveness watch's verdict on a download that is not moving, and what plays."""
        out: rs.TorrentInfo = self.swarm.status(row)
        if row.state == "downloading" and "peers" in out:
            if row.id in self.gated:
                out["state"] = "waiting for relay credit"
            elif row.id in self.stalled:
                out["state"] = "stalled"
            elif out["peers"] == 0:
                out["state"] = "waiting for peers"
        if row.role == "download":
            if "peers" in out:  # obt play: what plays, and how far ahead of readers
                out["stream"] = self.stream.describe(row.id, complete=_complete(row))
            out["reason"] = self.reasons.get(row.id)
        return out
