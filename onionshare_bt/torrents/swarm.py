"""The node's swarm part: every torrent it shares or downloads, and their onions.

:class:`Swarm` is handed, explicitly, to whatever shares, fetches or removes a torrent (the
node's operations, the release and trust services, the stall watchdog). It owns what the
node keeps about its torrents while it runs (each in one place: peer ids, the port maps of
published onions, parsed metadata, the last announce error) and offers the torrent
operations as methods; their code lives in the modules beside it (shares, downloads,
onions, announce, removal), which take the swarm first.

The parts it is made of are given at construction and never swapped: a tor restart
restarts tor and the HTTP client in place (:meth:`onionshare_bt.tor.client.TorClient.restart`).
"""

from __future__ import annotations

from pathlib import Path

from ..engine.metainfo import Metainfo
from ..store import OnionRow, TorrentRow
from ..uri import ShareURI
from . import announce, downloads, onions, removal, shares, view
from .state import SwarmState

__all__ = ["Swarm"]


class Swarm(SwarmState):
    """Every torrent of the node, and what can be done with one (the state and the parts
    it is made of: :class:`.state.SwarmState`)."""

    # -- what it shows -------------------------------------------------------------
    def find(self, ident: str) -> TorrentRow:
        """The one torrent whose id starts with **ident** (:func:`.view.find`)."""
        return view.find(self, ident)

    def all(self, role: str | None = None) -> list[TorrentRow]:
        """Every torrent (or every one of a **role**, ``"share"`` or ``"download"``)."""
        return self.store.torrents.all(role)

    def status(self, row: TorrentRow) -> dict:
        """One torrent as the swarm knows it (:func:`.view.status`)."""
        return view.status(self, row)

    def progress(self, torrent_id: str) -> dict | None:
        """Done, wanted and peers while the engine has it (:func:`.view.progress`)."""
        return view.progress(self, torrent_id)

    def peers(self, row: TorrentRow) -> dict:
        """A torrent's paths and the engine's peers (:func:`.view.peers`)."""
        return view.peers(self, row)

    def torrent_file(self, row: TorrentRow) -> bytes:
        """A torrent's .torrent as it is served or was fetched (:func:`.view.torrent_file`)."""
        return view.torrent_file(self, row)

    def preview(self, path: str, include_hidden: bool) -> dict:
        """The files sharing **path** would publish (:func:`.view.preview`)."""
        return view.preview(self, path, include_hidden)

    # -- shares ---------------------------------------------------------------------
    async def share(self, path: str, onions: int | None, include_hidden: bool = False,
                    open_share: bool | None = False, scrub: bool = False, staged=None,
                    wait: bool = True) -> dict:
        """Share a file or folder (:func:`.shares.share`)."""
        return await shares.share(self, path, onions, include_hidden, open_share, scrub,
                                  staged, wait)

    def set_open(self, row: TorrentRow, open_share: bool) -> TorrentRow:
        """Open a share to the node's public URI, or close it (:func:`.shares.set_open`)."""
        return shares.set_open(self, row, open_share)

    async def withdraw_onion(self, row: TorrentRow, onion: str) -> dict:
        """Withdraw one of a share's onions (:func:`.shares.withdraw_onion`)."""
        return await shares.withdraw_onion(self, row, onion)

    async def restore_share(self, row: TorrentRow) -> None:
        """Serve a stored share again after a start (:func:`.shares.restore_share`)."""
        await shares.restore_share(self, row)

    # -- downloads ------------------------------------------------------------------
    async def get(self, text: str, target: str, timeout: float | None) -> dict:
        """Start (or re-attach to) a download (:func:`.downloads.get`)."""
        return await downloads.get(self, text, target, timeout)

    async def start_download(self, uri: ShareURI, meta: Metainfo, target: Path,
                             seed: bool = True) -> dict:
        """Download **meta** from the share at **uri** (:func:`.downloads.start_download`)."""
        return await downloads.start_download(self, uri, meta, target, seed)

    async def seed_back(self, row: TorrentRow) -> list[OnionRow]:
        """Publish a finished download's own onions (:func:`.downloads.seed_back`)."""
        return await downloads.seed_back(self, row)

    async def restore_download(self, row: TorrentRow) -> None:
        """Resume a stored download after a start (:func:`.downloads.restore_download`)."""
        await downloads.restore_download(self, row)

    def pause(self, row: TorrentRow) -> TorrentRow:
        """Pause a download (:func:`.downloads.pause`)."""
        return downloads.pause(self, row)

    def resume(self, row: TorrentRow) -> TorrentRow:
        """Resume a paused download (:func:`.downloads.resume`)."""
        return downloads.resume(self, row)

    def start_announcing(self, row: TorrentRow) -> None:
        """Start (or restart) a download's announce loop (:func:`.announce.start_announcing`)."""
        announce.start_announcing(self, row)

    def announce_completed(self, row: TorrentRow) -> None:
        """Tell a completed download's trackers at once (:func:`.announce.announce_completed`)."""
        announce.announce_completed(self, row)

    # -- both -----------------------------------------------------------------------
    async def remove(self, row: TorrentRow, delete_data: bool) -> dict:
        """Stop and forget a torrent (:func:`.removal.remove`)."""
        return await removal.remove(self, row, delete_data)

    async def republish_all(self) -> None:
        """Give a restarted tor every onion again (:func:`.onions.republish_all`)."""
        await onions.republish_all(self)
