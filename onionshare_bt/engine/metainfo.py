"""Torrent metadata: make it from a path, and read it from untrusted bytes.

Pure functions around libtorrent's torrent creation and parsing; the session lives in
:mod:`.session`. Torrents are v1+v2 hybrids: v2 gives per-file Merkle roots, v1 keeps them
usable by every client that joins an obt swarm through torsocks.

What a share publishes is chosen by :func:`select`, not by libtorrent's directory walk: no
symbolic link inside a shared folder is followed (it is refused, by name), hidden files and
folders are left out unless asked for, and the node's own state folder can never be shared.
"""

from __future__ import annotations

import dataclasses
import os
import stat
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


@dataclasses.dataclass(frozen=True)
class SharedFile:
    """One file a share publishes.

    :param path: relative to the shared path's parent folder (``folder/sub/name``)
    :param executable: carried in the torrent as the ``x`` attribute, as libtorrent does
    """

    path: str
    size: int
    executable: bool = False


@dataclasses.dataclass(frozen=True)
class Selection:
    """What sharing a path publishes, chosen before any byte is read.

    :param root: the shared file or folder, resolved
    :param files: the files, sorted by path
    :param hidden_skipped: hidden files and folders left out (a hidden folder counts once,
        whatever it holds)
    """

    root: Path
    files: tuple[SharedFile, ...]
    hidden_skipped: int = 0


@dataclasses.dataclass(frozen=True)
class Created:
    """A torrent made from a local path, and what was left out of it."""

    meta: Metainfo
    hidden_skipped: int = 0


_LINK_HINT = ("obt follows no symbolic link inside a shared folder (one could publish files "
              "from outside it). Put a copy of the file there, or share its target on its own.")


def check_shareable(path: Path, *, include_hidden: bool = False,
                    forbidden: tuple[Path, ...] = ()) -> Path:
    """Resolve ``path`` and make sure it can be shared (see :func:`select`).

    :returns: the resolved path
    :raises BadPath: as :func:`select`
    """
    return select(path, include_hidden=include_hidden, forbidden=forbidden).root


def select(path: Path, *, include_hidden: bool = False,
           forbidden: tuple[Path, ...] = ()) -> Selection:
    """Choose the files sharing ``path`` publishes (reads no file's content).

    ``path`` itself may be a symbolic link (it is resolved: the user named it), and a file
    named explicitly is shared even if hidden. Inside a folder, files and folders whose name
    starts with ``.`` are left out unless ``include_hidden``, and every symbolic link or
    special file is refused: nothing outside the folder is ever published.

    :param forbidden: folders never to publish, nor anything under them, nor any folder
        holding them (the node's home: its keys and state)
    :raises BadPath: missing, unreadable, a link or special file inside the folder, inside or
        holding a forbidden folder, too many files, or nothing to share
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise BadPath(f"{path}: no such file or folder", hint="Check the path and try again.")
    root = path.resolve()
    if not os.access(root, os.R_OK):
        raise BadPath(f"{root}: permission denied")
    _check_forbidden(root, forbidden)
    if root.is_file():
        return Selection(root, (_shared_file(root, root.name),))
    if not root.is_dir():
        raise BadPath(f"{root}: not a regular file or folder")
    files, hidden = _walk(root, include_hidden)
    if not files:
        raise BadPath(
            f"{root}: the folder has no files to share",
            hint=(f"{hidden} hidden file(s) or folder(s) were left out; --include-hidden "
                  "shares them." if hidden else None),
        )
    return Selection(root, tuple(sorted(files, key=lambda f: f.path)), hidden)


def _check_forbidden(root: Path, forbidden: tuple[Path, ...]) -> None:
    for folder in forbidden:
        folder = Path(folder).expanduser().resolve()
        if root == folder or folder in root.parents:
            raise BadPath(f"{root}: this is inside obt's own state folder {folder}",
                          hint="obt never shares its keys and state.")
        if root in folder.parents:
            raise BadPath(f"{root}: this folder holds obt's own state folder {folder} "
                          "(its keys)", hint="Share a folder that does not contain it.")


def _walk(root: Path, include_hidden: bool) -> tuple[list[SharedFile], int]:
    """Every regular file under ``root`` (no link followed), and the hidden entries skipped."""
    files: list[SharedFile] = []
    hidden = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise BadPath(f"{folder}: cannot read it: {exc.strerror or exc}") from exc
        for entry in entries:
            if entry.name.startswith(".") and not include_hidden:
                hidden += 1
            elif entry.is_symlink():
                raise BadPath(f"{entry.path}: a symbolic link (to {_link_target(entry.path)})",
                              hint=_LINK_HINT)
            elif entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                relative = Path(root.name) / Path(entry.path).relative_to(root)
                files.append(_shared_file(Path(entry.path), relative.as_posix()))
                if len(files) > MAX_FILES:
                    raise BadPath(f"{root}: more than {MAX_FILES} files to share",
                                  hint="Share a smaller folder.")
            else:
                raise BadPath(f"{entry.path}: not a regular file (a device, pipe or socket)",
                              hint="Move it out of the folder, or share the files around it.")
    return files, hidden


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _shared_file(path: Path, relative: str) -> SharedFile:
    try:
        st = path.stat(follow_symlinks=False)
    except OSError as exc:
        raise BadPath(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    if not os.access(path, os.R_OK):
        raise BadPath(f"{path}: permission denied")
    return SharedFile(relative, st.st_size, bool(st.st_mode & stat.S_IXUSR))


def create(path: Path, *, include_hidden: bool = False,
           forbidden: tuple[Path, ...] = ()) -> Metainfo:
    """Hash ``path`` (a file or a folder) into a hybrid v1+v2 torrent.

    Blocking (reads every byte): run it in a thread. See :func:`create_share`, which also
    says how many hidden files were left out.

    :raises BadPath: when the path cannot be shared or read
    """
    return create_share(path, include_hidden=include_hidden, forbidden=forbidden).meta


def create_share(path: Path, *, include_hidden: bool = False,
                 forbidden: tuple[Path, ...] = ()) -> Created:
    """Hash the files :func:`select` chose into a hybrid v1+v2 torrent.

    Blocking (reads every byte): run it in a thread. The torrent carries no creator and no
    creation date, so nothing in it names the client or the moment it was made. For a
    folder without hidden files the info-hash is the one ``lt.list_files`` would give (the
    same paths, sizes and executable bits; hybrid torrents order files canonically).

    :raises BadPath: when the path cannot be shared or read
    """
    chosen = select(path, include_hidden=include_hidden, forbidden=forbidden)
    executable = lt.file_storage.flag_executable
    try:
        creator = lt.create_torrent([
            lt.create_file_entry(f.path, f.size, executable if f.executable else 0)
            for f in chosen.files
        ])
        lt.set_piece_hashes(creator, str(chosen.root.parent))
        entry = creator.generate()
    except (RuntimeError, ValueError, UnicodeError) as exc:
        raise BadPath(f"{chosen.root}: cannot read it for sharing: {exc}") from exc
    for key in (b"created by", b"creation date", b"comment"):
        entry.pop(key, None)
    return Created(parse(lt.bencode(entry)), chosen.hidden_skipped)


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
