"""Mirror sync, apart from the network: the change feed and the sync messages.

A node (the *origin*) keeps a :class:`Feed` of every change to the peer lists of its public
shares: announces to its own tracker and peers that its mirrors pushed. A mirror holds one
long-poll open on the origin's identity onion (``POST /public/<token>/sync``), gets each
change within a round trip, and pushes the announces its own tracker took in. Entries carry
an *age*, never a clock reading, so neither side's clock matters and a synced peer expires
on both sides when it stops announcing.

Both messages are JSON; everything in them comes from the network and is validated here:

- request: ``{"mirror": onion, "epoch": str, "since": int, "wait": seconds,
  "peers": [[infohash, onion, port, left, age], ...]}``
- reply: ``{"epoch": str, "seq": int, "full": bool, "catalogue": digest,
  "registered": bool, "reason": str, "peers": [[infohash, onion, port, left, age], ...]}``

``left == -1`` is a peer that stopped; any other negative value is dropped. ``full`` replies
(a new mirror, an origin that restarted, or a mirror that fell too far behind) hold every
live peer of every public share. A request carries at most :data:`MAX_PUSH` peers in at most
:data:`MAX_REQUEST` bytes. Reading needs nothing but the token; a request that pushes peers
or asks to be named as a mirror must carry a credential (:mod:`.auth`), and ``registered``
tells the mirror whether the origin took it as one.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import re
import secrets

from ..errors import MalformedReply
from ..onion import exact_onion
from ..text import safe_text
from ..trust.protocol import MAX_SYNC_REQUEST

#: bytes of a sync reply (a full snapshot)
MAX_MESSAGE = 1024 * 1024
#: peer entries in one reply
MAX_ENTRIES = 5000
#: peer entries one request may push (a mirror sends more in several calls)
MAX_PUSH = 500
#: bytes of a sync request: MAX_PUSH entries of ~130 bytes, with room to spare (what the
#: origin's identity onion reads of one call)
MAX_REQUEST = MAX_SYNC_REQUEST
#: longest long-poll the origin holds open
MAX_WAIT = 25.0
MAX_AGE = 86400.0
FEED_CAPACITY = 20_000
_HEX40 = re.compile(r"[0-9a-f]{40}")
_EPOCH = re.compile(r"[0-9a-f]{0,32}")


@dataclasses.dataclass(frozen=True)
class Update:
    """One peer of one share: ``left < 0`` means it stopped."""

    infohash: str
    onion: str
    port: int
    left: int
    age: float

    def as_list(self) -> list:
        return [self.infohash, self.onion, self.port, self.left, round(self.age, 2)]


@dataclasses.dataclass(frozen=True)
class SyncRequest:
    mirror: str
    epoch: str
    since: int
    wait: float
    peers: tuple[Update, ...]


@dataclasses.dataclass(frozen=True)
class SyncReply:
    epoch: str
    seq: int
    full: bool
    catalogue: str
    peers: tuple[Update, ...]
    #: the origin took the caller as a mirror (its credential passed)
    registered: bool = False
    #: why not, when the caller sent a credential (a fixed text of the origin's)
    reason: str = ""


def catalogue_digest(infohashes: list[str]) -> str:
    """A short digest of the set of public shares: it changes when the catalogue does."""
    return hashlib.sha256(",".join(sorted(infohashes)).encode()).hexdigest()[:32]


def _load(body: bytes, limit: int = MAX_MESSAGE) -> dict:
    if len(body) > limit:
        raise MalformedReply("sync message too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedReply("sync message is not JSON") from exc
    if not isinstance(data, dict):
        raise MalformedReply("sync message is not a JSON object")
    return data


def _int(value: object, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError("out of range")
    return value


def _number(value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    if not lo <= value <= hi:  # NaN fails both comparisons
        raise ValueError("out of range")
    return float(value)


def parse_updates(raw: object, limit: int = MAX_ENTRIES) -> tuple[Update, ...]:
    """The well-formed peer entries of a message; malformed ones are dropped.

    :param limit: the most entries allowed; more refuses the message
    """
    if not isinstance(raw, list):
        raise MalformedReply("sync peers are not a list")
    if len(raw) > limit:
        raise MalformedReply("too many peers in one sync message")
    out = []
    for entry in raw:
        try:
            infohash, onion, port, left, age = entry
            if not (isinstance(infohash, str) and _HEX40.fullmatch(infohash)):
                raise ValueError("infohash")
            onion = exact_onion(onion)  # lowercase: one spelling per peer, as announced
            if onion is None:
                raise ValueError("onion")
            out.append(Update(infohash, onion, _int(port, 1, 65535),
                              _int(left, -1, 2**63 - 1), _number(age, 0, MAX_AGE)))
        except (TypeError, ValueError):
            continue
    return tuple(out)


def _epoch(value: object) -> str:
    if not (isinstance(value, str) and _EPOCH.fullmatch(value)):
        raise MalformedReply("bad sync epoch")
    return value


def parse_request(body: bytes) -> SyncRequest:
    """A mirror's sync call: at most :data:`MAX_PUSH` peers in :data:`MAX_REQUEST` bytes.

    :raises MalformedReply: anything else
    """
    data = _load(body, MAX_REQUEST)
    mirror = exact_onion(data.get("mirror"))
    if mirror is None:
        raise MalformedReply("sync request names no mirror onion")
    try:
        since = _int(data.get("since", 0), 0, 2**63 - 1)
        wait = _number(data.get("wait", 0), 0, MAX_WAIT)
    except ValueError as exc:
        raise MalformedReply("bad sync position or wait") from exc
    return SyncRequest(mirror, _epoch(data.get("epoch", "")), since, wait,
                       parse_updates(data.get("peers", []), MAX_PUSH))


def encode_request(mirror: str, epoch: str, since: int, wait: float,
                   peers: list[Update]) -> bytes:
    return json.dumps({"mirror": mirror, "epoch": epoch, "since": since, "wait": wait,
                       "peers": [u.as_list() for u in peers]}).encode()


def parse_reply(body: bytes) -> SyncReply:
    data = _load(body)
    try:
        seq = _int(data.get("seq"), 0, 2**63 - 1)
    except ValueError as exc:
        raise MalformedReply("bad sync position") from exc
    catalogue = data.get("catalogue", "")
    if not (isinstance(catalogue, str) and re.fullmatch(r"[0-9a-f]{0,64}", catalogue)):
        raise MalformedReply("bad catalogue digest")
    reason = data.get("reason", "")
    return SyncReply(_epoch(data.get("epoch")), seq, data.get("full") is True, catalogue,
                     parse_updates(data.get("peers", [])), data.get("registered") is True,
                     safe_text(reason, 200) if isinstance(reason, str) else "")


def encode_reply(reply: SyncReply) -> dict:
    return {"epoch": reply.epoch, "seq": reply.seq, "full": reply.full,
            "catalogue": reply.catalogue, "registered": reply.registered,
            "reason": reply.reason, "peers": [u.as_list() for u in reply.peers]}


@dataclasses.dataclass(frozen=True)
class _Change:
    seq: int
    origin: str  # "" for the origin's own tracker, else the mirror that pushed it
    infohash: str
    onion: str
    port: int
    left: int
    at: float  # the feed's clock when it was seen (minus its age then)


class Feed:
    """The origin's log of peer changes, for its mirrors to follow.

    :param capacity: changes kept; a mirror further behind gets a full snapshot instead
    """

    def __init__(self, capacity: int = FEED_CAPACITY) -> None:
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self._log: collections.deque[_Change] = collections.deque(maxlen=capacity)
        self._changed = asyncio.Event()

    def add(self, origin: str, update: Update, now: float) -> None:
        self.seq += 1
        self._log.append(_Change(self.seq, origin, update.infohash, update.onion, update.port,
                                 update.left, now - update.age))
        self._wake()

    def touch(self) -> None:
        """Something else changed (the catalogue): wake every waiting mirror."""
        self.seq += 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def changes(self, since: int, exclude: str, now: float) -> list[Update] | None:
        """What changed after ``since``, except what ``exclude`` pushed itself; the newest
        change per peer only. None when ``since`` is not in the log any more (or never was).
        """
        if since > self.seq:
            return None
        first = self._log[0].seq if self._log else self.seq + 1
        if since < first - 1 and since != self.seq:
            return None
        latest: dict[tuple[str, str, int], _Change] = {}
        for change in reversed(self._log):
            if change.seq <= since:
                break
            key = (change.infohash, change.onion, change.port)
            if key not in latest:
                latest[key] = change
        return [Update(c.infohash, c.onion, c.port, c.left, max(0.0, now - c.at))
                for c in sorted(latest.values(), key=lambda c: c.seq) if c.origin != exclude]

    async def wait(self, since: int, timeout: float) -> None:
        """Return once the feed moved past ``since``, or after ``timeout`` seconds."""
        if self.seq != since or timeout <= 0:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass
