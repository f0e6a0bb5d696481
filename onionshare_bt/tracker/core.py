"""The tracker's protocol, apart from any I/O.

Announce requests are BEP 3 queries with one difference: the peer's address is its onion
(``ip=<56 chars>.onion``), never an IP, and replies always use non-compact peer dicts
``{"ip": "<onion>.onion", "port": N}``. Nothing here reads a clock: callers pass ``now``.

Three kinds of announcer (:class:`Announce`):

- a *peer*: ``ip=<onion>.onion`` and ``port``; listed to others (every obt node);
- an *observer*: neither ``ip`` nor ``port``; given seeders only, never listed or counted
  (an obt release still being checked);
- an *unreachable* client: ``port`` but no ``ip``, as a standard BitTorrent client under
  torsocks sends (nobody can dial it). Only an *open* share admits it: it gets every peer,
  seeders first, is never listed and is counted as a leecher; a closed share refuses it with
  :data:`CLOSED_REASON`.

A share's .torrent as served (:func:`.metafile.with_trackers`) names the share's trackers in
``announce`` and ``announce-list``, outside ``info``: the info-hash does not change.

Everything here faces the network: a query may hold anything, so every refusal is an
:class:`AnnounceError` whose message is a fixed text (never an echo of the input), and the
swarm keeps at most :data:`MAX_PEERS` peers per torrent, however many onions announce.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

import bencodepy

from ..text import safe_text
from ..onion import exact_onion
from .announce import Announce
from .peers import MAX_MERGE, MAX_PEERS, PeerTable

__all__ = ["CLOSED_REASON", "MAX_MERGE", "MAX_PEERS", "Announce", "AnnounceError", "Reply",
           "ReplyError", "PeerTable", "admit", "failure", "parse_announce", "parse_query",
           "parse_reply", "reply"]

MAX_QUERY = 4096
MAX_PARAMS = 32
MAX_NUMWANT = 200
DEFAULT_NUMWANT = 50
MAX_REPLY = 1024 * 1024
EVENTS = {"", "started", "completed", "stopped", "empty"}
#: parameters a refusal may name; any other key is the sender's text and is not echoed
KNOWN_PARAMS = {
    "info_hash", "peer_id", "ip", "port", "uploaded", "downloaded", "left", "event",
    "numwant", "compact", "no_peer_id", "key", "trackerid", "corrupt", "supportcrypto",
}
_DIGITS = re.compile(r"[0-9]{1,19}")
#: what a closed share answers a client that announces no onion (standard clients show it)
CLOSED_REASON = ("this share admits obt nodes only; its sharer can open it to other "
                 "BitTorrent clients (obt publish --open)")


class AnnounceError(ValueError):
    """An announce the tracker refuses; the message goes back as ``failure reason``."""


def _int(params: dict, key: str, default: int | None = None, hi: int = 2**63 - 1) -> int:
    raw = params.get(key)
    if raw is None:
        if default is None:
            raise AnnounceError(f"missing {key}")
        return default
    # not str.isdigit(): it also accepts "²" and other digits int() refuses
    if not _DIGITS.fullmatch(raw):
        raise AnnounceError(f"{key} must be a non-negative integer")
    value = int(raw)
    if value > hi:
        raise AnnounceError(f"{key} is out of range")
    return value


def _bytes20(params: dict, key: str) -> bytes:
    try:
        value = params.get(key, "").encode("latin-1")
    except UnicodeEncodeError:
        value = b""
    if len(value) != 20:
        raise AnnounceError(f"{key} must be 20 bytes")
    return value


def parse_query(query: str) -> dict[str, str]:
    """Split a raw query string; values are latin-1 strings so binary hashes survive.

    :raises AnnounceError: too long, too many or repeated parameters
    """
    if len(query) > MAX_QUERY:
        raise AnnounceError("query too long")
    try:
        pairs = urllib.parse.parse_qsl(
            query, keep_blank_values=True, encoding="latin-1", max_num_fields=MAX_PARAMS
        )
    except ValueError as exc:
        raise AnnounceError("too many parameters") from exc
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            named = f" {key}" if key in KNOWN_PARAMS else ""
            raise AnnounceError(f"repeated parameter{named}")
        params[key] = value
    return params


def parse_announce(query: str) -> Announce:
    """Validate an announce query string.

    :raises AnnounceError: with the reason to send back
    """
    params = parse_query(query)
    info_hash = _bytes20(params, "info_hash")
    peer_id = _bytes20(params, "peer_id")
    if "ip" not in params and "port" not in params:
        # an observer: it asks for peers and is not listed (a release still being checked)
        host, port = "", 0
    elif "ip" not in params:
        # a client that cannot be reached (under torsocks): only an open share admits it
        host, port = "", _int(params, "port", hi=65535)
        if port == 0:
            raise AnnounceError("port must be between 1 and 65535")
    else:
        # exactly 56 characters: spaces or a second ".onion" would be stored and handed to
        # every other peer
        host = exact_onion(params.get("ip", ""), suffix=True)
        if host is None:
            raise AnnounceError("ip must be a v3 onion address")
        port = _int(params, "port", hi=65535)
        if port == 0:
            raise AnnounceError("port must be between 1 and 65535")
    event = params.get("event", "")
    if event not in EVENTS:
        raise AnnounceError("unknown event")
    return Announce(
        info_hash=info_hash,
        peer_id=peer_id,
        onion=host,
        port=port,
        uploaded=_int(params, "uploaded", 0),
        downloaded=_int(params, "downloaded", 0),
        left=_int(params, "left", 0),
        event=event,
        numwant=min(_int(params, "numwant", DEFAULT_NUMWANT), MAX_NUMWANT),
    )


def admit(announce: Announce, open_share: bool) -> None:
    """Check that the share admits ``announce``'s kind of announcer.

    :raises AnnounceError: :data:`CLOSED_REASON`, for an unreachable client of a closed share
    """
    if announce.unreachable and not open_share:
        raise AnnounceError(CLOSED_REASON)


#: reply key naming other trackers (mirrors) of the same share, by onion; same token
TRACKERS_KEY = b"x-obt-trackers"
MAX_TRACKERS = 8


def reply(peers: list[tuple[str, int]], interval: int, complete: int, incomplete: int,
          trackers: list[str] = ()) -> bytes:
    body = {
        b"interval": interval,
        b"min interval": max(1, interval // 2),
        b"complete": complete,
        b"incomplete": incomplete,
        b"peers": [{b"ip": f"{o}.onion".encode(), b"port": p} for o, p in peers],
    }
    if trackers:
        body[TRACKERS_KEY] = [f"{o}.onion".encode() for o in trackers[:MAX_TRACKERS]]
    return bencodepy.encode(body)


def failure(reason: str) -> bytes:
    return bencodepy.encode({b"failure reason": reason.encode()})


@dataclasses.dataclass(frozen=True)
class Reply:
    interval: int
    peers: tuple[tuple[str, int], ...]
    complete: int = 0
    incomplete: int = 0
    #: other trackers of the same share (mirrors), onions without ".onion"
    trackers: tuple[str, ...] = ()


class ReplyError(ValueError):
    """A tracker reply we cannot use; ``refused`` when the tracker said ``failure reason``."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


