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
copied into our own :class:`Event` before it leaves this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import libtorrent as lt

from ..errors import TorrentError
from .metainfo import MAX_DECODE_DEPTH, MAX_DECODE_TOKENS, MAX_PIECES, MAX_TORRENT_BYTES, Metainfo

log = logging.getLogger(__name__)

_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    # piece_finished_alert: wakes readers of a download in progress (onionshare_bt.stream)
    | lt.alert.category_t.piece_progress_notification
)


#: ``torrent_handle::query_save_path`` (the binding names no constant for it)
_QUERY_SAVE_PATH = 128
#: libtorrent's ``default_priority`` for a piece
_DEFAULT_PRIORITY = 4

#: the bridges' address ranges (:mod:`onionshare_bt.multiplex.core` has the same): the
#: outbound endpoints libtorrent dials, and the sources inbound connections arrive from
BRIDGE_OUTBOUND_NET = "127.64.0.0/10"
BRIDGE_INBOUND_NET = "127.1.0.0/16"

_LIMITS = {
    "max_buffer_size": MAX_TORRENT_BYTES,
    "max_pieces": MAX_PIECES,
    "max_decode_depth": MAX_DECODE_DEPTH,
    "max_decode_tokens": MAX_DECODE_TOKENS,
}


def settings(listen_host: str = "127.0.0.1", socks: tuple[str, int] | None = None) -> dict:
    """The session settings: everything that could reach past loopback is off.

    :param socks: Tor's SOCKS address; libtorrent's proxy for whatever is not a peer
        connection (trackers, of which obt adds none), hostnames resolved by Tor. None: no
        proxy (the integration tier)
    """
    return {
        "listen_interfaces": f"{listen_host}:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "dht_bootstrap_nodes": "",
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
        "seeding_outgoing_connections": False,
        "peer_fingerprint": "-XX0000-",
        "handshake_client_version": "",
        "user_agent": "",
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": False,
        "alert_mask": int(_ALERTS),
        # Tor's circuits have ~0.5 s of latency under load: keep more requests in flight
        "request_queue_time": 10,
        "max_out_request_queue": 1500,
        "send_buffer_watermark": 1024 * 1024,
        "peer_connect_timeout": 60,
        "handshake_timeout": 60,
        # liveness: a peer that sends nothing for 20 s is gone (a Tor circuit that died
        # without a word, a frozen node). libtorrent sends a keep-alive after half this of
        # quiet, so a live peer never is; in 2.1 the same clock also bounds the wait for a
        # peer's handshake, which makes handshake_timeout moot
        "peer_timeout": 20,
        # a request unanswered this long is sent to another peer (the peer is snubbed);
        # above request_queue_time, the wait a full queue means on a busy circuit
        "request_timeout": 30,
        # peers neither side is interested in are dropped after this once slots run short
        "inactivity_timeout": 120,
        "auto_manage_startup": 5,
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "min_reconnect_time": 5,
        # 2.1: leaves ``v`` out of the extension handshake (and would hide the user agent
        # from trackers); it neither closes listen sockets nor forces the proxy
        "anonymous_mode": True,
        "support_share_mode": False,
        **proxy_settings(socks),
    }


def proxy_settings(socks: tuple[str, int] | None) -> dict:
    """libtorrent's proxy: Tor's SOCKS port for trackers, never for peers (see module doc).

    With ``proxy_peer_connections`` off, libtorrent 2.1 connects peers and web seeds
    directly (``instantiate_connection``, ``torrent::connect_to_url_seed``); peers go to
    bridge endpoints only, and no web seed ever reaches libtorrent (:func:`bare_torrent`).
    """
    if socks is None:
        return {"proxy_type": int(lt.proxy_type_t.none)}
    host, port = socks
    return {
        "proxy_type": int(lt.proxy_type_t.socks5),
        "proxy_hostname": host,
        "proxy_port": int(port),
        "proxy_hostnames": True,
        "proxy_tracker_connections": True,
        "proxy_peer_connections": False,
    }


def loopback_filter() -> lt.ip_filter:
    """An IP filter that blocks every address except 127.0.0.0/8."""
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1)
    flt.add_rule("127.0.0.0", "127.255.255.255", 0)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    return flt


def bridge_filter() -> lt.ip_filter:
    """An IP filter that admits the bridges' ranges only.

    libtorrent may then dial only outbound endpoints (127.64.0.0/10) and accept only the
    inbound bridge's sources (127.1.0.0/16): no peer message (``ut_holepunch`` ``connect``,
    an extension handshake's ``p``) can make it dial 127.0.0.1, where tor's and the
    tracker's ports are, or anything else.
    """
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1)
    for net in (BRIDGE_OUTBOUND_NET, BRIDGE_INBOUND_NET):
        block = ipaddress.IPv4Network(net)
        flt.add_rule(str(block.network_address), str(block.broadcast_address), 0)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    return flt


def _hashes(info: lt.torrent_info) -> tuple[bytes, ...]:
    hashes = info.info_hashes()
    out = []
    if hashes.has_v1():
        out.append(hashes.v1.to_bytes())
    if hashes.has_v2():
        out.append(hashes.v2.to_bytes())
    return tuple(out)


