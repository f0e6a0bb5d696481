"""The release folder ``obt-<version>/``: building it, and checking that it holds exactly
the signed release.

A folder must hold exactly the signed files plus the manifest and its signature: no extras,
no subfolders and no symlinks; files are opened with ``O_NOFOLLOW`` and read no further
than their signed sizes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from onionshare_bt.errors import ReleaseRefused, UsageError

from .manifest import (
    MANIFEST,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_MANIFEST,
    PRODUCT,
    SIGNATURE,
    FileEntry,
    Manifest,
    _name_problem,
    _version_problem,
    encode_manifest,
    parse_manifest,
)
from .signing import SIGNATURE_SIZE, public_key, sign, verify_signature

CHUNK = 1024 * 1024


def _hash_stream(handle: BinaryIO, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 and length of a stream, reading at most ``limit`` bytes if given."""
    digest = hashlib.sha256()
    total = 0
    while True:
        want = CHUNK if limit is None else min(CHUNK, limit - total)
        if want <= 0:
            break
        chunk = handle.read(want)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


def sha256_file(path: Path) -> str:
    """The lowercase hex SHA-256 of a file, read in 1 MiB chunks."""
    with open(path, "rb") as handle:
        return _hash_stream(handle)[0]


def _open_regular(path: Path) -> BinaryIO | None:
    """Open ``path`` for reading without following a symlink; None if not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    handle = _open_regular(path)
    if handle is None:
        raise ReleaseRefused(f"the release has no readable {what}")
    with handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ReleaseRefused(f"the release {what} is too large")
    return data


# ---------------------------------------------------------------------------- releases


def make_release(files: list[Path], version: str, seed: bytes, out_dir: Path) -> Path:
    """Build a signed release folder ``out_dir/obt-<version>``.

    :param files: the release files (sdist and wheel); their basenames are kept
    :param version: the normalized PEP 440 version
    :param seed: the maintainer's 32-byte private key
    :param out_dir: where to create the release folder (created if missing)
    :returns: the release folder
    :raises UsageError: on a bad version, file, name or an existing folder
    """
    problem = _version_problem(version)
    if problem:
        raise UsageError(problem)
    signer = public_key(seed)
    paths = [Path(item) for item in files]
    if not paths:
        raise UsageError("a release needs at least one file")
    if len(paths) > MAX_FILES:
        raise UsageError(f"a release holds at most {MAX_FILES} files")
    seen: set[str] = set()
    for path in paths:
        problem = _name_problem(path.name)
        if problem:
            raise UsageError(f"{path}: {problem}")
        if path.name.casefold() in seen:
            raise UsageError(f"two release files are named {path.name}")
        seen.add(path.name.casefold())
        try:
            info = path.stat()
        except OSError:
            raise UsageError(f"{path} does not exist") from None
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path} is not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise UsageError(f"{path} is larger than {MAX_FILE_SIZE} bytes")
    folder = Path(out_dir) / f"{PRODUCT}-{version}"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        raise UsageError(f"{folder} already exists") from None
    try:
        entries = []
        for path in paths:
            target = folder / path.name
            shutil.copyfile(path, target)
            with open(target, "rb") as handle:  # describe what was written, not the source
                digest, size = _hash_stream(handle)
            if size > MAX_FILE_SIZE:
                raise UsageError(f"{path} is larger than {MAX_FILE_SIZE} bytes")
            entries.append(FileEntry(path.name, size, digest))
        raw = encode_manifest(version, entries)
        if len(raw) > MAX_MANIFEST:
            raise UsageError("the release manifest would be too large")
        (folder / MANIFEST).write_bytes(raw)
        (folder / SIGNATURE).write_bytes(sign(raw, seed))
        read_folder(folder, [signer])  # it must round-trip exactly as a node will check it
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _shown(name: str) -> str:
    """A hostile on-disk name, made safe and short for a message."""
    shown = repr(name)
    return shown if len(shown) <= 64 else shown[:60] + "...'"


def verify_folder(folder: Path, manifest: Manifest, signature: bytes) -> list[FileEntry]:
    """Check that ``folder`` holds exactly the signed release and nothing else.

    :param folder: the release folder
    :param manifest: the manifest (already signature-checked by the caller)
    :param signature: the signature the caller verified
    :returns: the manifest's entries
    :raises ReleaseRefused: naming the first file that is extra, missing or different
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise ReleaseRefused("the release folder is not a directory")
    expected = {entry.name for entry in manifest.files} | {MANIFEST, SIGNATURE}
    present: set[str] = set()
    with os.scandir(folder) as listing:
        for item in sorted(listing, key=lambda item: item.name):
            if item.is_symlink():
                raise ReleaseRefused(f"{_shown(item.name)} in the release folder is a symlink")
            if not item.is_file(follow_symlinks=False):
                raise ReleaseRefused(
                    f"{_shown(item.name)} in the release folder is not a regular file")
            if item.name not in expected:
                raise ReleaseRefused(
                    f"{_shown(item.name)} in the release folder is not in the signed manifest")
            present.add(item.name)
    missing = sorted(expected - present)
    if missing:
        raise ReleaseRefused(f"{missing[0]} is missing from the release folder")
    if _read_bounded(folder / MANIFEST, MAX_MANIFEST, "manifest") != manifest.raw:
        raise ReleaseRefused(f"{MANIFEST} does not match the signed manifest")
    if _read_bounded(folder / SIGNATURE, SIGNATURE_SIZE, "signature") != bytes(signature):
        raise ReleaseRefused(f"{SIGNATURE} does not match the verified signature")
    for entry in manifest.files:
        handle = _open_regular(folder / entry.name)
        if handle is None:
            raise ReleaseRefused(f"{entry.name} in the release folder is not a regular file")
        with handle:
            digest, size = _hash_stream(handle, limit=entry.size + 1)
        if size != entry.size:
            raise ReleaseRefused(f"{entry.name} does not match the signed manifest (size)")
        if digest != entry.sha256:
            raise ReleaseRefused(f"{entry.name} does not match the signed manifest (sha256)")
    return list(manifest.files)


def read_folder(folder: Path, keys: list[bytes]) -> Manifest:
    """Read and fully verify a release folder on disk.

    Checks the signature against ``keys``, parses the manifest, requires the folder to be
    named ``obt-<version>`` for the signed version, and runs :func:`verify_folder`.

    :param folder: the release folder
    :param keys: trusted raw 32-byte maintainer public keys
    :returns: the verified manifest
    :raises ReleaseRefused: if anything does not verify
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        raise ReleaseRefused("the release folder is not a directory")
    raw = _read_bounded(folder / MANIFEST, MAX_MANIFEST, "manifest")
    signature = _read_bounded(folder / SIGNATURE, SIGNATURE_SIZE, "signature")
    verify_signature(raw, signature, keys)
    manifest = parse_manifest(raw)
    if folder.name != manifest.folder:
        raise ReleaseRefused("the release folder's name does not match the signed version")
    verify_folder(folder, manifest, signature)
    return manifest
