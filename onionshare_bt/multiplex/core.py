"""Pure parts of the bridges: address pools, the peer-wire filter, endpoint caps, counters.

No sockets, no clock. The driver is :mod:`.bridge`.

What a remote peer learns from our libtorrent is decided here. libtorrent 2.1 puts values
that are constant per node into its BEP 10 extension handshake (``p``: its listen port;
``yourip``: the loopback address the connection comes from; ``v``) and advertises
``ut_holepunch``, which lets a peer make it dial any address and port it names. The
:class:`WireFilter` rewrites every extension handshake in both directions to the few keys
obt needs (:data:`KEEP_KEYS`, :data:`KEEP_EXTENSIONS`) and drops extension messages for
anything it did not advertise; nothing else on the wire is parsed beyond message lengths.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import ipaddress
import resource
import secrets

import bencodepy

from ..errors import NodeError

#: BitTorrent handshake: pstrlen, pstr, 8 reserved bytes, then the 20-byte info-hash
PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_PREFIX = len(PROTOCOL) + 8 + 20
#: the whole handshake: the prefix and the 20-byte peer id
HANDSHAKE = HANDSHAKE_PREFIX + 20

OUTBOUND_NET = "127.64.0.0/10"
INBOUND_NET = "127.1.0.0/16"

#: outbound endpoints (remote onions) one torrent may hold at once
MAX_ENDPOINTS_PER_TORRENT = 64
#: outbound endpoints the whole node may hold at once (each is a listening socket; the
#: bridges also keep it under a quarter of the process's file descriptor limit)
MAX_ENDPOINTS = 512
#: connections one inbound listener lets wait for their BitTorrent handshake
MAX_PENDING_PER_LISTENER = 32
#: connections all inbound listeners together let wait for their handshake
MAX_PENDING = 256

#: BEP 10 message id, and the extended id of the extension handshake
MSG_EXTENDED = 20
EXT_HANDSHAKE = 0
#: the extension handshake keys that survive (everything else, ``p``, ``yourip``, ``v``,
#: ``ipv4``, ``ipv6``, ``complete_ago``, ``e``, ... is dropped in both directions)
KEEP_KEYS = frozenset({b"m", b"metadata_size", b"reqq", b"upload_only"})
#: the extensions that stay advertised (``ut_holepunch``, ``lt_donthave``, ``share_mode``,
#: ``ut_pex`` and whatever else a peer names are dropped)
KEEP_EXTENSIONS = frozenset({b"ut_metadata", b"upload_only"})
#: the largest extension handshake we hold to rewrite (honest ones are a few hundred bytes)
MAX_EXT_HANDSHAKE = 64 * 1024


def share_alias(token: str) -> bytes:
    """The name a share's peers answer to in a handshake, besides its info-hash: derived
    from the share's URI token, so a download can send its handshake to the share's onion
    while it still fetches the .torrent that tells it the info-hash (:mod:`.ahead`).
    Whoever holds the URI may get that .torrent: the alias tells nobody anything more."""
    return hashlib.blake2b(token.encode(), digest_size=20, person=b"obt share alias").digest()


def handshake_info_hash(prefix: bytes) -> bytes | None:
    """The info-hash in the first 48 bytes of a BitTorrent handshake, or None if it is not one."""
    if len(prefix) != HANDSHAKE_PREFIX or not prefix.startswith(PROTOCOL):
        return None
    return prefix[len(PROTOCOL) + 8 :]


# -- addresses ------------------------------------------------------------------------------
class AddressPool:
    """Hands out loopback addresses from a network, each once, in a random order.

    The order is a keyed permutation of the network (a small Feistel network with
    cycle-walking), so addresses are neither sequential nor repeated, in O(1) memory.
    Outbound endpoints come from 127.64.0.0/10 (never reused for another onion within a
    node's life); inbound sources from 127.1.0.0/16 (a fresh one per connection; with
    ``wrap`` a new permutation starts when one is used up).

    :param network: the pool
    :param key: the permutation's key (random when None); tests pass one to repeat an order
    :param wrap: start a new permutation when exhausted (else raise)
    """

    ROUNDS = 4

    def __init__(self, network: str, *, key: bytes | None = None, wrap: bool = False) -> None:
        self._net = ipaddress.IPv4Network(network)
        self._size = self._net.num_addresses - 2  # neither the network nor the broadcast address
        bits = max(2, (self._size - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        self._key = key if key is not None else secrets.token_bytes(16)
        self._wrap = wrap
        self._index = 0

    @property
    def size(self) -> int:
        return self._size

    def _round(self, r: int, value: int) -> int:
        digest = hashlib.blake2b(
            value.to_bytes(4, "big"), digest_size=4, key=self._key, person=bytes([r]) * 8
        ).digest()
        return int.from_bytes(digest, "big") & self._mask

    def _permute(self, x: int) -> int:
        while True:  # cycle-walk: the Feistel domain is the next power of four above size
            left, right = x >> self._half, x & self._mask
            for r in range(self.ROUNDS):
                left, right = right, left ^ self._round(r, right)
            x = (left << self._half) | right
            if x < self._size:
                return x

    def next(self) -> str:
        """The next address.

        :raises NodeError: when the pool is used up and does not wrap
        """
        if self._index >= self._size:
            if not self._wrap:
                raise NodeError(f"loopback address pool {self._net} exhausted")
            self._key, self._index = secrets.token_bytes(16), 0
        offset = self._permute(self._index)
        self._index += 1
        return str(self._net.network_address + 1 + offset)

    def __contains__(self, host: str) -> bool:
        return in_network(host, self._net)


def in_network(host: str, network) -> bool:
    """Whether ``host`` is an IPv4 address inside ``network``."""
    try:
        return ipaddress.IPv4Address(host) in ipaddress.IPv4Network(network)
    except ValueError:
        return False


# -- endpoint caps --------------------------------------------------------------------------
@dataclasses.dataclass
class _Entry:
    torrent_id: str
    busy: int = 0  # connections in any phase (waiting, dialling, spliced)


def node_endpoint_cap() -> int:
    """:data:`MAX_ENDPOINTS`, or a quarter of the soft file descriptor limit if lower
    (every endpoint is a listening socket; connections need descriptors too)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_ENDPOINTS
    return max(16, min(MAX_ENDPOINTS, soft // 4))


class EndpointTable:
    """Which outbound endpoints exist, in least-recently-useful order, under two caps.

    An endpoint becomes useful again when it is created and whenever a connection through it
    passes the handshake check. When a cap is reached, the least recently useful endpoint
    with no connection in any phase is evicted; when every endpoint is busy, new ones are
    refused.

    :param per_torrent: endpoints one torrent may hold
    :param total: endpoints the node may hold
    """

    def __init__(self, per_torrent: int = MAX_ENDPOINTS_PER_TORRENT, total: int = MAX_ENDPOINTS):
        self.per_torrent, self.total = per_torrent, total
        self._entries: collections.OrderedDict[tuple, _Entry] = collections.OrderedDict()
        self._per_torrent: collections.Counter[str] = collections.Counter()
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries

    def count(self, torrent_id: str) -> int:
        return self._per_torrent[torrent_id]

    def admit(self, key: tuple, torrent_id: str) -> list[tuple]:
        """Make room for a new endpoint and record it.

        :returns: the keys evicted to make room (the caller closes their listeners)
        :raises NodeError: when a cap is reached and every endpoint under it is busy
        """
        evict = []
        if self._per_torrent[torrent_id] >= self.per_torrent:
            victim = self._idle(lambda e: e.torrent_id == torrent_id)
            if victim is None:
                self.refused += 1
                raise NodeError(
                    f"torrent {torrent_id[:16]} already has {self.per_torrent} busy peer endpoints"
                )
            evict.append(victim)
        if len(self._entries) - len(evict) >= self.total:
            victim = self._idle(lambda e: True, exclude=evict)
            if victim is None:
                self.refused += 1
                raise NodeError(f"all {self.total} peer endpoints of the node are busy")
            evict.append(victim)
        for victim in evict:
            self.remove(victim)
        self.evicted += len(evict)
        self._entries[key] = _Entry(torrent_id)
        self._per_torrent[torrent_id] += 1
        return evict

    def _idle(self, match, exclude=()) -> tuple | None:
        for key, entry in self._entries.items():  # oldest first
            if entry.busy == 0 and key not in exclude and match(entry):
                return key
        return None

    def touch(self, key: tuple) -> None:
        """The endpoint was useful just now."""
        if key in self._entries:
            self._entries.move_to_end(key)

    def busy(self, key: tuple, delta: int) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.busy += delta

    def remove(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._per_torrent[entry.torrent_id] -= 1
            if not self._per_torrent[entry.torrent_id]:
                del self._per_torrent[entry.torrent_id]


# -- the peer wire --------------------------------------------------------------------------
class WireError(Exception):
    """The peer wire broke a limit the filter keeps (internal to the bridges)."""


def clean_ext_handshake(payload: bytes) -> tuple[bytes, frozenset[int]] | None:
    """Rewrite a BEP 10 extension handshake to what obt lets through.

    :param payload: the bencoded dict (after the message id and the extended id)
    :returns: the new payload and the extension ids it still advertises; None when the
        payload is not a bencoded dict (the message is then dropped)
    """
    try:
        decoded = bencodepy.decode(payload)
    except (bencodepy.BencodeDecodeError, RecursionError, ValueError, TypeError, IndexError):
        return None
    if not isinstance(decoded, dict):
        return None
    out: dict[bytes, object] = {}
    ids: set[int] = set()
    for key in KEEP_KEYS & decoded.keys():
        value = decoded[key]
        if key == b"m":
            if isinstance(value, dict):
                kept = {
                    name: ext_id for name, ext_id in value.items()
                    if name in KEEP_EXTENSIONS and type(ext_id) is int and 0 <= ext_id < 256
                }
                out[key] = kept
                ids.update(i for i in kept.values() if i)
        elif type(value) is int and 0 <= value < 2**31:
            out[key] = value
    return bencodepy.encode(out), frozenset(ids)


class ExtIds:
    """The extension ids our side advertised on one connection (shared by its two filters)."""

    def __init__(self) -> None:
        self.ids: frozenset[int] = frozenset()


class WireFilter:
    """One direction of one peer-wire connection, after the bytes the bridge already read.

    It passes the rest of the BitTorrent handshake, then frames messages by their length
    prefix only. Every extension handshake is rewritten by :func:`clean_ext_handshake`.

    :param skip: handshake bytes still to pass untouched
    :param follow: keep framing for the whole connection (the direction from the remote
        peer to our libtorrent, so a peer cannot re-advertise ``ut_holepunch`` or send a
        holepunch message later). Without it the filter turns into a plain copy after the
        first message (the direction from our libtorrent, whose extension handshake is
        always its first message after the handshake)
    :param ours: where the ids our libtorrent advertised are kept: the outgoing filter
        writes them, the incoming one drops extension messages addressed to any other id
    """

    def __init__(self, skip: int, *, follow: bool, ours: ExtIds) -> None:
        self._skip = skip
        self._drop = 0
        self._follow = follow
        self._ours = ours
        self._raw = False
        self._held = b""
        self.rewritten = 0
        self.dropped = 0

    def feed(self, data: bytes) -> bytes:
        """The bytes to forward for ``data`` (possibly holding a partial message back).

        :raises WireError: for an extension handshake larger than :data:`MAX_EXT_HANDSHAKE`
        """
        if self._raw and not self._held:
            return data
        buf = self._held + data if self._held else data
        parts: list[bytes] = []
        start = pos = 0  # buf[start:pos] is forwarded as it is
        end = len(buf)
        while pos < end:
            if self._raw:
                pos = end
            elif self._skip:
                take = min(self._skip, end - pos)
                pos += take
                self._skip -= take
            elif self._drop:
                parts.append(buf[start:pos])
                take = min(self._drop, end - pos)
                pos += take
                start = pos
                self._drop -= take
            else:
                verdict = self._message(buf, pos, end)
                if verdict is None:  # an incomplete header: hold it back
                    break
                action, size, replacement = verdict
                if action is _PASS:
                    self._skip = size
                elif action is _DROP:
                    self._drop = size
                else:
                    parts.append(buf[start:pos])
                    parts.append(replacement)
                    pos += size
                    start = pos
        self._held = buf[pos:]
        if not parts and start == 0 and pos == end:
            return buf
        parts.append(buf[start:pos])
        return b"".join(parts)

    def _message(self, buf: bytes, pos: int, end: int):
        """Decide on the message at ``pos``: ``(action, size, replacement)``, or None until
        more bytes arrive."""
        avail = end - pos
        if avail < 4:
            return None
        length = int.from_bytes(buf[pos : pos + 4], "big")
        if length == 0:  # keep-alive
            return self._after(_PASS, 4)
        if avail < 5:
            return None
        if buf[pos + 4] != MSG_EXTENDED or length < 2:
            return self._after(_PASS, 4 + length)
        if avail < 6:
            return None
        ext_id = buf[pos + 5]
        if ext_id != EXT_HANDSHAKE:
            if self._follow and ext_id not in self._ours.ids:
                self.dropped += 1
                return _DROP, 4 + length, b""
            return self._after(_PASS, 4 + length)
        if length > MAX_EXT_HANDSHAKE:
            raise WireError(f"extension handshake of {length} bytes")
        if avail < 4 + length:
            return None
        cleaned = clean_ext_handshake(buf[pos + 6 : pos + 4 + length])
        if cleaned is None:
            self.dropped += 1
            return self._after(_REPLACE, 4 + length, b"")
        payload, ids = cleaned
        if not self._follow:
            self._ours.ids = ids
        self.rewritten += 1
        body = bytes([MSG_EXTENDED, EXT_HANDSHAKE]) + payload
        return self._after(_REPLACE, 4 + length, len(body).to_bytes(4, "big") + body)

    def _after(self, action: str, size: int, replacement: bytes = b""):
        if not self._follow:
            self._raw = True  # the first message is through: a plain copy from here on
        return action, size, replacement


_PASS, _DROP, _REPLACE = "pass", "drop", "replace"


class HandshakeRename:
    """Put ``info_hash`` in place of the info-hash of the handshake a stream opens with.

    An inbound peer that names a torrent by an alias (the info-hash aria2 < 1.37 computes
    for a hybrid torrent, or a share's :func:`share_alias`) must read the same name back
    in libtorrent's handshake. Bytes past the handshake's info-hash pass unchanged,
    whatever chunks the stream comes in.
    """

    START = len(PROTOCOL) + 8

    def __init__(self, info_hash: bytes) -> None:
        if len(info_hash) != 20:
            raise ValueError("an info-hash is 20 bytes")
        self.info_hash = info_hash
        self.pos = 0

    def feed(self, data: bytes) -> bytes:
        start, end = self.START, self.START + 20
        lo, hi = max(start, self.pos), min(end, self.pos + len(data))
        if lo < hi:
            data = (data[:lo - self.pos] + self.info_hash[lo - start:hi - start]
                    + data[hi - self.pos:])
        self.pos += len(data)
        return data


# -- counters -------------------------------------------------------------------------------
@dataclasses.dataclass
class PathCounters:
    """Bytes through one bridge path.

    ``down`` counts bytes from the remote peer towards our libtorrent, ``up`` the reverse
    (as read, before the wire filter).

    :param direction: ``out`` (we dialled the onion) or ``in`` (the peer reached our onion)
    :param onion: the remote onion for outbound paths; our own listener for inbound
    :param lane: for an outbound path, which of the paths to the same onion it is (0: the
        first; more are opened while they add to a download's rate, :mod:`.growth`)
    """

    torrent_id: str
    direction: str
    onion: str
    port: int
    endpoint: str
    down: int = 0
    up: int = 0
    connections: int = 0
    active: int = 0
    dialing: int = 0
    failures: int = 0
    last_error: str = ""
    lane: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
