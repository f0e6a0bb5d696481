"""Signed obt releases as a pure core: the manifest, its signature, and the release folder.

A release is a folder ``obt-<version>/`` holding the release files (the sdist and the wheel,
plain basenames) plus :data:`MANIFEST` and :data:`SIGNATURE`. The manifest lists every file
with its size and SHA-256 and is signed with an ed25519 maintainer key. Nodes fetch releases
from untrusted peers, so every input here is hostile:

- the manifest is bounded (:data:`MAX_MANIFEST`), strict UTF-8 JSON with no duplicate or
  unknown keys, and every field is validated; refusals carry fixed short messages and never
  echo the input;
- the version must be a *normalized* PEP 440 version (``str(Version(v)) == v``), so the
  folder name ``obt-<version>`` is made of safe characters only;
- file names are plain printable-ASCII basenames, unique even ignoring case;
- a folder must hold exactly the signed files, no extras, no subfolders and no symlinks, and
  files are opened with ``O_NOFOLLOW``.

Nothing here executes or installs anything, and there is no network I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from packaging.version import InvalidVersion, Version

from onionshare_bt.errors import ReleaseRefused, UsageError
from onionshare_bt.text import hex_bytes

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST = 64 * 1024
MAX_FILES = 16
MAX_FILE_SIZE = 512 * 1024 * 1024
PRODUCT = "obt"

MAX_VERSION = 64
MAX_NAME = 128
SIGNATURE_SIZE = 64
KEY_SIZE = 32
CHUNK = 1024 * 1024

_HEX = frozenset("0123456789abcdef")
_RESERVED = frozenset({MANIFEST.casefold(), SIGNATURE.casefold()})
_TOP_KEYS = frozenset({"product", "version", "files"})
_ENTRY_KEYS = frozenset({"name", "size", "sha256"})
_BAD_SIGNATURE = "the release's signature does not verify with any trusted maintainer key"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One release file as the manifest lists it."""

    name: str  # a safe plain basename
    size: int  # bytes
    sha256: str  # 64 lowercase hex characters


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest and the exact bytes that were signed."""

    version: str
    files: tuple[FileEntry, ...]
    raw: bytes

    @property
    def folder(self) -> str:
        """The release folder's name, ``obt-<version>``."""
        return f"{PRODUCT}-{self.version}"


# ---------------------------------------------------------------------------- validation


def _version_problem(version: object) -> str | None:
    """Why ``version`` is not an acceptable release version, or None if it is."""
    if not isinstance(version, str) or not version:
        return "the release version is missing or not a string"
    if len(version) > MAX_VERSION:
        return "the release version is too long"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return "the release version is not a valid PEP 440 version"
    if str(parsed) != version:
        return "the release version is not a normalized PEP 440 version"
    return None


def _name_problem(name: object) -> str | None:
    """Why ``name`` is not a safe plain basename for a release file, or None if it is."""
    if not isinstance(name, str):
        return "a release file name is not a string"
    if not 1 <= len(name) <= MAX_NAME:
        return "a release file name is empty or too long"
    if any(not " " <= char <= "~" for char in name):
        return "a release file name has characters outside printable ASCII"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return "a release file name is not a plain basename"
    if name.casefold() in _RESERVED:
        return "a release file name is reserved for the manifest or its signature"
    return None


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def _is_size(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and 0 <= value <= MAX_FILE_SIZE)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses JSON objects with a key given twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ReleaseRefused("the release manifest has a duplicate key")
        result[key] = value
    return result


def _no_constant(_: str) -> Any:
    raise ReleaseRefused("the release manifest is not valid JSON")


# ---------------------------------------------------------------------------- manifest


