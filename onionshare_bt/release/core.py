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

The parts: :mod:`~onionshare_bt.release.manifest` (the manifest and its parser),
:mod:`~onionshare_bt.release.signing` (maintainer keys and signatures) and
:mod:`~onionshare_bt.release.folder` (building and checking a release folder). This module
chooses among offers (:func:`choose`) and is the face of the whole: every public name of the
parts is importable from it (:data:`__all__`).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from onionshare_bt.errors import ReleaseRefused

from .folder import CHUNK, make_release, read_folder, sha256_file, verify_folder
from .manifest import (
    MANIFEST,
    MAX_FILE_SIZE,
    MAX_FILES,
    MAX_MANIFEST,
    MAX_NAME,
    MAX_VERSION,
    PRODUCT,
    SIGNATURE,
    FileEntry,
    Manifest,
    _version_problem,
    encode_manifest,
    parse_manifest,
)
from .signing import (
    KEY_SIZE,
    SIGNATURE_SIZE,
    generate_seed,
    parse_public_key,
    public_key,
    read_key,
    sign,
    verify_signature,
    write_key,
)

__all__ = [
    "CHUNK", "KEY_SIZE", "MANIFEST", "MAX_FILE_SIZE", "MAX_FILES", "MAX_MANIFEST", "MAX_NAME",
    "MAX_VERSION", "PRODUCT", "SIGNATURE", "SIGNATURE_SIZE", "FileEntry", "Manifest",
    "choose", "encode_manifest", "generate_seed", "is_newer", "make_release",
    "parse_manifest", "parse_public_key", "public_key", "read_folder", "read_key",
    "sha256_file", "sign", "verify_folder", "verify_signature", "write_key",
]


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
