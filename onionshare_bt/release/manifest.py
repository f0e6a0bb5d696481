"""The release manifest: what it lists, its canonical bytes, and its strict parser.

The manifest lists every release file with its size and SHA-256; it comes from untrusted
peers, so it is bounded (:data:`MAX_MANIFEST`), strict UTF-8 JSON with no duplicate or
unknown keys, and every field is validated: the version is a *normalized* PEP 440 version,
file names are plain printable-ASCII basenames, unique even ignoring case. Refusals carry
fixed short messages and never echo the input.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from packaging.version import InvalidVersion, Version

from onionshare_bt.errors import ReleaseRefused

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MANIFEST = 64 * 1024
MAX_FILES = 16
MAX_FILE_SIZE = 512 * 1024 * 1024
PRODUCT = "obt"

MAX_VERSION = 64
MAX_NAME = 128

_HEX = frozenset("0123456789abcdef")
_RESERVED = frozenset({MANIFEST.casefold(), SIGNATURE.casefold()})
_TOP_KEYS = frozenset({"product", "version", "files"})
_ENTRY_KEYS = frozenset({"name", "size", "sha256"})


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
