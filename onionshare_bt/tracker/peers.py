"""The tracker's peer table: which peers each torrent has, apart from any I/O or clock.

:class:`PeerTable` is the in-memory peer list behind the tracker (callers pass ``now``): it
expires silent peers, caps each torrent's list, binds each entry to the peer_id that
announced it, and merges what other trackers of the same share (mirrors) saw. Clients that
cannot be reached (an open share's standard clients) are kept apart, by peer_id, only to be
counted: they are never listed, saved or passed on.
"""

from __future__ import annotations

import dataclasses

from .announce import Announce

#: peers remembered per torrent; beyond it the stalest are forgotten
MAX_PEERS = 1000
#: entries one merge takes in (a mirror's push is capped lower, see mirror.core.MAX_PUSH)
MAX_MERGE = 5000


@dataclasses.dataclass
class _Entry:
    left: int
    seen: float
    #: the peer_id that announced it here (only it may change or remove the entry until it
    #: expires); b"" for an entry another tracker synced; None for one restored from disk,
    #: which the first announcer claims
    owner: bytes | None


class PeerTable:
    """Peers of every torrent a tracker serves, expired after ``ttl`` seconds of silence.

    A share's own onions are listed as permanent seeders (``fixed``). Each torrent keeps at
    most ``max_peers`` announced peers: anyone can announce any number of made-up onions, so
    when the list is full the stalest peer makes room. Each torrent's dict is kept in the
    order peers were last seen, so both expiry and eviction start at its head.

    An entry belongs to the ``peer_id`` that first announced it: an announce for the same
    onion and port by another peer_id (a ``stopped`` included) changes nothing until the
    entry expires. Entries merged from other trackers (mirrors) are nobody's: announces here
    do not take them over, and only a merged ``stopped`` removes them.
    """

    def __init__(self, ttl: float, max_peers: int = MAX_PEERS) -> None:
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self.ttl = ttl
        self.max_peers = max_peers
        self._peers: dict[bytes, dict[tuple[str, int], _Entry]] = {}
        self._fixed: dict[bytes, list[tuple[str, int]]] = {}
        #: unreachable clients per torrent: peer_id -> last seen, stalest first
        self._unreachable: dict[bytes, dict[bytes, float]] = {}

    def set_fixed(self, info_hash: bytes, peers: list[tuple[str, int]]) -> None:
        self._fixed[info_hash] = list(peers)

    def drop(self, info_hash: bytes) -> None:
        self._peers.pop(info_hash, None)
        self._fixed.pop(info_hash, None)
        self._unreachable.pop(info_hash, None)

    def announce(self, a: Announce, now: float) -> list[tuple[str, int]]:
        """Record ``a`` (see :meth:`record`) and return up to ``a.numwant`` other peers,
        fixed seeders first.

        An observer (no onion) is not recorded and is given seeders only: it wants pieces
        and passes none on (a release not verified yet), so it talks to no leecher. An
        unreachable client is counted, never listed, and given every peer, seeders first
        (the share must admit it: see :func:`.core.admit`).
        """
        self.record(a, now)
        return self.listed(a, now)

    def listed(self, a: Announce, now: float) -> list[tuple[str, int]]:
        """The peers to hand the announcer of ``a``: never itself; seeders to an observer;
        seeders first to an unreachable client (it can only dial, so it wants those most)."""
        if a.unreachable:
            return self.peers(a.info_hash, now, seeds_first=True)[: a.numwant]
        if not a.onion:
            return self.peers(a.info_hash, now, seeds_only=True)[: a.numwant]
        return self.peers(a.info_hash, now, exclude=a.onion)[: a.numwant]

    def record(self, a: Announce, now: float) -> bool:
        """Take in an announce; True when the swarm changed (only then is it worth saving
        or passing on to mirrors).

        An observer changes nothing; nor does an announce for an entry that belongs to
        another peer_id or to another tracker, nor a ``stopped`` for an unknown peer. An
        unreachable client is only counted (see :meth:`counts`): False.
        """
        if a.unreachable:
            self._count_unreachable(a, now)
            return False
        if not a.onion or a.left < 0:
            return False
        key = (a.onion, a.port)
        peers = self._peers.get(a.info_hash, {})
        old = peers.get(key)
        if old is not None and now - old.seen <= self.ttl and old.owner is not None \
                and old.owner != a.peer_id:
            return False
        if a.event == "stopped":
            if old is None:
                return False
            del peers[key]
            return True
        peers = self._peers.setdefault(a.info_hash, peers)
        peers.pop(key, None)  # re-inserted at the end: the freshest
        while len(peers) >= self.max_peers:
            del peers[next(iter(peers))]
        peers[key] = _Entry(left=a.left, seen=now, owner=a.peer_id)
        return True

    def peers(self, info_hash: bytes, now: float, exclude: str = "",
              seeds_only: bool = False, seeds_first: bool = False) -> list[tuple[str, int]]:
        """Listed peers: the fixed seeders, then announced peers (freshest last).

        :param seeds_only: leave out announced peers with bytes left
        :param seeds_first: announced seeders before announced leechers
        """
        live = self._expire(info_hash, now)
        out = [p for p in self._fixed.get(info_hash, []) if p[0] != exclude]
        fixed = set(out)
        rest = [(k, e.left) for k, e in live.items() if k[0] != exclude and k not in fixed
                and not (seeds_only and e.left > 0)]
        if seeds_first:
            rest.sort(key=lambda kl: kl[1] > 0)  # stable: seeders, then leechers
        return out + [k for k, _ in rest]

    def _count_unreachable(self, a: Announce, now: float) -> None:
        """Remember (or forget, on ``stopped``) an unreachable client, for counting only."""
        clients = self._unreachable_live(a.info_hash, now)
        clients.pop(a.peer_id, None)  # re-inserted at the end: the freshest
        if a.event != "stopped":
            while len(clients) >= self.max_peers:
                del clients[next(iter(clients))]
            clients[a.peer_id] = now
        if clients:
            self._unreachable[a.info_hash] = clients
        else:
            self._unreachable.pop(a.info_hash, None)

    def _unreachable_live(self, info_hash: bytes, now: float) -> dict[bytes, float]:
        clients = self._unreachable.get(info_hash, {})
        while clients and now - next(iter(clients.values())) > self.ttl:
            del clients[next(iter(clients))]
        return clients

    def _expire(self, info_hash: bytes, now: float) -> dict[tuple[str, int], _Entry]:
        live = self._peers.get(info_hash, {})
        while live:
            key = next(iter(live))
            if now - live[key].seen <= self.ttl:
                break
            del live[key]
        return live

    def restore(self, info_hash: bytes, entries: list[tuple[str, int, int, float]],
                now: float) -> None:
        """Take back peers saved earlier: ``(onion, port, left, age_seconds)`` each.

        Their owners are not saved: the first announce for each claims it again.
        """
        for onion, port, left, age in sorted(entries, key=lambda e: -e[3]):  # oldest first
            if age <= self.ttl and left >= 0 \
                    and len(self._peers.get(info_hash, {})) < self.max_peers:
                self._peers.setdefault(info_hash, {})[(onion, port)] = _Entry(
                    left=left, seen=now - age, owner=None)

    def entries(self, info_hash: bytes, now: float) -> list[tuple[str, int, int, float]]:
        """Every live peer as ``(onion, port, left, age)``, fixed seeders first (age 0)."""
        live = self._expire(info_hash, now)
        fixed = self._fixed.get(info_hash, [])
        out = [(o, p, 0, 0.0) for o, p in fixed]
        out += [(o, p, e.left, max(0.0, now - e.seen))
                for (o, p), e in live.items() if (o, p) not in fixed]
        return out

    def merge(self, info_hash: bytes, entries: list[tuple[str, int, int, float]],
              now: float) -> int:
        """Take in peers another tracker saw (see :meth:`merge_changes`); how many changed."""
        return len(self.merge_changes(info_hash, entries, now))

    def merge_changes(self, info_hash: bytes, entries: list[tuple[str, int, int, float]],
                      now: float) -> list[tuple[str, int, int, float]]:
        """Take in peers another tracker saw: ``(onion, port, left, age)``, ``left == -1``
        for a "stopped" (any other negative ``left`` is dropped).

        A peer seen more recently here keeps its entry; a merged "stopped" removes only an
        entry that came from another tracker (never one a peer announced here). When the
        list is full, the stalest entries of the old and new together make room, so a merge
        never evicts a peer fresher than what it brings. At most :data:`MAX_MERGE` entries
        are read; the cost is one sort of the torrent's list per call, not one per entry.

        :returns: the entries that changed, as given (stops included)
        """
        newest: dict[tuple[str, int], tuple[int, float, float]] = {}
        for onion, port, left, age in entries[:MAX_MERGE]:
            if left < -1:
                continue
            age = max(0.0, age)
            key = (onion, port)
            if key not in newest or age < newest[key][2]:
                newest[key] = (left, now - age, age)
        peers = self._expire(info_hash, now)
        changed: list[tuple[str, int, int, float]] = []
        updates: dict[tuple[str, int], _Entry] = {}
        for key, (left, seen, age) in newest.items():
            old = peers.get(key)
            if left < 0:  # a "stopped" older than the peer's last sighting here is late
                if old is not None and old.owner == b"" and old.seen <= seen:
                    del peers[key]
                    changed.append((*key, left, age))
            elif age <= self.ttl and (old is None or old.seen < seen):
                updates[key] = _Entry(left, seen, b"" if old is None else old.owner)
        if updates:
            merged = [kv for kv in peers.items() if kv[0] not in updates]
            merged += updates.items()
            merged.sort(key=lambda kv: kv[1].seen)
            del merged[:max(0, len(merged) - self.max_peers)]
            peers = self._peers[info_hash] = dict(merged)
            changed += [(*key, e.left, now - e.seen) for key, e in updates.items()
                        if peers.get(key) is e]
        if not peers:
            self._peers.pop(info_hash, None)
        return changed

    def size(self, info_hash: bytes) -> int:
        """How many announced (not fixed) peers are remembered for ``info_hash``."""
        return len(self._peers.get(info_hash, {}))

    def counts(self, info_hash: bytes) -> tuple[int, int]:
        """(complete, incomplete) counts, fixed seeders included; every unreachable client
        counts as incomplete (nobody can fetch a piece from it)."""
        live = self._peers.get(info_hash, {}).values()
        seeds = sum(1 for e in live if e.left == 0) + len(self._fixed.get(info_hash, []))
        unreachable = len(self._unreachable.get(info_hash, {}))
        return seeds, sum(1 for e in live if e.left > 0) + unreachable

    def unreachable(self, info_hash: bytes, now: float) -> int:
        """How many unreachable clients announced within the expiry."""
        return len(self._unreachable_live(info_hash, now))
