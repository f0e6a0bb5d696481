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


def rate_cap(remaining: int, interval: float, floor: int = 16 * 1024) -> int:
    """A download rate limit (bytes/s) that cannot overshoot ``remaining`` by more than about
    one sampling interval; 0 (no limit) while the allowance is far away."""
    if remaining > 64 * 1024 * 1024:
        return 0
    return max(floor, int(remaining / max(interval, 0.1)))
