"""Torrent metadata: make it from a path, and read it from untrusted bytes.

Pure functions around libtorrent's torrent creation and parsing; the session lives in
:mod:`.session`. Torrents are v1+v2 hybrids: v2 gives per-file Merkle roots, v1 keeps them
usable by every client that joins an obt swarm through torsocks.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import libtorrent as lt

from ..errors import BadPath, MalformedReply

#: limits applied to metadata from the network (a malicious share can send anything)
MAX_TORRENT_BYTES = 32 * 1024 * 1024
MAX_PIECES = 4_000_000
MAX_DECODE_DEPTH = 64
MAX_DECODE_TOKENS = 4_000_000
MAX_FILES = 100_000


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str
    size: int


@dataclasses.dataclass(frozen=True)
class Metainfo:
    """What we know of a torrent without a session.

    :param id: the torrent's id in obt: v1 info-hash hex (or truncated v2 for v2-only)
    :param info_hashes: the raw 20-byte hashes peers may use in their handshake
    """

    id: str
    name: str
    size: int
    files: tuple[FileEntry, ...]
    piece_length: int
    num_pieces: int
    info_hashes: tuple[bytes, ...]
    data: bytes = dataclasses.field(repr=False)

    def summary(self) -> dict:
        return {
            "infohash": self.id,
            "name": self.name,
            "size": self.size,
            "piece_length": self.piece_length,
            "files": [dataclasses.asdict(f) for f in self.files],
        }


def check_shareable(path: Path) -> Path:
    """Resolve ``path`` and make sure it names a non-empty file or folder.

    :raises BadPath: missing, unreadable, not a regular file or folder, or an empty folder
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BadPath(f"{path}: no such file or folder", hint="Check the path and try again.")
    path = path.resolve()
    if not os.access(path, os.R_OK):
        raise BadPath(f"{path}: permission denied")
    if path.is_file():
        return path
    if not path.is_dir():
        raise BadPath(f"{path}: not a regular file or folder")
    if not any(p.is_file() for p in path.rglob("*")):
        raise BadPath(f"{path}: the folder has no files to share")
    return path


def create(path: Path) -> Metainfo:
    """Hash ``path`` (a file or a folder) into a hybrid v1+v2 torrent.

    Blocking (reads every byte): run it in a thread. The torrent carries no creator and no
    creation date, so nothing in it names the client or the moment it was made.

    :raises BadPath: when the path cannot be shared or read
    """
    path = check_shareable(path)
    try:
        creator = lt.create_torrent(lt.list_files(str(path)))
        lt.set_piece_hashes(creator, str(path.parent))
        entry = creator.generate()
    except RuntimeError as exc:
        raise BadPath(f"{path}: cannot read it for sharing: {exc}") from exc
    for key in (b"created by", b"creation date", b"comment"):
        entry.pop(key, None)
    return parse(lt.bencode(entry))


def parse(data: bytes) -> Metainfo:
    """Parse untrusted .torrent bytes within fixed limits.

    libtorrent sanitises file paths (no ``..``, no absolute paths, no NUL) on load; we
    additionally refuse what no honest obt share makes.

    :raises MalformedReply: for anything that is not a sane torrent
    """
    if len(data) > MAX_TORRENT_BYTES:
        raise MalformedReply(f"the .torrent is too large ({len(data)} bytes)")
    limits = {
        "max_buffer_size": MAX_TORRENT_BYTES,
        "max_pieces": MAX_PIECES,
        "max_decode_depth": MAX_DECODE_DEPTH,
        "max_decode_tokens": MAX_DECODE_TOKENS,
    }
    try:
        info = lt.torrent_info(data, limits)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise MalformedReply(f"the .torrent is not valid: {exc}") from exc
    layout = info.layout()
    if layout.num_files() > MAX_FILES:
        raise MalformedReply(f"the .torrent lists too many files ({layout.num_files()})")
    files = tuple(
        FileEntry(layout.file_path(i), layout.file_size(i))
        for i in range(layout.num_files())
        if not layout.file_flags(i) & layout.flag_pad_file
    )
    hashes = info.info_hashes()
    raw = []
    if hashes.has_v1():
        raw.append(hashes.v1.to_bytes())
    if hashes.has_v2():
        raw.append(hashes.v2.to_bytes()[:20])
    return Metainfo(
        id=raw[0].hex(),
        name=info.name(),
        size=sum(f.size for f in files),
        files=files,
        piece_length=info.piece_length(),
        num_pieces=info.num_pieces(),
        info_hashes=tuple(raw),
        data=bytes(data),
    )