def bare_torrent(data: bytes) -> tuple[bytes, lt.torrent_info]:
    """Rebuild .torrent bytes from their ``info`` dict (and ``piece layers``) only.

    The ``info`` value is copied byte for byte, so the info-hashes cannot change (and are
    checked); ``announce``, ``announce-list``, ``url-list``, ``httpseeds``, ``nodes`` and
    every other top-level key are gone.

    :returns: the new bytes and libtorrent's parse of them
    :raises TorrentError: when the bytes do not parse, or the rebuilt torrent still names a
        tracker, web seed or DHT node, or its info-hashes differ
    """
    try:
        original = lt.torrent_info(data, _LIMITS)
        top = lt.bdecode(data)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise TorrentError(f"the .torrent is not valid: {exc}") from exc
    parts = [b"d4:info", bytes(original.info_section())]
    layers = top.get(b"piece layers") if isinstance(top, dict) else None
    if isinstance(layers, dict) and layers:
        parts += [b"12:piece layers", lt.bencode(layers)]
    bare = b"".join(parts) + b"e"
    try:
        info = lt.torrent_info(bare, _LIMITS)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise TorrentError(f"the .torrent's info dict does not stand alone: {exc}") from exc
    with warnings.catch_warnings():  # trackers(), web_seeds(), nodes() are deprecated in 2.1
        warnings.simplefilter("ignore", DeprecationWarning)
        named = list(info.trackers()), list(info.web_seeds()), list(info.nodes())
    if any(named):
        raise TorrentError("the rebuilt torrent still names trackers, web seeds or DHT nodes")
    if _hashes(info) != _hashes(original):
        raise TorrentError("rebuilding the torrent changed its info-hashes")
    return bare, info


def _forget_network(params: lt.add_torrent_params) -> None:
    """Clear what resume data (or a .torrent) may carry about the network."""
    params.trackers = []
    params.tracker_tiers = []
    params.trackerid = ""
    params.url_seeds = []
    params.http_seeds = []
    params.dht_nodes = []
    # earlier endpoints: their addresses mean nothing (or another onion) in this node life
    params.peers = []
    params.banned_peers = []


def global_class_filter() -> lt.ip_filter:
    """A peer class filter that puts every address, loopback included, in the global class."""
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 1 << lt.session.global_peer_class_id)
    return flt


@dataclasses.dataclass(frozen=True)
class Event:
    """One libtorrent alert, copied into plain fields."""

    kind: str  # finished, moved, move_failed, error, resume, resume_failed, file_error
    torrent_id: str
    message: str = ""
    data: bytes | None = None


@dataclasses.dataclass(frozen=True)
class Status:
    state: str
    progress: float
    total_wanted: int
    total_done: int
    payload_down: int
    payload_up: int
    session_down: int  # payload downloaded since the torrent joined this session
    rate_down: int
    rate_up: int
    peers: int  # connections libtorrent holds, handshakes in progress included
    connected: int  # peers past the BitTorrent handshake
    seeds: int
    paused: bool
    error: str
    save_path: str
    #: payload that failed its hash check this session (a broken or hostile peer)
    failed: int = 0


@dataclasses.dataclass(frozen=True)
class Peer:
    host: str
    port: int
    payload_down: int
    payload_up: int
    incoming: bool
    seed: bool
    #: libtorrent's view of the connection in words (see :data:`PEER_FLAGS`)
    flags: tuple[str, ...] = ()
    #: blocks we asked this peer for and still wait on
    requests: int = 0


#: the peer flags ``obt list --peers`` shows: why a connected peer sends nothing shows here
PEER_FLAGS = (
    ("interesting", lt.peer_info.interesting),  # we want pieces it has
    ("choked", lt.peer_info.remote_choked),  # it does not send to us now
    ("choking", lt.peer_info.choked),  # we do not send to it now
    ("snubbed", lt.peer_info.snubbed),  # it sent nothing we asked for in a while
    ("connecting", lt.peer_info.connecting),
    ("handshake", lt.peer_info.handshake),
)


