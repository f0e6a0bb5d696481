"""A torrent stripped to what libtorrent may see of it.

Only a torrent's ``info`` dict (and v2 ``piece layers``) reaches libtorrent: announce URLs,
web seeds, HTTP seeds and DHT nodes of a .torrent (:func:`bare_torrent`) or of resume data
(:func:`_forget_network`) never do, so no .torrent can make libtorrent resolve or contact a
name.
"""

from __future__ import annotations

import warnings

import libtorrent as lt

from ..errors import TorrentError
from .metainfo import MAX_DECODE_DEPTH, MAX_DECODE_TOKENS, MAX_PIECES, MAX_TORRENT_BYTES

_LIMITS = {
    "max_buffer_size": MAX_TORRENT_BYTES,
    "max_pieces": MAX_PIECES,
    "max_decode_depth": MAX_DECODE_DEPTH,
    "max_decode_tokens": MAX_DECODE_TOKENS,
}


def _hashes(info: lt.torrent_info) -> tuple[bytes, ...]:
    hashes = info.info_hashes()
    out = []
    if hashes.has_v1():
        out.append(hashes.v1.to_bytes())
    if hashes.has_v2():
        out.append(hashes.v2.to_bytes())
    return tuple(out)


def bare_torrent(data: bytes) -> tuple[bytes, lt.torrent_info]:
    """Rebuild .torrent bytes from their ``info`` dict (and ``piece layers``) only.

    The ``info`` value is copied byte for byte, so the info-hashes cannot change (and are
    checked); ``announce``, ``announce-list``, ``url-list``, ``httpseeds``, ``nodes`` and
    every other top-level key are gone.

    :returns: the new bytes and libtorrent's parse of them
    :raises TorrentError: when the bytes do not parse, or the rebuilt torrent still names a
        tracker, web seed or DHT node, or its info-hashes differ
    """
    try:
        original = lt.torrent_info(data, _LIMITS)
        top = lt.bdecode(data)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise TorrentError(f"the .torrent is not valid: {exc}") from exc
    parts = [b"d4:info", bytes(original.info_section())]
    layers = top.get(b"piece layers") if isinstance(top, dict) else None
    if isinstance(layers, dict) and layers:
        parts += [b"12:piece layers", lt.bencode(layers)]
    bare = b"".join(parts) + b"e"
    try:
        info = lt.torrent_info(bare, _LIMITS)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise TorrentError(f"the .torrent's info dict does not stand alone: {exc}") from exc
    with warnings.catch_warnings():  # trackers(), web_seeds(), nodes() are deprecated in 2.1
        warnings.simplefilter("ignore", DeprecationWarning)
        named = list(info.trackers()), list(info.web_seeds()), list(info.nodes())
    if any(named):
        raise TorrentError("the rebuilt torrent still names trackers, web seeds or DHT nodes")
    if _hashes(info) != _hashes(original):
        raise TorrentError("rebuilding the torrent changed its info-hashes")
    return bare, info


def _forget_network(params: lt.add_torrent_params) -> None:
    """Clear what resume data (or a .torrent) may carry about the network."""
    params.trackers = []
    params.tracker_tiers = []
    params.trackerid = ""
    params.url_seeds = []
    params.http_seeds = []
    params.dht_nodes = []
    # earlier endpoints: their addresses mean nothing (or another onion) in this node life
    params.peers = []
    params.banned_peers = []

