"""The libtorrent session, locked to loopback.

The session never touches the network: it listens on 127.0.0.1 only, an IP filter admits
loopback only, and DHT, LSD, UPnP, NAT-PMP, PEX, uTP, encryption and trackers are off. Peers
reach it only through the node's bridges (:mod:`onionshare_bt.multiplex`). Its peer id and
handshake carry no client fingerprint.

Alerts come in through ``set_alert_fd`` on a socketpair watched by the event loop; each is
copied into our own :class:`Event` before it leaves this module.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import libtorrent as lt

from ..errors import TorrentError
from .metainfo import Metainfo

log = logging.getLogger(__name__)

_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
)


def settings(listen_host: str = "127.0.0.1") -> dict:
    """The session settings: everything that could reach past loopback is off."""
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
        "inactivity_timeout": 600,
        "auto_manage_startup": 5,
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "min_reconnect_time": 5,
    }


def loopback_filter() -> lt.ip_filter:
    """An IP filter that blocks every address except 127.0.0.0/8."""
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1)
    flt.add_rule("127.0.0.0", "127.255.255.255", 0)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
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


@dataclasses.dataclass(frozen=True)
class Peer:
    host: str
    port: int
    payload_down: int
    payload_up: int
    incoming: bool
    seed: bool


class Engine:
    """Own one libtorrent session.

    :param on_event: called on the loop for every :class:`Event`
    """

    def __init__(self, on_event: Callable[[Event], None] | None = None) -> None:
        self._on_event = on_event or (lambda event: None)
        self._session: lt.session | None = None
        self._handles: dict[str, lt.torrent_handle] = {}
        self._sock_r: socket.socket | None = None
        self._sock_w: socket.socket | None = None

    async def start(self) -> None:
        ses = lt.session(settings(), 0)  # 0: no default plugins (so no ut_pex)
        ses.add_extension("ut_metadata")
        ses.add_extension("smart_ban")
        ses.set_ip_filter(loopback_filter())
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
        self, meta: Metainfo, save_path: Path, *, seed: bool = False, resume: bytes | None = None
    ) -> None:
        """Add a torrent with no trackers and PEX/DHT/LSD disabled for it.

        :raises TorrentError: when libtorrent refuses it
        """
        if resume:
            params = lt.read_resume_data(resume)
        else:
            params = lt.add_torrent_params()
        params.ti = lt.torrent_info(meta.data)
        params.save_path = str(save_path)
        params.trackers = []
        params.url_seeds = []
        params.flags |= (
            lt.torrent_flags.disable_pex | lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
        )
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        if seed and not resume:
            params.flags |= lt.torrent_flags.seed_mode
        try:
            handle = self._session.add_torrent(params)
        except RuntimeError as exc:
            raise TorrentError(f"libtorrent refused the torrent: {exc}") from exc
        self._handles[meta.id] = handle

    def remove(self, torrent_id: str, *, delete_files: bool = False) -> None:
        handle = self._handles.pop(torrent_id, None)
        if handle is None:
            return
        flags = lt.session.delete_files if delete_files else 0
        self._session.remove_torrent(handle, flags)

    def has(self, torrent_id: str) -> bool:
        return torrent_id in self._handles

    def connect(self, torrent_id: str, endpoint: tuple[str, int]) -> None:
        """Have libtorrent dial a bridge endpoint (never anything else)."""
        host, _ = endpoint
        if not host.startswith("127."):
            raise TorrentError(f"refusing to connect libtorrent to non-loopback {host}")
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

    def gate(self, torrent_id: str, closed: bool) -> None:
        """Stop (or allow again) downloading; the torrent keeps serving what it has."""
        handle = self._handles[torrent_id]
        if closed:
            handle.set_flags(lt.torrent_flags.upload_mode)
        else:
            handle.unset_flags(lt.torrent_flags.upload_mode)

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
                )
            )
        return out

    # -- alerts -----------------------------------------------------------------------
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