@dataclasses.dataclass(frozen=True)
class LayoutFile:
    """One file of a torrent's layout (pad files included: zeros never on disk)."""

    path: str
    offset: int  # in the torrent's byte space
    size: int
    pad: bool


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a torrent's files lie in its pieces (libtorrent's ``file_storage``)."""

    piece_length: int
    num_pieces: int
    total_size: int
    files: tuple[LayoutFile, ...]

    def piece_size(self, piece: int) -> int:
        return min(self.piece_length, self.total_size - piece * self.piece_length)


class Engine:
    """Own one libtorrent session.

    :param on_event: called on the loop for every :class:`Event`
    :param socks: Tor's SOCKS address, libtorrent's proxy (see :func:`proxy_settings`);
        None for none
    :param bridged: admit the bridges' address ranges only (:func:`bridge_filter`) and let
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
        paused: bool = False,
    ) -> None:
        """Add a torrent with no trackers, web seeds or DHT nodes, and PEX/DHT/LSD off.

        Only the torrent's ``info`` dict reaches libtorrent (:func:`bare_torrent`); what the
        resume data says about the network is cleared.

        :raises TorrentError: when libtorrent refuses it, or it would still name a tracker
            or web seed, or its info-hashes are not ``meta``'s
        """
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
        host, _ = endpoint
        net = BRIDGE_OUTBOUND_NET if self._bridged else "127.0.0.0/8"
        try:
            inside = ipaddress.IPv4Address(host) in ipaddress.IPv4Network(net)
        except ValueError:
            inside = False
        if not inside:
            raise TorrentError(f"refusing to connect libtorrent to {host}, outside {net}")
        self._handles[torrent_id].connect_peer(endpoint, 0, 0)

    def move(self, torrent_id: str, target: Path) -> None:
        """Move the files to ``target``; an existing file there is an error, never replaced."""
        self._handles[torrent_id].move_storage(str(target), lt.move_flags_t.fail_if_exist)

    def save_resume(self, torrent_id: str) -> None:
        handle = self._handles.get(torrent_id)
        if handle is not None and handle.is_valid():
            handle.save_resume_data(lt.save_resume_flags_t.save_info_dict)

    def limit_download(self, bytes_per_second: int) -> None:
        """Cap the whole session's download rate (0: no cap); uploads are never capped."""
        if self._session.get_settings()["download_rate_limit"] != bytes_per_second:
            self._session.apply_settings({"download_rate_limit": bytes_per_second})

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
        handle = self._handles[torrent_id]
        st = handle.status()
        busy = lt.peer_info.connecting | lt.peer_info.handshake
        connected = sum(1 for p in handle.get_peer_info() if not p.flags & busy) if st.num_peers else 0
        return Status(
            state=str(st.state).rsplit(".", 1)[-1],
            progress=float(st.progress),
            total_wanted=int(st.total_wanted),
            total_done=int(st.total_wanted_done),
            payload_down=int(max(st.all_time_download, st.total_payload_download)),
            payload_up=int(max(st.all_time_upload, st.total_payload_upload)),
            session_down=int(st.total_payload_download),
            rate_down=int(st.download_payload_rate),
            rate_up=int(st.upload_payload_rate),
            peers=int(st.num_peers),
            connected=connected,
            seeds=int(st.num_seeds),
            paused=bool(st.flags & lt.torrent_flags.paused),
            error=st.errc.message() if st.errc.value() else "",
            save_path=st.save_path,
            failed=int(st.total_failed_bytes),
        )

    def peers(self, torrent_id: str) -> list[Peer]:
        out = []
        for p in self._handles[torrent_id].get_peer_info():
            host, port = p.ip
            out.append(
                Peer(
                    host=host,
                    port=port,
                    payload_down=int(p.total_download),
                    payload_up=int(p.total_upload),
                    incoming=not bool(p.flags & lt.peer_info.outgoing_connection),
                    seed=bool(p.flags & lt.peer_info.seed),
                    flags=tuple(name for name, bit in PEER_FLAGS if p.flags & bit),
                    requests=int(p.download_queue_length),
                )
            )
        return out

    # -- pieces, for reading a download in progress (onionshare_bt.stream) --------------
    def layout(self, torrent_id: str) -> Layout:
        """The torrent's files and pieces, pad files included."""
        info = self._handles[torrent_id].torrent_file()
        fs = info.layout()
        files = tuple(
            LayoutFile(fs.file_path(i), int(fs.file_offset(i)), int(fs.file_size(i)),
                       bool(fs.file_flags(i) & fs.flag_pad_file))
            for i in range(fs.num_files())
        )
        return Layout(int(info.piece_length()), int(info.num_pieces()), int(fs.total_size()),
                      files)

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

    def _id_of(self, alert) -> str | None:
        handle = getattr(alert, "handle", None)
        if handle is None or not handle.is_valid():
            return None
        hashes = handle.info_hashes()
        raw = hashes.v1.to_bytes() if hashes.has_v1() else hashes.v2.to_bytes()[:20]
        return raw.hex() if raw.hex() in self._handles else None

    def _translate(self, alert) -> Event | None:
        tid = self._id_of(alert)
        if tid is None:
            return None
        if isinstance(alert, lt.piece_finished_alert):
            self._piece_finished(tid, int(alert.piece_index))
            return None
        if isinstance(alert, lt.torrent_finished_alert):
            return Event("finished", tid)
        if isinstance(alert, lt.storage_moved_alert):
            return Event("moved", tid, alert.storage_path())
        if isinstance(alert, lt.storage_moved_failed_alert):
            return Event("move_failed", tid, f"{alert.file_path()}: {alert.error.message()}")
        if isinstance(alert, lt.save_resume_data_alert):
            return Event("resume", tid, data=bytes(lt.write_resume_data_buf(alert.params)))
        if isinstance(alert, lt.save_resume_data_failed_alert):
            return Event("resume_failed", tid, alert.message())
        if isinstance(alert, lt.file_error_alert):
            return Event("file_error", tid, f"{alert.filename()}: {alert.error.message()}")
        if isinstance(alert, lt.torrent_error_alert):
            return Event("error", tid, alert.message())
        return None
