"""Maintainer keys and signatures: ed25519 keys, signing and checking manifest bytes.

A private key is a 32-byte seed, kept as hex in a file readable by its owner only; a public
key is the raw 32 bytes, given as 64 hex characters (the trusted ones are
:data:`onionshare_bt.release.keys.MAINTAINER_KEYS`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from onionshare_bt.errors import ReleaseRefused, UsageError
from onionshare_bt.text import hex_bytes

SIGNATURE_SIZE = 64
KEY_SIZE = 32

_BAD_SIGNATURE = "the release's signature does not verify with any trusted maintainer key"


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