def parse_reply(body: bytes) -> Reply:
    """Read a tracker's announce reply, keeping only onion peers.

    Peer dicts whose ``ip`` is anything but exactly a v3 onion (an IP address, a hostname)
    are dropped; a compact peer string (IPv4 addresses) refuses the whole reply. A
    ``failure reason`` is shown without control characters, cut to 200 characters.

    :raises ReplyError: when it is not a bencoded dict with a usable interval and peer list
    """
    if len(body) > MAX_REPLY:
        raise ReplyError("tracker reply too large")
    try:
        data = bencodepy.decode(body)
    except (bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError) as exc:
        raise ReplyError("tracker reply is not bencoded") from exc
    if not isinstance(data, dict):
        raise ReplyError("tracker reply is not a dictionary")
    if b"failure reason" in data:
        reason = data[b"failure reason"]
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else "?"
        raise ReplyError(f"tracker refused: {safe_text(text, 200) or '?'}", refused=True)
    interval = data.get(b"interval")
    if not isinstance(interval, int) or interval < 0:
        raise ReplyError("tracker reply has no valid interval")
    raw_peers = data.get(b"peers", [])
    if not isinstance(raw_peers, list):
        # compact peers are IPv4 addresses: an obt swarm has none
        raise ReplyError("tracker reply has compact (IP address) peers, not onion peers")
    return Reply(
        interval=interval,
        peers=tuple(_onion_peers(raw_peers)),
        complete=data.get(b"complete", 0) if isinstance(data.get(b"complete"), int) else 0,
        incomplete=data.get(b"incomplete", 0)
        if isinstance(data.get(b"incomplete"), int)
        else 0,
        trackers=tuple(_onions(data.get(TRACKERS_KEY))),
    )


def _onions(raw: object) -> list[str]:
    out: list[str] = []
    for item in raw[:MAX_TRACKERS] if isinstance(raw, list) else []:
        if not isinstance(item, bytes):
            continue
        name = exact_onion(item.decode("ascii", "replace"), suffix=True)
        if name is not None and name not in out:
            out.append(name)
    return out


def _onion_peers(raw: list) -> list[tuple[str, int]]:
    out = []
    for item in raw[:MAX_NUMWANT]:
        if not isinstance(item, dict):
            continue
        host, port = item.get(b"ip"), item.get(b"port")
        if not isinstance(host, bytes) or not isinstance(port, int) or not 0 < port < 65536:
            continue
        name = exact_onion(host.decode("ascii", "replace"), suffix=True)
        if name is not None and (name, port) not in out:
            out.append((name, port))
    return out
