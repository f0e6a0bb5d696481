"""When to have tor forget what it knows of onion services as a client (pure; the clock is
given).

After a service restarts its tor (a node restarted, its tor killed and restarted), clients
that reached it before hold its old descriptor, whose introduction points are dead. Tor
fetches a new one, but asks each responsible HSDir for a given service only once in 15
minutes, and keeps failed introduction points for 2 minutes: a client that asked every
HSDir before the service uploaded its new descriptor waits, silently (its SOCKS request is
parked "waiting for a descriptor"), for up to 15 minutes. The private network showed it:
30-second attempts unanswered for 300 s, and restarts reached after 100 to 200 s.

``SIGNAL NEWNYM`` purges that state (the descriptor cache, the introduction point failure
cache and the HSDir request history, see tor's ``hs_client_purge_state``), and gives new
streams new circuits; streams already open keep theirs. :class:`Reach` sends it when an
onion this tor reached within :data:`WINDOW` seconds fails, at most once every
:data:`INTERVAL` seconds: an onion never reached, or lost for longer, is just offline.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

#: seconds after an onion was last reached during which its failure may be stale state
WINDOW = 15 * 60.0
#: the least seconds between two purges (tor itself allows a NEWNYM every 10 s)
INTERVAL = 60.0
#: onions remembered at once (the least recently reached are forgotten first)
CAP = 4096


class Reach:
    """Onions reached lately, and whether a failure calls for a purge."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 window: float = WINDOW, interval: float = INTERVAL, cap: int = CAP) -> None:
        self._clock, self.window, self.interval, self.cap = clock, window, interval, cap
        self._reached: OrderedDict[str, float] = OrderedDict()  # onion -> when
        self._purged: float | None = None
        #: purges decided so far
        self.purges = 0

    def reached(self, onion: str) -> None:
        """A stream to ``onion`` (no ``.onion``) opened."""
        self._reached.pop(onion, None)
        self._reached[onion] = self._clock()
        while len(self._reached) > self.cap:
            self._reached.popitem(last=False)

    def failed(self, onion: str) -> float | None:
        """A stream to ``onion`` failed (tor's error, or no answer in time).

        :returns: seconds since it was last reached if tor's onion state should be purged
          now, else None
        """
        now = self._clock()
        last = self._reached.get(onion)
        if last is None or now - last > self.window:
            return None
        if self._purged is not None and now - self._purged < self.interval:
            return None
        self._purged = now
        self.purges += 1
        return now - last
