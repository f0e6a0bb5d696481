"""The libtorrent session, locked to loopback.

The session never touches the network: it listens on 127.0.0.1 only, an IP filter admits
loopback only (in a node: only the bridges' address ranges), and DHT, LSD, UPnP, NAT-PMP,
PEX, uTP, encryption and trackers are off. Peers reach it only through the node's bridges
(:mod:`onionshare_bt.multiplex`). Its peer id (random per connection in libtorrent 2.1 after
an 8-character product prefix) and handshake carry no client fingerprint.

A torrent reaches libtorrent only as its ``info`` dict (and v2 ``piece layers``): announce
URLs, web seeds, HTTP seeds and DHT nodes of a .torrent or of resume data never do, so no
.torrent can make libtorrent resolve or contact a name. As a backstop, libtorrent's own proxy
is the node's Tor SOCKS port with hostnames resolved by Tor; peer connections bypass it, as
they go to loopback bridge endpoints only.

Alerts come in through ``set_alert_fd`` on a socketpair watched by the event loop; each is
copied into our own :class:`~onionshare_bt.engine.alerts.Event` before it leaves the engine.

This module holds :class:`Engine`, the session's owner; its parts are beside it:
:mod:`~onionshare_bt.engine.settings` (the settings and IP filters),
:mod:`~onionshare_bt.engine.bare` (a torrent stripped to its ``info`` dict),
:mod:`~onionshare_bt.engine.alerts` (alerts into events) and
:mod:`~onionshare_bt.engine.status` (status, peers and layout into records).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import libtorrent as lt

from ..errors import TorrentError
from .alerts import Event, event_of, torrent_id_of
from .bare import _forget_network, _hashes, bare_torrent
from .metainfo import Metainfo
from .settings import (
    BRIDGE_OUTBOUND_NET,
    bridge_filter,
    global_class_filter,
    loopback_filter,
    proxy_settings,
    settings,
)
from .status import Layout, Peer, Status, read_layout, read_peers, read_status

log = logging.getLogger(__name__)

#: ``torrent_handle::query_save_path`` (the binding names no constant for it)
_QUERY_SAVE_PATH = 128
#: libtorrent's ``default_priority`` for a piece
_DEFAULT_PRIORITY = 4


class Engine:
    """Own one libtorrent session.

    :param on_event: called on the loop for every :class:`Event`
    :param socks: Tor's SOCKS address, libtorrent's proxy (see
        :func:`~onionshare_bt.engine.settings.proxy_settings`); None for none
    :param bridged: admit the bridges' address ranges only
        (:func:`~onionshare_bt.engine.settings.bridge_filter`) and let
        :meth:`connect` dial outbound endpoints only; else any loopback address. Defaults to
        True when ``socks`` is given (a node) and False otherwise (tests that connect two
        sessions directly)
    """

    def __init__(
        self,
        on_event: Callable[[Event], None] | None = None,
        socks: tuple[str, int] | None = None,
        *,
        bridged: bool | None = None,
    ) -> None:
        self._on_event = on_event or (lambda event: None)
        self._socks = socks
        self._bridged = socks is not None if bridged is None else bridged
        self._session: lt.session | None = None
        self._handles: dict[str, lt.torrent_handle] = {}
        self._hashes: dict[str, tuple[bytes, ...]] = {}
        self._sock_r: socket.socket | None = None
        self._sock_w: socket.socket | None = None
        #: called on the loop as ``listener(torrent_id, piece)`` for every verified piece
        self.piece_listeners: list[Callable[[str, int], None]] = []

    async def start(self) -> None:
        ses = lt.session(settings(socks=self._socks), 0)  # 0: no default plugins (no ut_pex)
        ses.add_extension("ut_metadata")
        ses.add_extension("smart_ban")
        ses.set_ip_filter(bridge_filter() if self._bridged else loopback_filter())
        # every peer reaches us from loopback (the bridges), which libtorrent puts in its
        # unlimited "local" peer class: put everyone in the global class instead, or the
        # ratio gate's download rate limit would limit nothing
        ses.set_peer_class_filter(global_class_filter())
        self._sock_r, self._sock_w = socket.socketpair()
        self._sock_r.setblocking(False)
        self._sock_w.setblocking(False)
        ses.set_alert_fd(self._sock_w.fileno())
        asyncio.get_running_loop().add_reader(self._sock_r.fileno(), self._drain)
        self._session = ses
        await self._wait_listening()

    async def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._session.is_listening() or not self._session.listen_port():
            if asyncio.get_running_loop().time() > deadline:
                raise TorrentError("libtorrent did not open its loopback listen socket")
            await asyncio.sleep(0.05)

    @property
    def listen_port(self) -> int:
        return self._session.listen_port()

    @property
    def session(self) -> lt.session:
        return self._session

    @property
    def bridged(self) -> bool:
        return self._bridged

    def set_proxy(self, socks: tuple[str, int] | None) -> None:
        """Point libtorrent's proxy at a new SOCKS address (a restarted tor)."""
        self._socks = socks
        if self._session is not None:
            self._session.apply_settings(proxy_settings(socks))

    async def close(self) -> None:
        """Pause the session; resume data is the caller's to save first."""
        if self._session is None:
            return
        asyncio.get_running_loop().remove_reader(self._sock_r.fileno())
        self._session.pause()
        self._session = None
        self._sock_r.close()
        self._sock_w.close()

    # -- torrents ---------------------------------------------------------------------
    def add(
        self, meta: Metainfo, save_path: Path, *, seed: bool = False, resume: bytes | None = None,
        paused: bool = False, dial: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """Add a torrent with no trackers, web seeds or DHT nodes, and PEX/DHT/LSD off.

        Only the torrent's ``info`` dict reaches libtorrent
        (:func:`~onionshare_bt.engine.bare.bare_torrent`); what the resume data says about
        the network is cleared.

        :param dial: bridge endpoints libtorrent dials the moment the torrent starts (one
          given later, :meth:`connect`, waits for libtorrent's once-a-second round of
          connection attempts). Only for a new download into an empty folder: its files
          are not checked against the disk first (there is nothing there to check), which
          is what lets libtorrent dial before that check is done.
        :raises TorrentError: when libtorrent refuses it, or it would still name a tracker
            or web seed, or its info-hashes are not ``meta``'s, or ``dial`` holds an
            address libtorrent may not dial or comes with resume data or a seed
        """
        for endpoint in dial:
            self._check_dialable(endpoint)
        if dial and (resume or seed):
            raise TorrentError("only a new download dials peers as it is added")
        _, info = bare_torrent(meta.data)
        if tuple(h[:20] for h in _hashes(info)) != tuple(meta.info_hashes):
            raise TorrentError("the torrent's info-hashes are not the ones it was parsed with")
        if resume:
            try:
                params = lt.read_resume_data(resume)
            except (RuntimeError, ValueError, TypeError) as exc:
                raise TorrentError(f"the resume data is not valid: {exc}") from exc
        else:
            params = lt.add_torrent_params()
        params.ti = info
        params.save_path = str(save_path)
        _forget_network(params)
        if dial:
            params.peers = list(dial)
            params.flags |= lt.torrent_flags.no_verify_files
            _create_empty_files(info, save_path)  # what that check would have created
        params.flags |= (
            lt.torrent_flags.disable_pex | lt.torrent_flags.disable_dht
            | lt.torrent_flags.disable_lsd | lt.torrent_flags.apply_ip_filter
        )
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        if paused:  # added paused: it opens no connection before it is resumed
            params.flags |= lt.torrent_flags.paused
        if seed and not resume:
            params.flags |= lt.torrent_flags.seed_mode
        try:
            handle = self._session.add_torrent(params)
        except RuntimeError as exc:
            raise TorrentError(f"libtorrent refused the torrent: {exc}") from exc
        with warnings.catch_warnings():  # http_seeds() is deprecated in 2.1
            warnings.simplefilter("ignore", DeprecationWarning)
            named = handle.trackers() or handle.url_seeds() or handle.http_seeds()
        if named:
            self._session.remove_torrent(handle)
            raise TorrentError("libtorrent holds a tracker or web seed for the torrent")
        self._handles[meta.id] = handle
        self._hashes[meta.id] = tuple(meta.info_hashes)

    def remove(self, torrent_id: str, *, delete_files: bool = False) -> None:
        handle = self._handles.pop(torrent_id, None)
        self._hashes.pop(torrent_id, None)
        if handle is None:
            return
        flags = lt.session.delete_files if delete_files else 0
        self._session.remove_torrent(handle, flags)

    def has(self, torrent_id: str) -> bool:
        return torrent_id in self._handles

    def info_hashes(self, torrent_id: str) -> tuple[bytes, ...]:
        """The 20-byte info-hashes (v1, truncated v2) peers use for a torrent of ours.

        :raises KeyError: for a torrent the engine does not hold
        """
        return self._hashes[torrent_id]

    def connect(self, torrent_id: str, endpoint: tuple[str, int]) -> None:
        """Have libtorrent dial a bridge endpoint (never anything else).

        :raises TorrentError: for an address that is not loopback (or, bridged, not an
            outbound endpoint)
        """
        self._check_dialable(endpoint)
        self._handles[torrent_id].connect_peer(endpoint, 0, 0)

    def _check_dialable(self, endpoint: tuple[str, int]) -> None:
        host, _ = endpoint
        net = BRIDGE_OUTBOUND_NET if self._bridged else "127.0.0.0/8"
        try:
            inside = ipaddress.IPv4Address(host) in ipaddress.IPv4Network(net)
        except ValueError:
            inside = False
        if not inside:
            raise TorrentError(f"refusing to connect libtorrent to {host}, outside {net}")

    def move(self, torrent_id: str, target: Path) -> None:
        """Move the files to ``target``; an existing file there is an error, never replaced."""
        self._handles[torrent_id].move_storage(str(target), lt.move_flags_t.fail_if_exist)

    def save_resume(self, torrent_id: str) -> None:
        handle = self._handles.get(torrent_id)
        if handle is not None and handle.is_valid():
            handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)

    def limit_download(self, bytes_per_second: int) -> None:
        """Cap the whole session's download rate (0: no cap)."""
        if self._session.get_settings()["download_rate_limit"] != bytes_per_second:
            self._session.apply_settings({"download_rate_limit": bytes_per_second})

    def limit_upload(self, bytes_per_second: int) -> None:
        """Cap the whole session's upload rate (0: no cap)."""
        if self._session.get_settings()["upload_rate_limit"] != bytes_per_second:
            self._session.apply_settings({"upload_rate_limit": bytes_per_second})

    def gate(self, torrent_id: str, closed: bool) -> bool:
        """Stop (or allow again) downloading; the torrent keeps serving what it has.

        libtorrent cancels the torrent's outstanding requests, and drops its peers that
        are seeds. Idempotent: returns whether the gate changed.
        """
        handle = self._handles[torrent_id]
        if bool(handle.flags() & lt.torrent_flags.upload_mode) == closed:
            return False
        if closed:
            handle.set_flags(lt.torrent_flags.upload_mode)
        else:
            handle.unset_flags(lt.torrent_flags.upload_mode)
        return True

    def pause(self, torrent_id: str) -> None:
        self._handles[torrent_id].pause()

    def resume(self, torrent_id: str) -> None:
        self._handles[torrent_id].resume()

    def status(self, torrent_id: str) -> Status:
        return read_status(self._handles[torrent_id])

    def peers(self, torrent_id: str) -> list[Peer]:
        return read_peers(self._handles[torrent_id])

    # -- pieces, for reading a download in progress (onionshare_bt.stream) --------------
    def layout(self, torrent_id: str) -> Layout:
        """The torrent's files and pieces, pad files included."""
        return read_layout(self._handles[torrent_id].torrent_file())

    def have_piece(self, torrent_id: str, piece: int) -> bool:
        """Whether the piece is downloaded and its hash checked."""
        return bool(self._handles[torrent_id].have_piece(piece))

    def have_pieces(self, torrent_id: str) -> list[bool]:
        """Every piece: downloaded and checked or not (one call for the whole torrent)."""
        return list(self._handles[torrent_id].status(lt.status_flags_t.query_pieces).pieces)

    def piece_hash(self, torrent_id: str, piece: int) -> bytes | None:
        """The piece's v1 SHA-1 from the torrent's metadata; None for a v2-only torrent."""
        info = self._handles[torrent_id].torrent_file()
        if not info.info_hashes().has_v1():
            return None
        return info.hash_for_piece(piece)

    def set_piece_deadline(self, torrent_id: str, piece: int, ms: int,
                           priority: int = 7) -> None:
        """Ask libtorrent to have the piece within ``ms`` milliseconds (time-critical).

        libtorrent gives such a piece the top priority (7) in its ordinary picker as well;
        ``priority`` (1-7) puts it lower there, behind more urgent pieces.
        """
        handle = self._handles[torrent_id]
        handle.set_piece_deadline(piece, int(ms))
        if priority != 7:
            handle.piece_priority(piece, priority)

    def reset_piece_deadline(self, torrent_id: str, piece: int) -> None:
        """Withdraw the piece's deadline; it goes back to the default priority (libtorrent
        would leave it at 1, the lowest)."""
        handle = self._handles[torrent_id]
        handle.reset_piece_deadline(piece)
        handle.piece_priority(piece, _DEFAULT_PRIORITY)

    def clear_piece_deadlines(self, torrent_id: str, pieces=()) -> None:
        """Withdraw every deadline of the torrent; ``pieces`` go back to the default
        priority."""
        handle = self._handles[torrent_id]
        handle.clear_piece_deadlines()
        for piece in pieces:
            handle.piece_priority(piece, _DEFAULT_PRIORITY)

    def save_path(self, torrent_id: str) -> str:
        """Where the torrent's files are now (the staging folder, or the target once moved)."""
        return self._handles[torrent_id].status(_QUERY_SAVE_PATH).save_path

    # -- alerts -----------------------------------------------------------------------
    def _piece_finished(self, torrent_id: str, piece: int) -> None:
        for listener in list(self.piece_listeners):
            try:
                listener(torrent_id, piece)
            except Exception:  # a listener bug must not kill the alert pump
                log.exception("piece listener failed")

    def _drain(self) -> None:
        try:
            while self._sock_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        if self._session is None:
            return
        for alert in self._session.pop_alerts():
            event = self._translate(alert)
            if event is not None:
                try:
                    self._on_event(event)
                except Exception:  # a handler bug must not kill the alert pump
                    log.exception("alert handler failed for %s", event.kind)

    def _translate(self, alert) -> Event | None:
        tid = torrent_id_of(alert, self._handles)
        if tid is None:
            return None
        if isinstance(alert, lt.piece_finished_alert):
            self._piece_finished(tid, int(alert.piece_index))
            return None
        return event_of(alert, tid)


def _create_empty_files(info: lt.torrent_info, save_path: Path) -> None:
    """Create a torrent's empty files under ``save_path``. libtorrent writes only files
    that have bytes; the empty ones it creates when it checks the files, which a download
    added with peers to dial skips. libtorrent sanitises the names; a path outside
    ``save_path`` is skipped all the same, and one that cannot be made is left to
    libtorrent to report."""
    layout = info.layout()
    root = save_path.resolve()
    for i in range(layout.num_files()):
        if layout.file_size(i) or layout.file_flags(i) & layout.flag_pad_file:
            continue
        path = (root / layout.file_path(i)).resolve()
        if path == root or not path.is_relative_to(root):
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        except OSError:
            continue
