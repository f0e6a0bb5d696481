"""Onion services restored from stored keys, published a few at a time.

A node that starts (or restarts its tor) with a hundred shares hosts two hundred onion
services again. Given to tor all at once, they wedge it on the private network: measured
with 200 services, their first 2,786 descriptor uploads started within 40 s and none was
answered in the 290 s that followed, stored or refused; only the uploads tor made when it
next rebuilt the descriptors went through, in 10 s. Meanwhile the HSDirs kept serving the
descriptors from before the restart, whose introduction points are gone (clients: SOCKS
0xF2). 40 services at once were all stored within 22 s.

So the :class:`Publisher` keeps a queue: at most :data:`WINDOW` services are being
published at a time, each holding its place until tor has published it
(:mod:`.uploads`) or :data:`SLOT` seconds passed. Then:

- a service one of whose descriptors was stored is left to tor: its other uploads end by
  themselves (stored, refused, or given up after :data:`.uploads.GIVE_UP`). Removing it
  would throw away introduction points that clients may already be using, and cost
  fourteen fresh uploads. Measured on the private network with 200 services: 14 services
  added when tor's uploads slowed had their first descriptor stored 35-83 s after being
  added, half of their uploads still under way at 60 s;
- a service none of whose uploads was stored is removed and queued again, each time with a
  longer slot (doubled, up to :data:`LONGEST_SLOT`), for as long as the node hosts it: tor
  uploads a descriptor again only when it rebuilds it (in an hour or two on Tor's network),
  and a new service gets new descriptors at once (a later revision counter, so HSDirs take
  them). Given up after a few tries, a service would stay unreachable for that hour or two.
  Measured on the private network with 200 services: 1 to 8 services per restart were not
  stored in their first slot; given again, each was published within 30 s.

A service tor hosts whose descriptor was lost later (:mod:`.rescue`) is *renewed*: queued
like the others, and removed from tor just before it is added again, so the services
waiting for their turn stay reachable through their other descriptor meanwhile.

An ``ADD_ONION`` or ``DEL_ONION`` tor did not answer in time leads to another try too: tor
may carry it out late, and an add that meets the service still there gets a collision,
which the caller's ``add`` counts as added.

The addresses are known from the store, so a share's URI is shown at once; ``obt node
status`` counts what is published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from onionshare_bt.errors import ObtError, Timeout

__all__ = ["LONGEST_SLOT", "SLOT", "WINDOW", "Publisher"]

log = logging.getLogger(__name__)

#: services being published at once
WINDOW = 16
#: seconds one service may hold its place in the window, at its first try
SLOT = 60.0
#: the slot doubles with each try of a service not published in its slot, up to this
LONGEST_SLOT = 240.0

Ports = dict[int, tuple[str, int]]


class Publisher:
    """Publish queued onion services :data:`WINDOW` at a time (on the running loop).

    :param add: ``ADD_ONION`` for ``(ports, key)``, without waiting for an upload
    :param remove: ``DEL_ONION`` for an address
    :param published: waits until an address is published or a time limit passed
    :param stored: whether one of an address's descriptors reached an HSDir
    """

    def __init__(self, add: Callable[[Ports, str], Awaitable[object]],
                 remove: Callable[[str], Awaitable[None]],
                 published: Callable[[str, float], Awaitable[bool]],
                 stored: Callable[[str], bool], *,
                 window: int = WINDOW, slot: float = SLOT,
                 longest_slot: float = LONGEST_SLOT) -> None:
        self._add, self._remove, self._published = add, remove, published
        self._stored = stored
        self.window, self.slot, self.longest_slot = window, slot, longest_slot
        self._queue: dict[str, tuple[Ports, str]] = {}  # in order of arrival
        self._tries: dict[str, int] = {}  # slots a queued service was not published in
        self._adding: set[str] = set()
        self._watching: set[str] = set()  # added, waiting to be published within the slot
        self._withdrawn: set[str] = set()
        self._hosted: set[str] = set()  # queued to be renewed: tor has them until their turn
        self._more = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    @property
    def waiting(self) -> int:
        """Services queued or being added, not yet known to tor."""
        return len(self._queue) + len(self._adding)

    def queued(self, address: str) -> bool:
        """Whether **address** is queued or being added (tor does not host it yet)."""
        return (address in self._queue and address not in self._hosted) or address in self._adding

    def busy(self, address: str) -> bool:
        """Whether **address** is queued, being added, or waiting to be published."""
        return address in self._queue or address in self._adding or address in self._watching

    def renew(self, address: str, ports: Ports, key: str) -> None:
        """Queue a service tor hosts to be removed and added again, in turn, for new
        descriptors (a no-op if it is queued already)."""
        if self.busy(address):
            return
        self._hosted.add(address)
        self._tries.pop(address, None)
        self._enqueue(address, ports, key)

    def put(self, address: str, ports: Ports, key: str) -> None:
        """Queue a service to publish (its address without ``.onion``)."""
        self._tries.pop(address, None)
        self._enqueue(address, ports, key)

    def _enqueue(self, address: str, ports: Ports, key: str) -> None:
        self._queue[address] = (ports, key)
        self._more.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="onion publisher")

    def withdraw(self, address: str) -> bool:
        """Take a service back: it is never published, or added, again.

        :returns: True if it was queued or being added (then it is never published, or
          removed as soon as it is added); False if tor has it (the caller removes it) or
          never had it
        """
        if self._queue.pop(address, None) is not None:
            self._tries.pop(address, None)
            if address in self._hosted:  # tor still has it: the caller removes it
                self._hosted.discard(address)
                return False
            return True
        if address in self._adding:
            self._withdrawn.add(address)
            return True
        if address in self._watching:
            self._withdrawn.add(address)  # the caller removes it; never added again
            self._tries.pop(address, None)
        return False

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.window)
        while True:
            await self._more.wait()
            await slots.acquire()
            if not self._queue:
                slots.release()
                self._more.clear()
                continue
            address = next(iter(self._queue))
            ports, key = self._queue.pop(address)
            renew = address in self._hosted
            self._hosted.discard(address)
            self._adding.add(address)
            task = asyncio.get_running_loop().create_task(
                self._one(address, ports, key, slots, renew=renew))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _one(self, address: str, ports: Ports, key: str, slots: asyncio.Semaphore, *,
                   renew: bool = False) -> None:
        try:
            try:
                if renew:
                    await self._remove(address)
                    if address in self._withdrawn:  # taken back while it was removed
                        self._withdrawn.discard(address)
                        return
                await self._add(ports, key)
            except Timeout:
                # tor was too busy to answer (measured: 16 of 200 at a time-period turn);
                # it may still add the service late, so the next try may meet a collision,
                # which the caller's add takes as done
                self._adding.discard(address)
                if address in self._withdrawn:  # taken back meanwhile: tor may have it
                    self._withdrawn.discard(address)
                    await self._remove(address)  # sent after the late ADD_ONION's answer
                    return
                log.warning("tor did not answer ADD_ONION for a stored onion service in "
                            "time; queued again")
                self._enqueue(address, ports, key)
                return
            finally:
                self._adding.discard(address)
            if address in self._withdrawn:
                self._withdrawn.discard(address)
                await self._remove(address)
                return
            self._watching.add(address)  # until decided: a withdraw() meanwhile is seen
            try:
                tries = self._tries.get(address, 0)
                slot = min(self.slot * 2 ** tries, max(self.slot, self.longest_slot))
                if (await self._published(address, slot) or address in self._withdrawn
                        or self._stored(address)):
                    self._tries.pop(address, None)
                    return
                log.warning("no descriptor of an onion service was stored within %g s (try "
                            "%d); adding it again", slot, tries + 1)
                try:
                    await self._remove(address)
                except Timeout:  # tor may remove it late; if not, the next add collides
                    log.warning("tor did not answer DEL_ONION in time")
                if address not in self._withdrawn:  # not taken back while it was removed
                    self._tries[address] = tries + 1
                    self._enqueue(address, ports, key)
            finally:
                self._watching.discard(address)
                self._withdrawn.discard(address)
        except ObtError as exc:
            log.warning("could not publish a stored onion service again: %s", exc)
        except Exception:  # a bug must not end this service's publication silently
            log.exception("publishing a stored onion service failed")
        finally:
            slots.release()

    async def close(self) -> None:
        """Stop publishing; what is queued is dropped."""
        self._queue.clear()
        self._tries.clear()
        self._hosted.clear()
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
