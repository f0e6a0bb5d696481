"""Onion services whose descriptor reached no HSDir, published afresh.

tor uploads a descriptor when it builds it and does not try a failed upload again
(:mod:`.uploads`): a descriptor lost in a burst of uploads that went unanswered stays
missing from its HSDirs for an hour or two, and once clients ask for it (its time period
has come) they get SOCKS 0xF0 "descriptor not found". :class:`Rescue` looks every
:data:`SWEEP` seconds for services that have such a descriptor and hands them to the
:class:`~.publisher.Publisher` to be *renewed*: removed and added again, in turn, which
builds both descriptors anew and uploads them at once.

A renewal closes the service's circuits, so peers connected through it dial again; a
share's other onion services (:mod:`onionshare_bt.multiplex`) keep carrying it meanwhile.
Services with client authorization are not renewed (the publisher adds without it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from onionshare_bt.tor.publisher import Ports

__all__ = ["SWEEP", "Rescue"]

log = logging.getLogger(__name__)

#: seconds between two looks for lost descriptors
SWEEP = 30.0


class Rescue:
    """Renew the hosted services a descriptor of which was lost.

    :param lost: the services with a lost descriptor, each told once
      (:meth:`.Publication.lost`); its argument says which to leave for later
    :param busy: whether the publisher is publishing a service now (left for later)
    :param renew: queue a service to be removed and added again (:meth:`.Publisher.renew`)
    """

    def __init__(self, lost: Callable[[Callable[[str], bool]], list[str]],
                 busy: Callable[[str], bool], renew: Callable[[str, Ports, str], None], *,
                 every: float = SWEEP) -> None:
        self._lost, self._busy, self._renew = lost, busy, renew
        self.every = every
        self._hosted: dict[str, tuple[Ports, str]] = {}
        #: services renewed so far
        self.renewed = 0
        self._task: asyncio.Task | None = None

    def hosted(self, address: str, ports: Ports, key: str) -> None:
        """tor hosts **address** (without ``.onion``) from **key**, forwarding **ports**."""
        self._hosted[address] = (ports, key)

    def dropped(self, address: str) -> None:
        """**address** is no longer hosted."""
        self._hosted.pop(address, None)

    def renew(self, address: str) -> bool:
        """Hand **address** to the publisher to be renewed.

        :returns: False if it is not hosted here (or has client authorization)
        """
        service = self._hosted.get(address)
        if service is None:
            return False
        self._renew(address, *service)
        return True

    def sweep(self) -> list[str]:
        """Renew each hosted service a descriptor of which was lost.

        :returns: the addresses handed to the publisher
        """
        renewed = []
        for address in self._lost(self._busy):
            if self.renew(address):  # else removed meanwhile, or not ours (client auth)
                log.warning("no descriptor upload of %s….onion reached an HSDir; publishing "
                            "it afresh", address[:12])
                renewed.append(address)
        self.renewed += len(renewed)
        return renewed

    def start(self) -> None:
        """Sweep every :attr:`every` seconds on the running loop, until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="onion rescue")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                self.sweep()
            except Exception:  # a bug must not end the rescue silently
                log.exception("looking for lost onion descriptors failed")

    async def close(self) -> None:
        """Stop sweeping."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
