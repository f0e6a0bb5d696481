"""Liveness, pure: which bridge paths are dead, why a download is not moving, loop lag.

No clock, no I/O: the node's watchdog passes the time and the counters and acts on the
answers (closes silent connections, announces and dials again, shows the reason).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Hashable, Iterable

#: seconds without progress before a download says why
REASON_AFTER = 10.0


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What :meth:`Liveness.look` makes of a download.

    :param stalled: no verified progress for the stall timeout
    :param kick: announce and dial again now (lost its last peer, or stalled)
    :param reason: why it is not moving, for ``obt list``; None while it moves
    """

    stalled: bool
    kick: bool
    reason: str | None


@dataclasses.dataclass
class _Progress:
    done: int
    since: float  # when ``done`` last grew
    connected: int = 0
    lost: int = 0  # peers gone since ``since``
    closed: int = 0  # silent connections we closed since ``since``
    kicked: float = float("-inf")


class Liveness:
    """Which paths are dead and why downloads are not moving. Pure: the caller passes the
    time and the counters and acts on the answers.

    :param silence: seconds a path holding a connection may go without a byte from its peer
    :param stall: seconds without verified progress before a download is stalled
    :param reason_after: seconds without progress before a download says so
    """

    def __init__(self, silence: float, stall: float, reason_after: float = REASON_AFTER) -> None:
        self.silence = silence
        self.stall = stall
        self.reason_after = min(reason_after, stall)  # a stalled download always says why
        #: announce and dial again at most this often (an announce may take minutes)
        self.kick_every = max(stall, silence)
        self._paths: dict[Hashable, tuple[int, float | None]] = {}
        self._owing: dict[Hashable, tuple[int, float | None]] = {}
        self._downloads: dict[str, _Progress] = {}

    def silent_paths(self, now: float, paths: Iterable[tuple[Hashable, int, int]]) -> set:
        """The keys of the paths to close now: they hold a connection and carried no byte
        from the peer for the window.

        :param paths: ``(key, bytes received so far, open connections)`` of every path;
            paths not given are forgotten
        """
        self._paths, dead = _quiet(self._paths, now, paths, self.silence)
        return dead

    def owing_peers(self, now: float, peers: Iterable[tuple[Hashable, int, int]]) -> set:
        """The keys of the connections to close now: we wait on blocks we asked them for,
        and no payload came for the window. Keep-alives keep a path from being silent; a
        peer that sends them but never what it was asked for (a stuck or hostile seeder,
        a circuit that lost one direction's data) is dead all the same.

        :param peers: ``(key, payload received so far, blocks asked for and not received)``
            of every connection; connections not given are forgotten
        """
        self._owing, dead = _quiet(self._owing, now, peers, self.silence)
        return dead

    def closed(self, torrent_id: str, count: int) -> None:
        """``count`` silent connections of the torrent were closed."""
        progress = self._downloads.get(torrent_id)
        if progress is not None:
            progress.closed += count

    def look(self, now: float, torrent_id: str, done: int, connected: int) -> Verdict:
        """Take a download's verified bytes and connected peers; say what to do."""
        p = self._downloads.get(torrent_id)
        if p is None:
            p = self._downloads[torrent_id] = _Progress(done, now)
        elif done > p.done:
            p.done, p.since, p.lost, p.closed = done, now, 0, 0
        else:
            p.done = done  # a piece that failed its hash check is no progress
        lost_all = connected == 0 and p.connected > 0
        p.lost += max(0, p.connected - connected)
        p.connected = connected
        idle = now - p.since
        stalled = idle >= self.stall
        kick = (lost_all or stalled) and now - p.kicked >= self.kick_every
        if kick:
            p.kicked = now
        return Verdict(stalled, kick, self._reason(p, idle, connected))

    def _reason(self, p: _Progress, idle: float, connected: int) -> str | None:
        parts = []
        if idle >= self.reason_after:
            parts.append(f"no data from any peer for {idle:.0f} s")
        if p.lost:
            parts.append(f"{p.lost} peer{'s' if p.lost != 1 else ''} lost")
        if p.closed:
            parts.append(f"{p.closed} silent connection{'s' if p.closed != 1 else ''} closed")
        if connected == 0:
            parts.append("no peer connected")
        return "; ".join(parts) or None

    def forget(self, torrent_id: str) -> None:
        self._downloads.pop(torrent_id, None)

    def keep(self, torrent_ids: set[str]) -> None:
        """Forget every download not among ``torrent_ids`` (removed torrents)."""
        for gone in set(self._downloads) - torrent_ids:
            del self._downloads[gone]


def _quiet(last_seen: dict, now: float, items: Iterable[tuple[Hashable, int, int]],
           window: float) -> tuple[dict, set]:
    """One look at counters that must grow while something is owed.

    :param last_seen: what the previous look returned, by key: ``(count, since)``, where
        ``since`` is when the count last grew while owed (None: nothing owed)
    :param items: ``(key, count, owed)``; a count that stays put while ``owed`` is not 0
        for ``window`` seconds makes the key dead, judged again only a full window later
    :returns: the state for the next look, and the dead keys
    """
    seen, dead = {}, set()
    for key, count, owed in items:
        last = last_seen.get(key)
        if not owed:
            seen[key] = (count, None)  # nothing to judge; the clock starts when owed
        elif last is None or last[1] is None or last[0] != count:
            seen[key] = (count, now)
        elif now - last[1] >= window:
            dead.add(key)
            seen[key] = (count, now)
        else:
            seen[key] = last
    return seen, dead


class LagMeter:
    """The event loop's worst lateness, since start and over a sliding window (pure).

    :param window: seconds the recent maximum looks back
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.max = 0.0
        self._recent: collections.deque[tuple[float, float]] = collections.deque()

    def record(self, now: float, lag: float) -> None:
        self.max = max(self.max, lag)
        recent = self._recent
        while recent and recent[-1][1] <= lag:  # a smaller, older lag is never the maximum
            recent.pop()
        recent.append((now, lag))
        self._expire(now)

    def recent(self, now: float) -> float:
        self._expire(now)
        return self._recent[0][1] if self._recent else 0.0

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window:
            self._recent.popleft()
