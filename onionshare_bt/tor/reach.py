"""When to have tor forget what it knows of onion services as a client (pure; the clock is
given).

After a service restarts its tor (a node restarted, its tor killed and restarted), clients
hold its old descriptor, whose introduction points are dead. Tor fetches a new one, but asks
each responsible HSDir for a given service only once in 15 minutes, and keeps failed
introduction points for 2 minutes: a client that asked every HSDir before the service
uploaded its new descriptor (or while the HSDirs still held the old one) is refused, or
waits silently, for up to 15 minutes. The private network showed it: 30-second attempts
unanswered for 300 s, restarts reached after 100 to 200 s, and a downloader restarted while
its seeder was away that still could not reach the seeder 180 s after it came back.

``SIGNAL NEWNYM`` purges that state (the descriptor cache, the introduction point failure
cache and the HSDir request history, see tor's ``hs_client_purge_state``), and gives new
streams new circuits; streams already open keep theirs. It also cancels descriptor fetches
in flight, so it is sent sparingly: at most once every :data:`INTERVAL` seconds, and

- at once when an onion this tor reached within :data:`WINDOW` seconds fails (its service
  most likely restarted);
- for an onion not reached lately, once it has kept failing for :data:`FIRST` seconds, then
  again after twice as long each time, up to :data:`LONGEST` apart: it may be offline for
  good, or it may be back while tor will not ask for its new descriptor.

A stream that opens ends the onion's failing spell.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable

#: seconds after an onion was last reached during which its failure may be stale state
WINDOW = 15 * 60.0
#: the least seconds between two purges (tor itself allows a NEWNYM every 10 s)
INTERVAL = 60.0
#: seconds an onion not reached lately keeps failing before its first purge
FIRST = 30.0
#: the longest wait between two purges for the same failing onion (tor asks again by
#: itself after 15 minutes)
LONGEST = 8 * 60.0
#: onions remembered at once, reached and failing each (the least recent forgotten first)
CAP = 4096


@dataclasses.dataclass
class _Spell:
    """An onion failing since ``since``; the next purge for it is due at ``due``."""

    since: float
    due: float
    gap: float


class Reach:
    """Onions reached lately, onions failing, and whether a failure calls for a purge."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 window: float = WINDOW, interval: float = INTERVAL, first: float = FIRST,
                 longest: float = LONGEST, cap: int = CAP) -> None:
        self._clock, self.window, self.interval, self.cap = clock, window, interval, cap
        self.first, self.longest = first, longest
        self._reached: OrderedDict[str, float] = OrderedDict()  # onion -> when
        self._failing: OrderedDict[str, _Spell] = OrderedDict()
        self._purged: float | None = None
        #: purges decided so far
        self.purges = 0

    def reached(self, onion: str) -> None:
        """A stream to ``onion`` (no ``.onion``) opened."""
        self._failing.pop(onion, None)
        _remember(self._reached, onion, self._clock(), self.cap)

    def failed(self, onion: str) -> str | None:
        """A stream to ``onion`` failed (tor's error, or no answer in time).

        :returns: why tor's onion state should be purged now, else None
        """
        now = self._clock()
        last = self._reached.get(onion)
        if last is not None and now - last <= self.window:
            return self._purge(now, f"reached {now - last:.0f} s ago")
        spell = self._failing.get(onion)
        if spell is None:
            _remember(self._failing, onion, _Spell(now, now + self.first, self.first),
                      self.cap)
            return None
        if now < spell.due:
            return None
        reason = self._purge(now, f"failing for {now - spell.since:.0f} s")
        if reason is not None:
            spell.gap = min(spell.gap * 2, self.longest)
            spell.due = now + spell.gap
        return reason

    def _purge(self, now: float, reason: str) -> str | None:
        if self._purged is not None and now - self._purged < self.interval:
            return None
        self._purged = now
        self.purges += 1
        return reason


def _remember(table: OrderedDict, onion: str, value: object, cap: int) -> None:
    table.pop(onion, None)
    table[onion] = value
    while len(table) > cap:
        table.popitem(last=False)
