"""Tor v3 onion addresses: parse, validate and derive them (pure, no I/O; imports only
:mod:`.errors`). Every part that reads an address reads it here.

A v3 address is the base32 encoding of 35 bytes, ``pubkey (32) || checksum (2) ||
version (1)``, where ``checksum = SHA3-256(".onion checksum" || pubkey || version)[:2]``
and ``version`` is 3 (rend-spec-v3, "Encoding onion addresses"). Throughout obt an
address is the 56 lowercase characters *without* the ``.onion`` suffix.
"""

from __future__ import annotations

import base64
import hashlib
import re

from .errors import BadOnionAddress

__all__ = ["ADDRESS_LENGTH", "MAX_ONIONS", "exact_onion", "is_onion", "onion_from_pubkey", "parse_onion",
           "pubkey_from_onion"]

#: characters in a v3 address, without ``.onion``
ADDRESS_LENGTH = 56
#: the most onion services one share is served on (its K)
MAX_ONIONS = 8
_V2_LENGTH = 16
_VERSION = 3
_CHECKSUM_PREFIX = b".onion checksum"
_BASE32 = re.compile(r"[a-z2-7]*")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _checksum(pubkey: bytes, version: int) -> bytes:
    return hashlib.sha3_256(_CHECKSUM_PREFIX + pubkey + bytes([version])).digest()[:2]


def onion_from_pubkey(pubkey: bytes) -> str:
    """Derive the v3 address of an ed25519 public key.

    :param pubkey: the service's 32-byte ed25519 public key
    :returns: the 56-character lowercase address, without ``.onion``
    :raises ValueError: if **pubkey** is not 32 bytes (a programming error)
    """
    if len(pubkey) != 32:
        raise ValueError(f"an ed25519 public key is 32 bytes, not {len(pubkey)}")
    raw = pubkey + _checksum(pubkey, _VERSION) + bytes([_VERSION])
    return base64.b32encode(raw).decode("ascii").lower()


def _host_of(text: str) -> str:
    """Reduce a URL, ``host:port`` or bare host to its lowercase host name."""
    host = text.strip().lower()
    host = _SCHEME.sub("", host, count=1)
    for sep in "/?#":
        host = host.split(sep, 1)[0]
    host = host.rsplit("@", 1)[-1]
    host = host.split(":", 1)[0]
    return host.rstrip(".")


def _validate(label: str) -> str:
    """Check a bare label (no ``.onion``) and return it; raise naming the failed check."""
    if len(label) == _V2_LENGTH:
        raise BadOnionAddress(
            "v2 addresses (16 characters) are no longer supported; a v3 address has 56"
        )
    if len(label) != ADDRESS_LENGTH:
        raise BadOnionAddress(
            f"wrong length: a v3 onion address has 56 characters, this one has {len(label)}"
        )
    if not _BASE32.fullmatch(label):
        raise BadOnionAddress("not base32: a v3 onion address uses only a-z and 2-7")
    raw = base64.b32decode(label.upper())
    pubkey, checksum, version = raw[:32], raw[32:34], raw[34]
    if version != _VERSION:
        raise BadOnionAddress(f"wrong version byte: {version} (a v3 address has 3)")
    if checksum != _checksum(pubkey, version):
        raise BadOnionAddress("bad checksum: the address is mistyped or truncated")
    return label


def parse_onion(text: str) -> str:
    """Extract and validate a v3 onion address.

    Accepts ``<addr>.onion``, any case, with or without a URL scheme, user info, port,
    path, query or a subdomain (``www.<addr>.onion``), or the bare 56 characters.

    :param text: what the user or a peer gave us
    :returns: the 56-character lowercase address, without ``.onion``
    :raises BadOnionAddress: naming the check that failed (length, v2, base32, version,
      checksum)
    """
    host = _host_of(text)
    if not host:
        raise BadOnionAddress("empty address")
    if host.endswith(".onion"):
        host = host[: -len(".onion")].rsplit(".", 1)[-1]
    elif "." in host:
        raise BadOnionAddress(f"not an onion address: {host!r} does not end in .onion")
    return _validate(host)


def is_onion(text: str) -> bool:
    """Tell whether **text** is exactly a valid v3 address, with or without ``.onion``.

    :param text: a candidate address (no scheme, port or path)
    :returns: True for a valid 56-character v3 address
    """
    label = text.strip().lower()
    if label.endswith(".onion"):
        label = label[: -len(".onion")]
    try:
        _validate(label)
    except BadOnionAddress:
        return False
    return True


def exact_onion(value: object, *, suffix: bool = False) -> str | None:
    """Read an address from the network strictly: exactly the 56 characters, nothing around.

    Unlike :func:`is_onion`, no surrounding space is forgiven, nor a second ``.onion``: what
    passes here is stored and handed on to other nodes as it is.

    :param value: a candidate (anything; only a ``str`` can pass)
    :param suffix: also accept the 56 characters followed by one ``.onion``
    :returns: the 56-character lowercase address, or None if **value** is not exactly one
    """
    if not isinstance(value, str):
        return None
    label = value.lower()
    if suffix:
        label = label.removesuffix(".onion")
    if len(label) != ADDRESS_LENGTH:
        return None
    try:
        return _validate(label)
    except BadOnionAddress:
        return None


def pubkey_from_onion(address: str) -> bytes:
    """Return the ed25519 public key inside a v3 address.

    :param address: a v3 address in any form :func:`parse_onion` accepts
    :returns: the 32-byte public key
    :raises BadOnionAddress: if the address is not a valid v3 address
    """
    return base64.b32decode(parse_onion(address).upper())[:32]
