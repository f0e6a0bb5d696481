"""The .torrent a share's tracker serves: its ``info`` as stored, and its trackers named.

A standard BitTorrent client needs the trackers in the .torrent (``announce`` and BEP 12's
``announce-list``); obt needs none of them (its engine keeps a torrent's ``info`` alone). The
stored .torrent is rebuilt around its ``info`` and ``piece layers`` values copied byte for
byte, so the info-hashes cannot change; every other top-level key (trackers, web seeds, DHT
nodes, comments that a copied .torrent might carry) is left out. Pure: no I/O.

aria2 before 1.37 (Debian 12's 1.36 among them) drops every empty dictionary key when it
reads a .torrent and hashes the ``info`` dict it re-encodes, so for a v1+v2 hybrid (whose v2
``file tree`` has an empty key at every file) it computes an info-hash of its own
(:func:`legacy_info_hash`). The tracker and the inbound bridges take that hash as another
name of the torrent, so such a client still finds the swarm.
"""

from __future__ import annotations

import hashlib

import bencodepy

from ..onion import MAX_ONIONS, exact_onion

__all__ = ["MAX_DEPTH", "announce_url", "legacy_info_hash", "share_onions", "top_level",
           "with_trackers"]

#: nesting a stored .torrent may have (libtorrent parsed it with a limit of 64)
MAX_DEPTH = 100
#: top-level keys kept from the stored .torrent; the rest are left out
KEPT = (b"info", b"piece layers")


def announce_url(onion: str, token: str) -> str:
    """The announce URL of a share's tracker behind ``onion`` (56 chars, no ".onion")."""
    return f"http://{onion}.onion/private/{token}/announce"


def _skip(data: bytes, pos: int) -> int:
    """The end of the bencoded value that starts at ``pos``.

    :raises ValueError: not bencode, or nested deeper than :data:`MAX_DEPTH`
    """
    depth = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated bencode")
        c = data[pos]
        if c in b"ld":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError("bencode nested too deep")
            pos += 1
            continue
        if c == ord("e"):
            if depth == 0:
                raise ValueError("unexpected end marker")
            depth -= 1
            pos += 1
        elif c == ord("i"):
            end = data.index(b"e", pos)
            pos = end + 1
        elif 48 <= c <= 57:
            colon = data.index(b":", pos)
            length = data[pos:colon]
            if not length.isdigit():
                raise ValueError("bad string length")
            pos = colon + 1 + int(length)
            if pos > len(data):
                raise ValueError("truncated string")
        else:
            raise ValueError("not bencode")
        if depth == 0:
            return pos


def top_level(data: bytes) -> dict[bytes, bytes]:
    """The raw bencoded value of every key of a bencoded dictionary, byte for byte.

    :raises ValueError: when ``data`` is not one bencoded dictionary with string keys
    """
    if not data.startswith(b"d"):
        raise ValueError("not a bencoded dictionary")
    out: dict[bytes, bytes] = {}
    pos = 1
    while pos < len(data) and data[pos] != ord("e"):
        if not 48 <= data[pos] <= 57:
            raise ValueError("dictionary key is not a string")
        key_end = _skip(data, pos)
        key = data[data.index(b":", pos) + 1:key_end]
        value_end = _skip(data, key_end)
        out[key] = data[key_end:value_end]
        pos = value_end
    if pos != len(data) - 1:
        raise ValueError("trailing bytes after the dictionary")
    return out


def with_trackers(torrent: bytes, tiers: list[list[str]]) -> bytes:
    """``torrent`` with ``tiers`` of announce URLs (BEP 12) and nothing else added.

    ``announce`` is the first URL (clients that read no ``announce-list`` use it); empty
    tiers are dropped and a URL is named once. With no URL at all the .torrent has neither
    key. The ``info`` value is copied byte for byte: the info-hashes do not change.

    :raises ValueError: when ``torrent`` is not a bencoded dictionary with an ``info`` key
    """
    values = top_level(torrent)
    if b"info" not in values:
        raise ValueError("the .torrent has no info dictionary")
    seen: set[str] = set()
    kept_tiers: list[list[bytes]] = []
    for tier in tiers:
        urls = [u for u in dict.fromkeys(tier) if u not in seen]
        seen.update(urls)
        if urls:
            kept_tiers.append([u.encode() for u in urls])
    parts = [b"d"]
    if kept_tiers:  # keys in sorted order: announce < announce-list < info < piece layers
        parts += [bencodepy.encode(b"announce"), bencodepy.encode(kept_tiers[0][0]),
                  bencodepy.encode(b"announce-list"), bencodepy.encode(kept_tiers)]
    for key in KEPT:
        if key in values:
            parts += [bencodepy.encode(key), values[key]]
    parts.append(b"e")
    return b"".join(parts)


def share_onions(torrent: bytes, token: str) -> list[str]:
    """The share's own onions as a .torrent its tracker served names them: the first tier of
    ``announce-list``, each URL exactly :func:`announce_url` for ``token`` (each of a share's
    onions serves its tracker and its peers). At most :data:`~onionshare_bt.onion.MAX_ONIONS`;
    anything else in the tier, or a .torrent that cannot be read so far, names none.
    A hostile share may name any onion here, as its announce replies could.
    """
    try:
        raw = top_level(torrent).get(b"announce-list")
        tiers = bencodepy.decode(raw) if raw is not None else []
    except (ValueError, TypeError, RecursionError, bencodepy.BencodeDecodeError):
        return []
    if not isinstance(tiers, list) or not tiers or not isinstance(tiers[0], list):
        return []
    onions: list[str] = []
    for url in tiers[0][:MAX_ONIONS]:
        if not isinstance(url, bytes):
            return []
        text = url.decode("ascii", "replace")
        onion = exact_onion(text[len("http://"):].split(".onion/", 1)[0])
        if onion is None or text != announce_url(onion, token):
            return []
        if onion not in onions:
            onions.append(onion)
    return onions


def _without_empty_keys(value):
    if isinstance(value, dict):
        return {k: _without_empty_keys(v) for k, v in value.items() if k != b""}
    if isinstance(value, list):
        return [_without_empty_keys(v) for v in value]
    return value


def legacy_info_hash(torrent: bytes) -> bytes | None:
    """The info-hash aria2 before 1.37 computes for ``torrent``: SHA-1 of its ``info`` dict
    re-encoded without empty keys. None when that is the real v1 info-hash (a torrent
    without empty keys), or when ``torrent`` has no readable ``info`` dict.
    """
    try:
        raw = top_level(torrent).get(b"info")
        if raw is None:
            return None
        stripped = bencodepy.encode(_without_empty_keys(bencodepy.decode(raw)))
    except (ValueError, TypeError, RecursionError, bencodepy.BencodeDecodeError):
        return None
    legacy = hashlib.sha1(stripped).digest()
    return None if legacy == hashlib.sha1(raw).digest() else legacy
