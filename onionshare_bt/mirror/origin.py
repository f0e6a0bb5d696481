"""The origin's half of mirroring: what a node's identity onion answers to its mirrors.

- ``GET /public/<token>/torrent/<infohash>``: a public share's .torrent, so a mirror copies
  the metadata without opening a circuit to every share's onion.
- ``POST /public/<token>/sync``: the reply carries what changed here since the caller's last
  call (a long-poll: it waits until something changes, at most :data:`core.MAX_WAIT`
  seconds). Anyone with the token may read: the feed tells what a public announce tells.

Pushing peers into this node's tracker and being registered as a mirror (named to this
node's downloaders in announce replies, ``x-obt-trackers``) need a credential
(:mod:`.auth`): signed by the key of a node in this node's trust list, for this origin, for
the named mirror onion, fresh and never replayed. One trusted node registers one mirror
onion at a time. A push holds at most :data:`core.MAX_PUSH` entries, is merged per torrent
in one pass and written to the store in one transaction; it never evicts a peer fresher
than what it brings, and never removes a peer that announced here.

Only public shares take part: a private share's peers never reach a mirror, and a pushed
peer of any other torrent is dropped.
"""

from __future__ import annotations

import logging
import time

from ..errors import Refused
from . import auth, core

log = logging.getLogger(__name__)

#: a mirror is named to downloaders while it synced within this many seconds
MIRROR_FRESH = 600.0
#: mirrors named in one announce reply (the longest-standing first)
MIRRORS_NAMED = 4
#: mirrors remembered at once
MIRRORS_KEPT = 64


class Roster:
    """The mirrors trusted nodes registered here, and which of them announce replies name.

    Made before the node's tracker, which names them (:meth:`trackers`), and given to the
    :class:`Origin`, which registers them as their sync calls come.

    :param store: the node's store (public shares, trust list)
    :param clock: monotonic seconds (the tracker's clock)
    """

    def __init__(self, store, clock=time.monotonic) -> None:
        self.store = store
        self._clock = clock
        #: mirror onion -> (first seen, last seen, the trusted node that registered it)
        self.mirrors: dict[str, tuple[float, float, str]] = {}

    def trackers(self, torrent_id: str) -> list[str]:
        """The mirrors to name in announce replies for ``torrent_id``: registered by a node
        this node still trusts, synced within :data:`MIRROR_FRESH` seconds."""
        now = self._clock()
        fresh = [(first, onion, node) for onion, (first, last, node) in self.mirrors.items()
                 if now - last <= MIRROR_FRESH]
        if not fresh or torrent_id not in self.store.catalogue.shares():
            return []
        trusted = set(self.store.trust.all())
        return [onion for _, onion, node in sorted(fresh) if node in trusted][:MIRRORS_NAMED]

    def register(self, mirror: str, node: str, now: float) -> None:
        """Remember ``mirror`` as ``node``'s one mirror onion, synced now."""
        for onion in [o for o, (_, _, by) in self.mirrors.items() if by == node and o != mirror]:
            del self.mirrors[onion]
        first = self.mirrors.get(mirror, (now, now, node))[0]
        self.mirrors[mirror] = (first, now, node)
        if len(self.mirrors) > MIRRORS_KEPT:
            stalest = min(self.mirrors, key=lambda o: self.mirrors[o][1])
            del self.mirrors[stalest]


