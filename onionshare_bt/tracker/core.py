"""The tracker's protocol, apart from any I/O.

Announce requests are BEP 3 queries with one difference: the peer's address is its onion
(``ip=<56 chars>.onion``), never an IP, and replies always use non-compact peer dicts
``{"ip": "<onion>.onion", "port": N}``. Nothing here reads a clock: callers pass ``now``.

Everything here faces the network: a query may hold anything, so every refusal is an
:class:`AnnounceError` whose message is a fixed text (never an echo of the input), and the
swarm keeps at most :data:`MAX_PEERS` peers per torrent, however many onions announce.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse

import bencodepy

from ..tor.onion import ADDRESS_LENGTH, is_onion

MAX_QUERY = 4096
MAX_PARAMS = 32
MAX_NUMWANT = 200
DEFAULT_NUMWANT = 50
MAX_REPLY = 1024 * 1024
#: peers remembered per torrent; beyond it the stalest are forgotten
MAX_PEERS = 1000
EVENTS = {"", "started", "completed", "stopped", "empty"}
#: parameters a refusal may name; any other key is the sender's text and is not echoed
KNOWN_PARAMS = {
    "info_hash", "peer_id", "ip", "port", "uploaded", "downloaded", "left", "event",
    "numwant", "compact", "no_peer_id", "key", "trackerid", "corrupt", "supportcrypto",
}
_DIGITS = re.compile(r"[0-9]{1,19}")


class AnnounceError(ValueError):
    """An announce the tracker refuses; the message goes back as ``failure reason``."""


@dataclasses.dataclass(frozen=True)
class Announce:
    """An announce; ``onion`` is empty (and ``port`` 0) for an observer, never listed."""

    info_hash: bytes
    peer_id: bytes
    onion: str  # 56 chars, no ".onion"
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: str
    numwant: int


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
    else:
        host = params.get("ip", "").lower().removesuffix(".onion")
        # exactly 56 characters: is_onion() would forgive the spaces or a second ".onion"
        # that would then be stored and handed to every other peer
        if len(host) != ADDRESS_LENGTH or not is_onion(host):
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


@dataclasses.dataclass
class _Entry:
    left: int
    seen: float


class Swarm:
    """Peers of every torrent a tracker serves, expired after ``ttl`` seconds of silence.

    A share's own onions are listed as permanent seeders (``fixed``). Each torrent keeps at
    most ``max_peers`` announced peers: anyone can announce any number of made-up onions, so
    when the list is full the stalest peer makes room. Each torrent's dict is kept in the
    order peers were last seen (``now`` never decreases), so both expiry and eviction start
    at its head.
    """

    def __init__(self, ttl: float, max_peers: int = MAX_PEERS) -> None:
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self.ttl = ttl
        self.max_peers = max_peers
        self._peers: dict[bytes, dict[tuple[str, int], _Entry]] = {}
        self._fixed: dict[bytes, list[tuple[str, int]]] = {}

    def set_fixed(self, info_hash: bytes, peers: list[tuple[str, int]]) -> None:
        self._fixed[info_hash] = list(peers)

    def drop(self, info_hash: bytes) -> None:
        self._peers.pop(info_hash, None)
        self._fixed.pop(info_hash, None)

    def announce(self, a: Announce, now: float) -> list[tuple[str, int]]:
        """Record ``a`` and return up to ``a.numwant`` other peers, fixed seeders first.

        An observer (no onion) is not recorded and is given seeders only: it wants pieces
        and passes none on (a release not verified yet), so it talks to no leecher.
        """
        key = (a.onion, a.port)
        if not a.onion:
            return self.peers(a.info_hash, now, seeds_only=True)[: a.numwant]
        if a.event == "stopped":
            self._peers.get(a.info_hash, {}).pop(key, None)
        else:
            peers = self._peers.setdefault(a.info_hash, {})
            peers.pop(key, None)  # re-inserted at the end: the freshest
            while len(peers) >= self.max_peers:
                del peers[next(iter(peers))]
            peers[key] = _Entry(left=a.left, seen=now)
        return self.peers(a.info_hash, now, exclude=a.onion)[: a.numwant]

    def peers(self, info_hash: bytes, now: float, exclude: str = "",
              seeds_only: bool = False) -> list[tuple[str, int]]:
        live = self._peers.get(info_hash, {})
        while live:
            key = next(iter(live))
            if now - live[key].seen <= self.ttl:
                break
            del live[key]
        out = [p for p in self._fixed.get(info_hash, []) if p[0] != exclude]
        fixed = set(out)
        out += [k for k, e in live.items() if k[0] != exclude and k not in fixed
                and not (seeds_only and e.left > 0)]
        return out

    def restore(self, info_hash: bytes, entries: list[tuple[str, int, int, float]],
                now: float) -> None:
        """Take back peers saved earlier: ``(onion, port, left, age_seconds)`` each."""
        for onion, port, left, age in sorted(entries, key=lambda e: -e[3]):  # oldest first
            if age <= self.ttl and len(self._peers.get(info_hash, {})) < self.max_peers:
                self._peers.setdefault(info_hash, {})[(onion, port)] = _Entry(
                    left=left, seen=now - age)

    def entries(self, info_hash: bytes, now: float) -> list[tuple[str, int, int, float]]:
        """Every live peer as ``(onion, port, left, age)``, fixed seeders first (age 0)."""
        self.peers(info_hash, now)  # expire the stale first
        fixed = self._fixed.get(info_hash, [])
        out = [(o, p, 0, 0.0) for o, p in fixed]
        out += [(o, p, e.left, max(0.0, now - e.seen))
                for (o, p), e in self._peers.get(info_hash, {}).items() if (o, p) not in fixed]
        return out

    def merge(self, info_hash: bytes, entries: list[tuple[str, int, int, float]],
              now: float) -> int:
        """Take in peers another tracker saw: ``(onion, port, left, age)``; ``left < 0`` is
        a "stopped". A peer already seen more recently here keeps its entry. Returns how
        many entries changed.
        """
        peers = self._peers.setdefault(info_hash, {})
        changed = 0
        for onion, port, left, age in entries:
            key = (onion, port)
            seen = now - max(0.0, age)
            old = peers.get(key)
            if left < 0:  # a "stopped" older than the peer's last announce here is late
                if old is not None and old.seen <= seen:
                    del peers[key]
                    changed += 1
                continue
            if old is not None and old.seen >= seen:
                continue
            if age > self.ttl:
                continue
            peers.pop(key, None)
            while len(peers) >= self.max_peers:
                del peers[min(peers, key=lambda k: peers[k].seen)]
            peers[key] = _Entry(left=left, seen=seen)
            changed += 1
        if changed:  # keep the dict ordered by last seen: expiry starts at its head
            ordered = sorted(peers.items(), key=lambda kv: kv[1].seen)
            peers.clear()
            peers.update(ordered)
        return changed

    def size(self, info_hash: bytes) -> int:
        """How many announced (not fixed) peers are remembered for ``info_hash``."""
        return len(self._peers.get(info_hash, {}))

    def counts(self, info_hash: bytes) -> tuple[int, int]:
        """(complete, incomplete) counts, fixed seeders included."""
        live = self._peers.get(info_hash, {}).values()
        seeds = sum(1 for e in live if e.left == 0) + len(self._fixed.get(info_hash, []))
        return seeds, sum(1 for e in live if e.left > 0)


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

    :raises ReplyError: when it is not a bencoded dict with a usable interval and peer list
    """
    if len(body) > MAX_REPLY:
        raise ReplyError("tracker reply too large")
    try:
        data = bencodepy.decode(body)
    except (bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError) as exc:
        raise ReplyError(f"tracker reply is not bencoded: {exc}") from exc
    if not isinstance(data, dict):
        raise ReplyError("tracker reply is not a dictionary")
    if b"failure reason" in data:
        reason = data[b"failure reason"]
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else "?"
        raise ReplyError(f"tracker refused: {text[:200]}", refused=True)
    interval = data.get(b"interval")
    if not isinstance(interval, int) or interval < 0:
        raise ReplyError("tracker reply has no valid interval")
    raw_peers = data.get(b"peers", [])
    if not isinstance(raw_peers, list):
        raise ReplyError("tracker reply peers are not a list of dictionaries (compact?)")
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
        name = item.decode("ascii", "replace").lower().removesuffix(".onion")
        if len(name) == ADDRESS_LENGTH and is_onion(name) and name not in out:
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
        name = host.decode("ascii", "replace").lower().removesuffix(".onion")
        if len(name) == ADDRESS_LENGTH and is_onion(name) and (name, port) not in out:
            out.append((name, port))
    return out
