"""Scanning what a share would publish, and staging cleaned copies of it in the node's home.

The files scanned are exactly those :func:`~onionshare_bt.engine.metainfo.select` chooses
(hidden files left out unless asked for, no symbolic link followed, the node's home never
shared). Cleaned copies go to ``<home>/staging/<random>/<name>`` (folders 0700, files 0600,
or 0700 when the original is executable); the originals are only ever read.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from pathlib import Path

from ..engine.metainfo import Selection, select
from ..errors import ScrubFailed
from .core import FileReport, Report
from .formats import _copy, _errors, clean_file, scan_file, sniff

STAGING = "staging"


def hidden_names(selection: Selection, include_hidden: bool) -> tuple[str, ...]:
    """The hidden files and folders a share of ``selection.root`` leaves out, by path in the
    share (a hidden folder once, not what it holds)."""
    root = selection.root
    if include_hidden or not root.is_dir():
        return ()
    names, pending = [], [root]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name.startswith("."):
                    names.append((Path(root.name) / Path(entry.path).relative_to(root))
                                 .as_posix())
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
    return tuple(sorted(names))


def scan_selection(selection: Selection, include_hidden: bool = False) -> Report:
    """Scan every file of ``selection`` (blocking: run it in a thread)."""
    base = selection.root.parent
    files = tuple(scan_file(base / f.path, f.path, f.size) for f in selection.files)
    return Report(files, hidden_names(selection, include_hidden))


def scan_path(path: Path, *, include_hidden: bool = False,
              forbidden: tuple[Path, ...] = ()) -> tuple[Selection, Report]:
    """Choose what sharing ``path`` publishes and scan it.

    :raises BadPath: as :func:`~onionshare_bt.engine.metainfo.select`
    """
    selection = select(path, include_hidden=include_hidden, forbidden=forbidden)
    return selection, scan_selection(selection, include_hidden)


@dataclasses.dataclass(frozen=True)
class Staged:
    """Cleaned copies of a share, ready to be shared from the node's staging folder.

    :param folder: ``<home>/staging/<random>``: delete it to delete the copies
    :param root: the copy of the shared file or folder, under its original name
    :param cleaned: paths (in the share) of the files whose metadata was removed
    :param copied: paths of the files copied as they are (formats obt does not clean)
    """

    folder: Path
    root: Path
    selection: Selection
    cleaned: tuple[str, ...]
    copied: tuple[str, ...]


def staging_root(home: Path) -> Path:
    return Path(home) / STAGING


def is_staged(path: Path, home: Path) -> bool:
    """Whether ``path`` lies in the node's staging folder (where only the node writes)."""
    path, root = Path(path).resolve(), staging_root(home).resolve()
    return path != root and root in path.parents


def stage_scrubbed(path: Path, home: Path, *, include_hidden: bool = False) -> Staged:
    """Copy what sharing ``path`` publishes into a new staging folder, cleaned.

    Blocking: run it in a thread. The copies are scanned again once written; if anything
    is still found, nothing is kept and :class:`ScrubFailed` says which files.

    :raises BadPath: as :func:`~onionshare_bt.engine.metainfo.select` (the home refused)
    :raises ScrubFailed: when a file cannot be cleaned
    """
    selection = select(path, include_hidden=include_hidden, forbidden=(home,))
    root = staging_root(home)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    folder = root / secrets.token_hex(12)
    folder.mkdir(mode=0o700)
    try:
        cleaned, copied = _write_copies(selection, folder)
        _verify(selection, folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Staged(folder, folder / selection.root.name, selection, cleaned, copied)


def _write_copies(selection: Selection, folder: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    base = selection.root.parent
    cleaned, copied = [], []
    for entry in selection.files:
        src, dst = base / entry.path, folder / entry.path
        _private_dirs(folder, Path(entry.path).parent)
        kind = sniff(src)
        try:
            done = clean_file(src, dst)
        except _errors(kind or ""):
            # the scan could not read it either and said so ("not checked"): as it is
            _copy(src, dst)
            done = None
        os.chmod(dst, 0o700 if entry.executable else 0o600)
        (cleaned if done else copied).append(entry.path)
    return tuple(cleaned), tuple(copied)


def _private_dirs(folder: Path, relative: Path) -> None:
    """Make ``folder/relative`` and every folder between, each 0700."""
    for part in relative.parts:
        folder = folder / part
        if not folder.is_dir():
            folder.mkdir(mode=0o700)


def _verify(selection: Selection, folder: Path) -> None:
    left: list[FileReport] = [scan_file(folder / f.path, f.path, f.size)
                              for f in selection.files]
    dirty = [r.path for r in left if r.findings]
    if dirty:
        raise ScrubFailed(f"metadata is still there after cleaning: {', '.join(dirty[:5])}",
                          hint="Nothing was shared. Share them with --keep-metadata, or "
                               "clean them with another tool first.")
