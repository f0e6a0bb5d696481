"""The relay ledger and the ratio gate, as pure functions (no I/O, no clock).

The relay process's counters (``traffic/written``) count from zero each time that tor
starts. The ledger folds samples into a running total that survives restarts of the node
and of the relay without losing or double counting: each sample carries the identity of
the relay process ("boot") it came from, and a new boot starts from zero.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Sample:
    """Cumulative counters of one relay process."""

    boot: str
    written: int


@dataclasses.dataclass(frozen=True)
class Ledger:
    """What has been relayed for others, in total, and where the counters stood."""

    boot: str = ""
    last_written: int = 0
    relayed: int = 0


def advance(ledger: Ledger, sample: Sample) -> tuple[Ledger, int]:
    """Fold ``sample`` into ``ledger``; returns the new ledger and the bytes it added.

    A sample from another boot, or one whose counter went backwards, comes from a relay
    that started again from zero: all of it is new.
    """
    if sample.boot == ledger.boot and sample.written >= ledger.last_written:
        added = sample.written - ledger.last_written
    else:
        added = sample.written
    return Ledger(sample.boot, sample.written, ledger.relayed + added), added


@dataclasses.dataclass(frozen=True)
class Allowance:
    """How much the node may download: ``free_base + ratio × relayed``.

    Seeding is never gated; only the node's own downloaded payload counts as ``used``.
    """

    free_base: int
    ratio: float
    relayed: int
    used: int

    @property
    def total(self) -> int:
        return self.free_base + int(self.ratio * self.relayed)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.total

    def as_dict(self) -> dict:
        return {
            "free_base": self.free_base, "ratio": self.ratio, "relayed": self.relayed,
            "allowance": self.total, "used": self.used, "remaining": self.remaining,
            "exhausted": self.exhausted,
            "formula": f"{self.free_base} + {self.ratio:g} × {self.relayed} = {self.total}",
        }


def count_downloads(last: dict[str, int], current: dict[str, int]) -> tuple[dict[str, int], int]:
    """New payload bytes since the last look (pure).

    :param last: each torrent's payload counter at the last look
    :param current: the counters now; they count from zero since the torrent joined this
      session, so a torrent seen for the first time counts in full, and a counter that went
      backwards was reset
    :returns: the new baseline and the bytes added
    """
    added = 0
    for torrent, count in current.items():
        before = last.get(torrent, 0)
        added += count - before if count >= before else count
    return dict(current), added


#: remaining allowance above which the download is not capped at all (at the cap this
#: allows, 64 MiB / 15 s, few Tor downloads are held back)
NO_CAP_ABOVE = 64 * 1024 * 1024
#: seconds of the rate cap that libtorrent may hold as credit, not yet spent on reads, and
#: then spend at once: its limiter banks up to 3 s of the limit while the peers take less
#: (``bandwidth_channel::update_quota``), and a peer's request for bandwidth collects its
#: share for up to 20 rounds of the 0.5 s tick before it is granted
#: (``bw_request::ttl``, ``tick_interval``). Measured: with a cap of a fifth of what
#: remained, a peer that had read nothing for 10 s read 748 KB in a second at 59 KB/s
LIMITER_BANK = 3.0 + 20 * 0.5
#: how late a ledger sample may come, in sampling intervals, with the cap still holding
#: (a loaded event loop stretches the interval)
LATE = 2.0
#: the lowest cap: libtorrent reads 0 as "no limit", and the last bytes of the allowance
#: should not take minutes; what the gate lets past the allowance is at most about
#: ``LIMITER_BANK × RATE_FLOOR``
RATE_FLOOR = 8 * 1024
#: credit that opens a closed gate again (or all a torrent still needs, if less): reopening
#: reconnects the torrent's peers through Tor, not worth it for a few bytes of credit
REOPEN_CREDIT = 256 * 1024


def rate_cap(remaining: int, interval: float, floor: int = RATE_FLOOR) -> int:
    """A download rate limit (bytes/s) under which the download cannot pass ``remaining``
    before the next sample, ``interval`` seconds away (or up to :data:`LATE` intervals
    late); 0 (no limit) while the allowance is far away.

    Between two samples the download takes at most what libtorrent holds as unspent
    credit (:data:`LIMITER_BANK` seconds of the cap) plus the cap over the interval; the
    cap is ``remaining`` over their sum. The download then slows as it nears the
    allowance (each second it takes at most a fifteenth of what is left), down to ``floor``.
    """
    if remaining > NO_CAP_ABOVE:
        return 0
    return max(floor, int(remaining / (LIMITER_BANK + LATE * max(interval, 0.1))))


def gate_closed(closed: bool, allowance: Allowance, needed: int) -> bool:
    """Whether a download's gate is closed after this sample (pure).

    :param closed: whether it was closed until now
    :param needed: bytes the torrent still has to download
    :returns: closed once the allowance is used up; a closed gate opens again once the
      credit reaches :data:`REOPEN_CREDIT`, or all that the torrent still needs
    """
    if allowance.exhausted:
        return True
    if closed:
        return allowance.remaining < min(REOPEN_CREDIT, max(needed, 1))
    return False


#: seconds between two points of the relay's rate history, and how many points it keeps
#: (an hour): what ``obt relay status --json`` gives as ``history`` and the UI draws
HISTORY_STEP = 10.0
HISTORY_POINTS = 360


class RateHistory:
    """The relay's relayed-bytes counter sampled over time, for its rate as a chart (pure:
    the caller passes the time).

    A point is kept at most every ``step`` seconds, the last ``points`` of them.
    """

    def __init__(self, step: float = HISTORY_STEP, points: int = HISTORY_POINTS) -> None:
        self.step, self.points = step, points
        self._samples: list[tuple[float, int]] = []

    def add(self, now: float, relayed: int) -> None:
        if self._samples and now - self._samples[-1][0] < self.step:
            return
        self._samples.append((now, relayed))
        del self._samples[:-(self.points + 1)]

    def rates(self) -> list[tuple[float, float]]:
        """``(time, bytes/s since the point before)`` for every point but the first; a
        counter that went back (a ledger reset) counts as 0."""
        return [(t1, max(0, b1 - b0) / (t1 - t0))
                for (t0, b0), (t1, b1) in zip(self._samples, self._samples[1:]) if t1 > t0]
