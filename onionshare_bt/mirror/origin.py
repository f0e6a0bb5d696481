"""The origin's half of mirroring: what a node's identity onion answers to its mirrors.

- ``GET /public/<token>/torrent/<infohash>``: a public share's .torrent, so a mirror copies
  the metadata without opening a circuit to every share's onion.
- ``POST /public/<token>/sync``: peers the mirror's tracker took in go into this node's
  tracker, and the reply carries what changed here since the mirror's last call (a
  long-poll: it waits until something changes, at most :data:`core.MAX_WAIT` seconds).

Only public shares take part: a private share's peers never reach a mirror, and a pushed
peer of any other torrent is dropped. Mirrors that synced recently are named to this
node's downloaders in announce replies, so they can fail over when this node is gone.
"""

from __future__ import annotations

import logging
import time

from . import core

log = logging.getLogger(__name__)

#: a mirror is named to downloaders while it synced within this many seconds
MIRROR_FRESH = 600.0
#: mirrors named in one announce reply (the longest-standing first)
MIRRORS_NAMED = 4
#: mirrors remembered at once (anyone can claim to be one)
MIRRORS_KEPT = 64


class Origin:
    """Serve this node's public trackers to mirrors.

    :param parts: the node's running parts (store, tracker, metas)
    :param clock: monotonic seconds (the tracker's clock)
    """

    def __init__(self, parts, clock=time.monotonic) -> None:
        self.parts = parts
        self.feed = core.Feed()
        self._clock = clock
        #: mirror onion -> (first seen, last seen), monotonic
        self.mirrors: dict[str, tuple[float, float]] = {}

    # -- what is public -----------------------------------------------------------------
    def public_ids(self) -> set[str]:
        return self.parts.store.public_shares()

    def digest(self) -> str:
        return core.catalogue_digest(sorted(self.public_ids()))

    def torrent(self, infohash: str) -> bytes | None:
        if infohash not in self.public_ids():
            return None
        row = self.parts.store.torrent(infohash)
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
        """The mirrors to name in announce replies for ``torrent_id``."""
        now = self._clock()
        fresh = [(first, onion) for onion, (first, last) in self.mirrors.items()
                 if now - last <= MIRROR_FRESH]
        if not fresh or torrent_id not in self.public_ids():
            return []
        return [onion for _, onion in sorted(fresh)[:MIRRORS_NAMED]]

    # -- the sync call ------------------------------------------------------------------
    async def sync(self, request: core.SyncRequest) -> dict:
        now = self._clock()
        self._register(request.mirror, now)
        public = self.public_ids()
        tracker, store = self.parts.tracker, self.parts.store
        for update in request.peers:
            if update.infohash not in public:
                continue
            entry = (update.onion, update.port, update.left, update.age)
            if tracker.merge(update.infohash, [entry]):
                self.feed.add(request.mirror, update, now)
                store.record_peer(update.infohash, update.onion, update.port,
                                  None if update.left < 0 else update.left)
        feed, digest = self.feed, core.catalogue_digest(sorted(public))
        if request.epoch != feed.epoch:
            return core.encode_reply(self._full(public, digest))
        deadline = now + request.wait
        position = request.since
        while True:
            changes = feed.changes(request.since, request.mirror, self._clock())
            if changes is None:
                return core.encode_reply(self._full(self.public_ids(), self.digest()))
            current = self.digest()
            remaining = deadline - self._clock()
            if changes or current != digest or remaining <= 0:
                reply = core.SyncReply(feed.epoch, feed.seq, False, current, tuple(changes))
                return core.encode_reply(reply)
            position = feed.seq  # only this mirror's own pushes since: wait on
            await feed.wait(position, remaining)

    def _full(self, public: set[str], digest: str) -> core.SyncReply:
        peers = [core.Update(ih, o, p, left, age)
                 for ih in sorted(public)
                 for o, p, left, age in self.parts.tracker.entries(ih)]
        return core.SyncReply(self.feed.epoch, self.feed.seq, True, digest,
                              tuple(peers[:core.MAX_ENTRIES]))

    def _register(self, mirror: str, now: float) -> None:
        first = self.mirrors.get(mirror, (now, now))[0]
        self.mirrors[mirror] = (first, now)
        if len(self.mirrors) > MIRRORS_KEPT:
            stalest = min(self.mirrors, key=lambda o: self.mirrors[o][1])
            del self.mirrors[stalest]
