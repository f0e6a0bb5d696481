"""A live broadcast's pure parts: what a server keeps of the stream, and the relay tree.

- :class:`Backlog`: the stream's header pages and its last few seconds, kept by everyone
  who serves it (the broadcaster and every relay), so that a newcomer starts at once on a
  clean page boundary and a listener that re-joins elsewhere resumes just after the last
  page it had (by page sequence number), losing nothing the new server still holds.
- :class:`Tree`: the broadcaster's map of who listens through whom. A newcomer is placed
  under the shallowest server with a free slot (the broadcaster first); a relay a listener
  reports lost is given no one new for a while, and its listeners, re-joining, are placed
  elsewhere.

Nothing here does I/O or reads a clock: callers pass ``now`` (seconds, monotonic).
Opus granule positions count 48 kHz samples, whatever the sample rate of the source.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
from collections.abc import Iterable

from .ogg import Page

__all__ = ["GRANULE_RATE", "MAX_FANOUT", "MAX_MEMBERS", "SUSPECT", "Backlog", "Placement",
           "Tree", "TreeError"]

#: Opus granule positions are in 48 kHz samples (RFC 7845 section 4)
GRANULE_RATE = 48_000
#: listeners one relay may serve, however many it offers
MAX_FANOUT = 8
#: members a tree holds (a listener may register made-up relays; they cost a slot each)
MAX_MEMBERS = 1000
#: seconds a server a listener reported lost gets no one new (a hostile relay keeps
#: sending heartbeats; an honest one that stalled once is back after this)
SUSPECT = 60.0


class Backlog:
    """The header pages and the last **keep** seconds of pages of one stream.

    :param keep: seconds of audio kept for newcomers and re-joiners
    :param lead: seconds of audio a newcomer is given at once (so its player starts with a
      little buffer instead of waiting for the next page)
    """

    def __init__(self, keep: float = 8.0, lead: float = 1.0) -> None:
        if not 0 <= lead <= keep:
            raise ValueError("lead must be between 0 and keep")
        self.keep, self.lead = keep, lead
        self.headers: list[Page] = []
        self.pages: collections.deque[Page] = collections.deque()
        self.serial: int | None = None
        #: pages taken in since the start
        self.count = 0

    @property
    def latest(self) -> int:
        """The granule position of the newest audio page (0 before any)."""
        return self.pages[-1].granule if self.pages else 0

    def add(self, page: Page) -> None:
        """Take in the stream's next page.

        :raises ValueError: a page of another stream (another serial), a header page after
          the audio began, a granule position that runs backwards, or a sequence number
          that does not grow
        """
        if self.serial is None:
            self.serial = page.serial
        elif page.serial != self.serial:
            raise ValueError("a page of another logical stream")
        if page.is_header:
            if self.pages:
                raise ValueError("a header page after the audio began")
            self.headers.append(page)
        else:
            if self.pages and page.granule < self.pages[-1].granule:
                raise ValueError("a granule position that runs backwards")
            last = self.pages[-1] if self.pages else (self.headers[-1] if self.headers else None)
            if last is not None and page.sequence <= last.sequence:
                raise ValueError("a page sequence number that does not grow")
            self.pages.append(page)
            oldest = page.granule - int(self.keep * GRANULE_RATE)
            while len(self.pages) > 1 and self.pages[0].granule < oldest:
                self.pages.popleft()
        self.count += 1

    def start(self, after: int | None = None) -> list[Page]:
        """What a listener is sent before the live pages: the headers, then the kept pages
        from a clean boundary.

        :param after: the sequence number of the last page the listener has (a re-join),
          or None for a newcomer, who gets the last :attr:`lead` seconds
        """
        pages = list(self.pages)
        if after is None:
            since = self.latest - int(self.lead * GRANULE_RATE)
            chosen = [p for p in pages if p.granule >= since]
        else:
            chosen = [p for p in pages if p.sequence > after]
        while chosen and chosen[0].continued:  # no decoder can start inside a packet
            chosen.pop(0)
        return list(self.headers) + chosen


@dataclasses.dataclass
class _Member:
    secret: str
    slots: int
    parent: str  # "" is the broadcaster
    seen: float
    depth: int
    #: until then it is given no one new: a listener reported it lost (gone, stalled, or
    #: sending pages the broadcaster did not sign); its heartbeats do not clear it
    suspect_until: float = 0.0


class TreeError(ValueError):
    """A join or a heartbeat the broadcaster refuses (the message goes back to the peer)."""


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a listener listens from: ``parent`` is a relay's onion, or "" for the
    broadcaster itself; ``secret`` authorizes its heartbeats."""

    parent: str
    depth: int
    secret: str


