"""How many paths a download uses: one more at a time, while each adds enough.

A download starts on the paths its trackers name (one per onion of each peer). This part
measures the download's rate on them, then asks for one more path (another circuit to a
peer already connected: its own loopback endpoint, dialled with its own Tor isolation),
measures again once that path carries a connection, and keeps it if the rate rose by at
least :data:`GAIN`; it asks for the next one, up to ``max_paths``. The first path that adds
less is dropped again and the count settles there: a bottleneck elsewhere (the seeder's
upload shared with many downloaders, a cap on our own download rate, a slow relay every
circuit crosses) is never met with more circuits than it can use.

A rate is taken only once it holds still: windows of :data:`WINDOW` seconds follow each
other until two in a row agree within :data:`AGREE` (a circuit's slow start, libtorrent's
rate limiter handing a new connection a second's quota at once), or, after
:data:`MAX_WINDOWS`, the last two are averaged.

Pure: no clock, no sockets. :mod:`onionshare_bt.torrents.paths` feeds it the time, the
payload bytes received so far and the paths that carry a connection, and carries out what
:meth:`PathGrowth.tick` returns.
"""

from __future__ import annotations

import dataclasses

#: the least a new path must add to the download's rate to be kept (0.15: 15 %)
GAIN = 0.15
#: seconds a new set of paths runs before its rate is measured (a circuit's slow start,
#: libtorrent's request queue on the new connection)
SETTLE = 2.0
#: seconds of one measuring window
WINDOW = 3.0
#: two windows in a row whose rates are this close (relative to their mean) give the rate
AGREE = 0.10
#: windows one rate may take at most (then the last two are averaged)
MAX_WINDOWS = 4
#: seconds a new path may take to carry a connection before it is given up
READY_TIMEOUT = 60.0
#: seconds a new path takes to carry a connection, as :meth:`PathGrowth._grow` expects it
#: (a rendezvous on a busy network)
DIAL = 2.0
#: paths one download may grow to (lanes to the peers' onions included)
MAX_PATHS = 8
#: paths to one onion of a peer (the first included)
MAX_LANES = 4

ADD, DROP = "add", "drop"


@dataclasses.dataclass(frozen=True)
class Step:
    """One path tried: the rate before and with it (bytes/s), and whether it was kept."""

    paths: int
    rate_before: float
    rate_after: float
    kept: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class PathGrowth:
    """The path count of one download (see the module's text).

    :param max_paths: never more paths than this
    :param gain: the least relative rise a new path must bring
    :param settle: seconds before a rate is measured
    :param window: seconds a rate is measured over
    :param ready_timeout: seconds a new path may take to carry a connection
    """

    def __init__(self, max_paths: int = MAX_PATHS, gain: float = GAIN, settle: float = SETTLE,
                 window: float = WINDOW, ready_timeout: float = READY_TIMEOUT) -> None:
        self.max_paths, self.gain = max_paths, gain
        self.settle_s, self.window_s, self.ready_timeout = settle, window, ready_timeout
        #: ``measuring`` (the rate on the paths it has), ``probing`` (with one more),
        #: ``settled``
        self.state = "measuring"
        #: why it settled
        self.reason = ""
        #: the rate of the paths it kept (bytes/s), once measured
        self.rate: float | None = None
        #: the paths carrying a connection at the last tick
        self.paths = 0
        self.steps: list[Step] = []
        self._ready_at: float | None = None
        self._mark: tuple[float, int] | None = None
        self._windows: list[float] = []
        self._probe_at = 0.0

    def tick(self, now: float, received: int, paths: int, ready: bool, left: int) -> str | None:
        """One look at the download.

        :param now: a monotonic clock, in seconds
        :param received: payload bytes received so far (never decreasing)
        :param paths: paths carrying a connection now
        :param ready: every path asked for carries a connection (and at least one does)
        :param left: payload bytes still wanted
        :returns: :data:`ADD` (open one more path), :data:`DROP` (close the path added
            last), or None
        """
        self.paths = paths
        if self.state == "settled":
            return None
        if not ready:
            self._ready_at = self._mark = None
            self._windows = []
            if self.state == "probing" and now - self._probe_at > self.ready_timeout:
                self.steps.append(Step(paths + 1, self.rate or 0.0, 0.0, False))
                self._settle(f"path {paths + 1} never carried a connection")
                return DROP
            return None
        if self._ready_at is None:
            self._ready_at = now
        if self._mark is None:
            if now - self._ready_at >= self.settle_s:
                self._mark = (now, received)
            return None
        start, before = self._mark
        if now - start < self.window_s:
            return None
        self._windows.append((received - before) / (now - start))
        self._mark = (now, received)
        rate = self._steady()
        if rate is None:
            return None
        self._ready_at = self._mark = None
        self._windows = []
        if self.state == "measuring":
            if rate <= 0:
                return None  # nothing moves (no peer has a piece for us yet): measure again
            self.rate = rate
            return self._grow(now, paths, left)
        base = self.rate or 0.0
        kept = rate >= base * (1 + self.gain)
        self.steps.append(Step(paths, base, rate, kept))
        if kept:
            self.rate = rate
            return self._grow(now, paths, left)
        self._settle(f"path {paths} added {_percent(base, rate)}, under {self.gain:.0%}")
        self.paths = paths - 1  # once it is closed
        return DROP

    def _steady(self) -> float | None:
        """The rate, once the last two windows agree (or the last allowed one is in)."""
        if len(self._windows) < 2:
            return None
        a, b = self._windows[-2:]
        mean = (a + b) / 2
        if abs(a - b) <= AGREE * mean or len(self._windows) >= MAX_WINDOWS:
            return mean
        return None

    def _grow(self, now: float, paths: int, left: int) -> str | None:
        if paths >= self.max_paths:
            self._settle(f"at the cap of {self.max_paths} paths")
            return None
        # a path tried must be measured before the end: a dial, the settling, two windows
        if left < (self.rate or 0.0) * (DIAL + self.settle_s + 2 * self.window_s):
            self._settle("too close to the end to measure another path")
            return None
        self.state, self._probe_at = "probing", now
        return ADD

    def give_up(self, reason: str, paths: int | None = None) -> None:
        """Stop growing (no path can be added, or the download ended).

        :param paths: the paths left, if the caller closed some (a path being tried)
        """
        if paths is not None:
            self.paths = paths
        if self.state != "settled":
            self._settle(reason)

    def _settle(self, reason: str) -> None:
        self.state, self.reason = "settled", reason

    def describe(self) -> dict:
        """What ``obt list --peers`` shows."""
        return {"state": self.state, "paths": self.paths, "reason": self.reason,
                "rate": self.rate, "max_paths": self.max_paths,
                "steps": [s.as_dict() for s in self.steps]}


def _percent(before: float, after: float) -> str:
    if before <= 0:
        return "nothing measurable"
    return f"{(after - before) / before:+.0%}"
