"""Which onion services have their descriptors on the HSDirs (pure: the caller passes ``now``).

A v3 service has two descriptors (this time period's and the next's); tor uploads each
to every responsible HSDir: 14 uploads on the private network, 16 on Tor's. tor reports
each upload as it starts (``HS_DESC UPLOAD``) and as it ends (``UPLOADED``, or ``FAILED``
with a reason). A service counts as *published* once one upload succeeded and every upload
of its first round has ended, and stays so.

The first round is every upload tor started before the first one stored: tor starts both
descriptors' uploads to all HSDirs at once, so the round is complete when its first answer
comes. Later rounds do not count: tor uploads again when a time period turns or
introduction points change, while the descriptors of the first round keep serving clients.
On the private network a time period lasted 4 minutes then (24 votes of 10 s; 8 minutes
now, 16 in the Tor tests' network), and measured with 200 services, the round a turn set
off went unanswered for more than 170 s: counting it kept 154 services "not published"
whose first round had been stored everywhere.

Why not the first ``UPLOADED``: after a restart, the HSDirs still hold the previous
tor's descriptors, whose introduction points are dead. A client that asks an HSDir the
new upload has not reached yet gets the old descriptor and fails with SOCKS 0xF2
(introduction failed). A restarted tor with many services starts all their uploads at
once and needs one fresh circuit per upload: measured on the private network, 40
services (560 uploads) took 22 s to be all stored, and the first ``UPLOADED`` of each
came long before its last.

``FAILED`` ends an upload too. The usual one, ``UPLOAD_REJECTED`` after a slow burst,
means the HSDir already held this very descriptor: tor gives up on a stream that waited
10 s for its circuit and sends it again on another one, while the first had got through
(the HSDir logs "revision counter in our cache is greater or equal ... (N/N)"). Either way
no later event will come for that upload. An upload tor never answers at all counts as
ended after :data:`GIVE_UP` seconds, so a service is never "publishing" for ever.

A descriptor none of whose uploads reached an HSDir is *lost* (:meth:`Uploads.lost`): a
time period's descriptor (``HS_DESC UPLOAD`` names it by its blinded key) whose every
upload ended, none stored and none refused as already held (``UPLOAD_REJECTED``). tor
does not try a failed upload again: it uploads a descriptor once when it builds it (a new
service, and at each time-period turn for the period after next), then only when the
HSDirs responsible for it change or an hour or two later. Measured on the private network
with 200 services: a burst of uploads set off at a turn went unanswered for more than
170 s, and clients got SOCKS 0xF0 (descriptor not found) after the following turn, when
those lost descriptors became the ones clients ask for. :mod:`.rescue` publishes such a
service afresh. tor's ``UPLOADED`` and ``FAILED`` do not name the descriptor: an upload's
end is matched to the oldest upload under way to that HSDir, and one that reached it counts
for every descriptor of the service then being uploaded there, so a descriptor is lost only
if no upload to any of its HSDirs reached one while its own was under way.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

__all__ = ["BEHIND", "GIVE_UP", "KEPT_DESCRIPTORS", "Uploads"]

#: seconds after which an upload with no answer from tor counts as ended
GIVE_UP = 180.0
#: seconds an upload waits for its answer before tor counts as behind with its uploads
#: (measured on the private network: 560 uploads of 40 services all stored within 22 s)
BEHIND = 60.0
#: descriptors remembered per service (a new one each time period)
KEPT_DESCRIPTORS = 4


class Uploads:
    """Descriptor uploads per onion service, as tor's ``HS_DESC`` events tell them."""

    def __init__(self) -> None:
        # address -> HSDir -> (number, start time, descriptor) of the uploads under way,
        # oldest first
        self._pending: dict[str, dict[str, deque[tuple[int, float, str]]]] = defaultdict(dict)
        self._count = 0  # uploads started so far: each one's number
        self._first_round: dict[str, int] = {}  # address -> the last number of its first round
        self._published: set[str] = set()
        # address -> descriptor -> whether one of its uploads reached an HSDir (oldest first)
        self._descriptors: dict[str, dict[str, bool]] = defaultdict(dict)

    def started(self, address: str, hsdir: str, now: float, descriptor: str = "") -> None:
        """``HS_DESC UPLOAD``: tor started uploading a descriptor of **address** to **hsdir**.

        :param descriptor: the descriptor's id (its blinded key), if the event named it
        """
        self._count += 1
        self._pending[address].setdefault(hsdir, deque()).append((self._count, now, descriptor))
        known = self._descriptors[address]
        if descriptor not in known:
            known[descriptor] = False
            while len(known) > KEPT_DESCRIPTORS:
                del known[next(iter(known))]

    def stored(self, address: str, hsdir: str) -> bool:
        """``HS_DESC UPLOADED``. :returns: True if it is the service's first since start."""
        self._end(address, hsdir, reached=True)
        if address in self._first_round:
            return False
        self._first_round[address] = self._count
        return True

    def failed(self, address: str, hsdir: str, held: bool = False) -> None:
        """``HS_DESC FAILED`` for an upload (a fetch's failure matches no upload).

        :param held: the HSDir refused it as holding that descriptor already
          (``UPLOAD_REJECTED``): the descriptor is there
        """
        self._end(address, hsdir, reached=held)

    def _end(self, address: str, hsdir: str, *, reached: bool) -> None:
        under_way = self._pending.get(address, {}).get(hsdir)
        if not under_way:
            return
        _number, _start, descriptor = under_way.popleft()
        if reached:  # which upload to this HSDir it was is not said: each may have been
            known = self._descriptors.get(address, {})
            for d in (descriptor, *(d for _n, _s, d in under_way)):
                if d in known:
                    known[d] = True

    def forget(self, address: str) -> None:
        """The service was removed."""
        self._pending.pop(address, None)
        self._first_round.pop(address, None)
        self._published.discard(address)
        self._descriptors.pop(address, None)

    def lost(self, now: float, skip: Callable[[str], bool] = lambda _address: False) -> list[str]:
        """Services a descriptor of which is lost: every upload of it ended (or is older
        than :data:`GIVE_UP` seconds) and none reached an HSDir. Each lost descriptor is
        told once; it counts again if tor uploads it again.

        :param skip: services not to look at now (asked again at the next call)
        """
        lost = []
        for address, known in self._descriptors.items():
            if skip(address):
                continue
            for descriptor in [d for d, reached in known.items() if not reached]:
                if not any(d == descriptor and start > now - GIVE_UP
                           for under_way in self._pending.get(address, {}).values()
                           for _n, start, d in under_way):
                    del known[descriptor]
                    if address not in lost:
                        lost.append(address)
        return lost

    def behind(self, now: float) -> int:
        """Uploads under way for more than :data:`BEHIND` seconds (and not yet given up):
        tor is behind with its uploads, as after a restart or a time-period turn with
        hundreds of services (``obt node status``: ``tor.uploads_behind``)."""
        return sum(1 for hsdirs in self._pending.values() for under_way in hsdirs.values()
                   for _n, start, _d in under_way if now - GIVE_UP < start <= now - BEHIND)

    def uploaded_once(self, address: str) -> bool:
        """:returns: True once any descriptor of **address** reached an HSDir."""
        return address in self._first_round

    def state(self, address: str, now: float) -> str:
        """``published``; ``uploading`` (a descriptor stored, its first round under way);
        or ``unstored`` (no descriptor stored yet)."""
        if self.published(address, now):
            return "published"
        return "uploading" if address in self._first_round else "unstored"

    def published(self, address: str, now: float) -> bool:
        """:returns: True if a descriptor of **address** was stored and, at some point since,
          no upload of its first round was under way (none younger than :data:`GIVE_UP`
          seconds)."""
        if address in self._published:
            return True
        last = self._first_round.get(address)
        if last is None or any(
                number <= last and start > now - GIVE_UP
                for under_way in self._pending.get(address, {}).values()
                for number, start, _descriptor in under_way):
            return False
        self._published.add(address)
        return True