class Tree:
    """Who listens through whom, as the broadcaster keeps it.

    A member is a listener that relays: it is named by the onion it serves the stream on
    (fresh for each broadcast), offers ``slots`` further listeners, and sends heartbeats
    with the secret its join returned. Members not heard from for ``ttl`` seconds are
    forgotten; a member a listener reported lost gets no one new for a while.

    :param root_slots: listeners the broadcaster serves itself
    :param ttl: seconds of silence after which a member is forgotten
    """

    def __init__(self, root_slots: int, ttl: float = 10.0,
                 max_members: int = MAX_MEMBERS) -> None:
        if root_slots < 1:
            raise ValueError("the broadcaster must serve at least one listener")
        self.root_slots, self.ttl, self.max_members = root_slots, ttl, max_members
        self._members: dict[str, _Member] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, onion: str) -> bool:
        return onion in self._members

    def parent_of(self, onion: str) -> str | None:
        member = self._members.get(onion)
        return member.parent if member else None

    def secret_of(self, onion: str) -> str:
        """A member's secret (its tickets for listeners under it are made with it)."""
        return self._members[onion].secret

    def children(self, parent: str) -> list[str]:
        """The members placed under **parent** ("" the broadcaster), oldest first."""
        return [o for o, m in self._members.items() if m.parent == parent]

    def depth(self) -> int:
        """The deepest member's depth (1: under the broadcaster), 0 with none."""
        return max((m.depth for m in self._members.values()), default=0)

    def join(self, onion: str, slots: int, now: float, lost: Iterable[str] = ()) -> Placement:
        """Place a listener that serves on **onion** and offers **slots** relays.

        A member joining again (its server went away) keeps its own listeners and is
        placed anywhere but under them. **lost** names servers it could not use: they get
        no one new for :data:`SUSPECT` seconds, heartbeats or not.

        :raises TreeError: the tree is full and this is a newcomer, or no server has a
          free slot
        """
        self.expire(now)
        for gone in lost:
            if gone in self._members and gone != onion:
                self._members[gone].suspect_until = now + SUSPECT
        old = self._members.get(onion)
        if old is None and len(self._members) >= self.max_members:
            raise TreeError("this broadcast has as many listeners as it takes")
        below = self._subtree(onion) if old else {onion}
        parent, depth = self._free_slot(onion, now, exclude=below | set(lost))
        if parent is None:
            raise TreeError("no listener of this broadcast has a free slot; try again")
        secret = old.secret if old else secrets.token_urlsafe(16)
        member = _Member(secret, max(0, min(slots, MAX_FANOUT)), parent, now, depth)
        self._members[onion] = member
        if old:
            self._redepth(onion)
        return Placement(parent, depth, secret)

    def heartbeat(self, onion: str, secret: str, now: float, slots: int | None = None) -> str:
        """A member is alive; **slots**, if given, is what it offers now (a listener
        offers none until its own onion is published).

        :returns: the parent the broadcaster has it under
        :raises TreeError: not a member (forgotten: it joins again), or the wrong secret
        """
        member = self._members.get(onion)
        if member is None or not secrets.compare_digest(member.secret, secret):
            raise TreeError("not a listener of this broadcast; join again")
        member.seen = now
        if slots is not None:
            member.slots = max(0, min(slots, MAX_FANOUT))
        return member.parent

    def leave(self, onion: str, secret: str) -> None:
        """A member stops listening; its listeners re-join when their stream ends."""
        member = self._members.get(onion)
        if member is not None and secrets.compare_digest(member.secret, secret):
            del self._members[onion]

    def expire(self, now: float) -> list[str]:
        """Forget members silent for :attr:`ttl` seconds; returns their onions."""
        gone = [o for o, m in self._members.items() if now - m.seen > self.ttl]
        for onion in gone:
            del self._members[onion]
        return gone

    # -- inside -------------------------------------------------------------------------
    def _subtree(self, onion: str) -> set[str]:
        """**onion** and every member below it."""
        out, frontier = {onion}, [onion]
        while frontier:
            parent = frontier.pop()
            for child, m in self._members.items():
                if m.parent == parent and child not in out:
                    out.add(child)
                    frontier.append(child)
        return out

    def _free_slot(self, joining: str, now: float, exclude: set[str]
                   ) -> tuple[str | None, int]:
        """The shallowest server with a free slot (the broadcaster first, then members
        by depth, oldest first) for **joining** (whose old place is free again), and the
        depth a listener under it would have."""
        counts = collections.Counter(m.parent for o, m in self._members.items()
                                     if o != joining)
        if counts[""] < self.root_slots:
            return "", 1
        ordered = sorted(self._members.items(), key=lambda kv: kv[1].depth)  # stable
        placed = self._placed(now)
        for onion, m in ordered:
            if onion not in placed or onion in exclude or m.slots == 0:
                continue
            if counts[onion] < m.slots:
                return onion, m.depth + 1
        return None, 0

    def _placed(self, now: float) -> set[str]:
        """Servers whose chain reaches the broadcaster through no suspect member, itself
        included (a member whose parent was forgotten or reported lost is not, until it
        re-joins or the suspicion lapses)."""
        placed, changed = {""}, True
        while changed:
            changed = False
            for onion, m in self._members.items():
                if onion not in placed and m.parent in placed and m.suspect_until <= now:
                    placed.add(onion)
                    changed = True
        return placed

    def _redepth(self, onion: str) -> None:
        frontier = [onion]
        while frontier:
            parent = frontier.pop()
            for child, m in self._members.items():
                if m.parent == parent:
                    m.depth = self._members[parent].depth + 1
                    frontier.append(child)