def encode_manifest(version: str, files: list[FileEntry]) -> bytes:
    """The canonical manifest bytes for ``version`` and ``files`` (sorted by name).

    :param version: the release version
    :param files: the release files (not including the manifest and signature)
    :returns: compact, key-sorted, ASCII-only JSON
    """
    document = {
        "product": PRODUCT,
        "version": version,
        "files": [{"name": entry.name, "size": entry.size, "sha256": entry.sha256}
                  for entry in sorted(files, key=lambda entry: entry.name)],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


def parse_manifest(raw: bytes) -> Manifest:
    """Parse and strictly validate manifest bytes.

    :param raw: the manifest exactly as signed
    :returns: the manifest, keeping ``raw``
    :raises ReleaseRefused: with a fixed short message if anything is off
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise ReleaseRefused("the release manifest is not bytes")
    raw = bytes(raw)
    if len(raw) > MAX_MANIFEST:
        raise ReleaseRefused("the release manifest is too large")
    try:
        text = raw.decode("utf-8")
        document = json.loads(text, object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constant)
    except ReleaseRefused:
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise ReleaseRefused("the release manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise ReleaseRefused("the release manifest is not a JSON object")
    if set(document) != _TOP_KEYS:
        raise ReleaseRefused("the release manifest has missing or unknown fields")
    if document["product"] != PRODUCT:
        raise ReleaseRefused("the release manifest is not for obt")
    version = document["version"]
    problem = _version_problem(version)
    if problem:
        raise ReleaseRefused(problem)
    listed = document["files"]
    if not isinstance(listed, list) or not listed:
        raise ReleaseRefused("the release manifest lists no files")
    if len(listed) > MAX_FILES:
        raise ReleaseRefused("the release manifest lists too many files")
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for item in listed:
        if not isinstance(item, dict) or set(item) != _ENTRY_KEYS:
            raise ReleaseRefused("a release manifest entry has missing or unknown fields")
        name, size, digest = item["name"], item["size"], item["sha256"]
        problem = _name_problem(name)
        if problem:
            raise ReleaseRefused(problem)
        if name.casefold() in seen:
            raise ReleaseRefused("the release manifest lists a file name twice")
        seen.add(name.casefold())
        if not _is_size(size):
            raise ReleaseRefused("a release file size is not a valid size")
        if not _is_sha256(digest):
            raise ReleaseRefused("a release file sha256 is not 64 lowercase hex characters")
        entries.append(FileEntry(name, size, digest))
    return Manifest(version=version, files=tuple(entries), raw=raw)


# ---------------------------------------------------------------------------- keys


def generate_seed() -> bytes:
    """A fresh ed25519 private key: 32 random bytes."""
    return secrets.token_bytes(KEY_SIZE)


def _private(seed: bytes) -> Ed25519PrivateKey:
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != KEY_SIZE:
        raise UsageError("a maintainer private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(bytes(seed))


def public_key(seed: bytes) -> bytes:
    """The raw 32-byte ed25519 public key of a private ``seed``.

    :raises UsageError: if ``seed`` is not 32 bytes
    """
    return _private(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(raw: bytes, seed: bytes) -> bytes:
    """Sign manifest bytes.

    :param raw: the manifest bytes
    :param seed: the 32-byte ed25519 private key
    :returns: the 64-byte signature
    """
    return _private(seed).sign(bytes(raw))


def verify_signature(raw: bytes, signature: bytes, keys: list[bytes]) -> bytes:
    """Check ``signature`` over ``raw`` against each trusted key.

    :param raw: the manifest bytes
    :param signature: the 64-byte ed25519 signature
    :param keys: raw 32-byte public keys (malformed ones are skipped)
    :returns: the key that verified
    :raises ReleaseRefused: if no key verifies (also for a malformed signature or no keys)
    """
    if (not isinstance(raw, (bytes, bytearray))
            or not isinstance(signature, (bytes, bytearray))
            or len(signature) != SIGNATURE_SIZE):
        raise ReleaseRefused(_BAD_SIGNATURE)
    for key in keys:
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(bytes(key)).verify(bytes(signature), bytes(raw))
        except (InvalidSignature, ValueError):
            continue
        return bytes(key)
    raise ReleaseRefused(_BAD_SIGNATURE)


def _hex_key(text: str) -> bytes | None:
    return hex_bytes(text, KEY_SIZE)


def parse_public_key(text: str) -> bytes:
    """A public key given as 64 hex characters (surrounding whitespace ignored).

    :returns: the raw 32-byte key
    :raises UsageError: if ``text`` is not 64 hex characters
    """
    key = _hex_key(text) if isinstance(text, str) else None
    if key is None:
        raise UsageError("a maintainer public key is 64 hex characters")
    return key


def write_key(path: Path, seed: bytes) -> None:
    """Write a private key as hex to a new file readable by its owner only (mode 0600).

    :raises UsageError: if ``path`` already exists or cannot be created
    """
    _private(seed)  # validates the length
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise UsageError(f"cannot create the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(bytes(seed).hex() + "\n")


def read_key(path: Path) -> bytes:
    """Read a private key written by :func:`write_key`.

    :returns: the 32-byte seed
    :raises UsageError: if the file is missing, unreadable or not 64 hex characters
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(1024)
    except FileNotFoundError:
        raise UsageError(f"the key file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read the key file {path}: {exc.strerror}") from None
    try:
        key = _hex_key(data.decode("ascii"))
    except UnicodeDecodeError:
        key = None
    if key is None:
        raise UsageError(f"the key file {path} does not hold a key (64 hex characters)")
    return key


# ---------------------------------------------------------------------------- files


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


# ---------------------------------------------------------------------------- choosing


def is_newer(candidate: str, current: str) -> bool:
    """Whether ``candidate`` is a later version than ``current`` (PEP 440 ordering).

    Pre-releases order before their release (``1.0rc1 < 1.0``). False if either is not a
    valid version.
    """
    try:
        return Version(candidate) > Version(current)
    except (InvalidVersion, TypeError):
        return False


def choose(offers: list[dict], current: str,
           keys: list[bytes]) -> tuple[dict | None, list[dict]]:
    """Pick the best release among offers from untrusted peers.

    An offer is ``{"source", "version", "manifest", "signature"}``. Offers not newer than
    ``current`` are ignored. The others must have a valid version, a signature that verifies
    with one of ``keys``, a manifest that parses, and a signed version equal to the offered
    one; those that fail are reported.

    :returns: ``(best, refused)``: the valid offer with the highest version (the first one
        offered on a tie), or None; and ``{"source", "version", "reason"}`` per failed offer
    """
    best: dict | None = None
    best_version: Version | None = None
    refused: list[dict] = []
    for offer in offers:
        if not isinstance(offer, dict):
            refused.append({"source": "", "version": "", "reason": "the offer is malformed"})
            continue
        source = str(offer.get("source", ""))
        version = offer.get("version")
        shown = str(version)[:MAX_VERSION]
        problem = _version_problem(version)
        if problem:
            refused.append({"source": source, "version": shown, "reason": problem})
            continue
        if not is_newer(version, current):
            continue
        try:
            verify_signature(offer.get("manifest"), offer.get("signature"), keys)
            manifest = parse_manifest(offer.get("manifest"))
            if manifest.version != version:
                raise ReleaseRefused(
                    "the signed manifest is for a different version than offered")
        except ReleaseRefused as exc:
            refused.append({"source": source, "version": shown, "reason": exc.message})
            continue
        parsed = Version(version)
        if best_version is None or parsed > best_version:
            best, best_version = offer, parsed
    return best, refused