class Origin:
    """Serve this node's public trackers to mirrors.

    :param store: the node's database (its public shares, peers, trusted nodes)
    :param tracker: the node's tracker (the peers it knows now)
    :param roster: the registered mirrors (the one the tracker names); a new one if None
    :param clock: monotonic seconds (the tracker's clock)
    :param wall: seconds since the epoch (credential timestamps)
    """

    def __init__(self, store, tracker, roster: Roster | None = None, clock=time.monotonic,
                 wall=time.time) -> None:
        self.store, self.tracker = store, tracker
        self.roster = roster if roster is not None else Roster(store, clock)
        self.feed = core.Feed()
        self.verifier = auth.Verifier()
        self._clock = clock
        self._wall = wall

    @property
    def mirrors(self) -> dict[str, tuple[float, float, str]]:
        """mirror onion -> (first seen, last seen, the trusted node that registered it)"""
        return self.roster.mirrors

    @property
    def onion(self) -> str:
        """This node's identity onion, which credentials must name ("" refuses them all);
        set by the trust service once the onion is published."""
        return self.verifier.origin

    @onion.setter
    def onion(self, value: str) -> None:
        self.verifier.origin = value

    # -- what is public -----------------------------------------------------------------
    def public_ids(self) -> set[str]:
        return self.store.catalogue.shares()

    def digest(self) -> str:
        return core.catalogue_digest(sorted(self.public_ids()))

    def torrent(self, infohash: str) -> bytes | None:
        if infohash not in self.public_ids():
            return None
        row = self.store.torrents.get(infohash)
        return row.torrent if row is not None else None

    # -- feed ---------------------------------------------------------------------------
    def announced(self, torrent_id: str, onion: str, port: int, left: int | None) -> None:
        """A peer announced to this node's tracker (``left=None``: it stopped)."""
        if torrent_id in self.public_ids():
            update = core.Update(torrent_id, onion, port, -1 if left is None else left, 0.0)
            self.feed.add("", update, self._clock())

    def catalogue_changed(self) -> None:
        self.feed.touch()

    def trackers(self, torrent_id: str) -> list[str]:
        """:meth:`Roster.trackers`"""
        return self.roster.trackers(torrent_id)

    # -- the sync call ------------------------------------------------------------------
    async def call(self, body: bytes, credential: str | None) -> dict:
        """Answer one sync call: its raw body and its credential header (or None).

        A call whose credential is missing or refused is served read-only (the reply says
        ``registered: false`` and why); if it pushes peers it is refused.

        :raises MalformedReply: the body is not a sync request
        :raises Refused: it pushes peers without a valid credential, or its credential
          names another mirror than its body
        """
        node, mirror, reason = None, None, ""
        if credential is not None:
            try:
                node, mirror = self.verifier.check(credential, body, self._wall(),
                                                   self.store.trust.has)
            except Refused as exc:
                reason = exc.message
        request = core.parse_request(body)
        if node is not None and request.mirror != mirror:
            raise Refused("the credential names another mirror onion")
        if request.peers and node is None:
            raise Refused(reason or "pushing peers needs a mirror credential")
        return await self.sync(request, node, reason)

    async def sync(self, request: core.SyncRequest, node: str | None = None,
                   reason: str = "") -> dict:
        """Answer a parsed sync request.

        :param node: the trusted node whose credential the call carried, or None (then the
          call only reads)
        :param reason: why a credential it carried was refused, told back to the caller
        :raises Refused: it pushes peers with no ``node``
        """
        now = self._clock()
        if node is None and request.peers:
            raise Refused("pushing peers needs a mirror credential")
        public = self.public_ids()
        if node is not None:
            self.roster.register(request.mirror, node, now)
            self._take(request, public, now)
        registered, feed, digest = node is not None, self.feed, core.catalogue_digest(
            sorted(public))
        if request.epoch != feed.epoch:
            return self._encode(self._full(public, digest), registered, reason)
        deadline = now + request.wait
        while True:
            changes = feed.changes(request.since, request.mirror, self._clock())
            if changes is None:
                full = self._full(self.public_ids(), self.digest())
                return self._encode(full, registered, reason)
            current = self.digest()
            remaining = deadline - self._clock()
            if changes or current != digest or remaining <= 0:
                reply = core.SyncReply(feed.epoch, feed.seq, False, current, tuple(changes))
                return self._encode(reply, registered, reason)
            await feed.wait(feed.seq, remaining)  # only this mirror's own pushes since

    @staticmethod
    def _encode(reply: core.SyncReply, registered: bool, reason: str) -> dict:
        return core.encode_reply(core.SyncReply(
            reply.epoch, reply.seq, reply.full, reply.catalogue, reply.peers, registered,
            "" if registered else reason))

    def _take(self, request: core.SyncRequest, public: set[str], now: float) -> None:
        """Merge a mirror's pushed peers: one merge and one store transaction per torrent."""
        by_torrent: dict[str, list[tuple[str, int, int, float]]] = {}
        for update in request.peers[:core.MAX_PUSH]:
            if update.infohash in public:
                by_torrent.setdefault(update.infohash, []).append(
                    (update.onion, update.port, update.left, update.age))
        tracker, store = self.tracker, self.store
        for infohash, entries in by_torrent.items():
            changed = tracker.merge_changes(infohash, entries)
            for onion, port, left, age in changed:
                self.feed.add(request.mirror, core.Update(infohash, onion, port, left, age),
                              now)
            if changed:
                store.peers.record_many(infohash, [(o, p, None if left < 0 else left)
                                                   for o, p, left, _ in changed],
                                        ttl=tracker.peers.ttl, cap=tracker.peers.max_peers)

    def _full(self, public: set[str], digest: str) -> core.SyncReply:
        peers = [core.Update(ih, o, p, left, age)
                 for ih in sorted(public)
                 for o, p, left, age in self.tracker.entries(ih)]
        return core.SyncReply(self.feed.epoch, self.feed.seq, True, digest,
                              tuple(peers[:core.MAX_ENTRIES]))
