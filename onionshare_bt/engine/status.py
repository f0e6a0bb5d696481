"""What the session tells of a torrent, copied into plain records.

:class:`Status` (progress, rates, peer counts), :class:`Peer` (one connection) and
:class:`Layout` (where the files lie in the pieces), and the readers that fill them from a
libtorrent ``torrent_handle`` or ``torrent_info``, so no libtorrent object leaves the engine.
"""

from __future__ import annotations

import dataclasses

import libtorrent as lt


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


def read_status(handle: lt.torrent_handle) -> Status:
    """The torrent's :class:`Status` now."""
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


def read_peers(handle: lt.torrent_handle) -> list[Peer]:
    """The torrent's connections, handshakes in progress included."""
    out = []
    for p in handle.get_peer_info():
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


def read_layout(info: lt.torrent_info) -> Layout:
    """The torrent's files and pieces, pad files included."""
    fs = info.layout()
    files = tuple(
        LayoutFile(fs.file_path(i), int(fs.file_offset(i)), int(fs.file_size(i)),
                   bool(fs.file_flags(i) & fs.flag_pad_file))
        for i in range(fs.num_files())
    )
    return Layout(int(info.piece_length()), int(info.num_pieces()), int(fs.total_size()), files)
