"""Whether this tor has published its onion services, and waiting until it has.

Tor's ``HS_DESC`` events (handed to the loop by :class:`~.client.TorClient`) feed
:class:`~.uploads.Uploads`; :class:`Publication` adds the waiting: for a service's first
stored upload (``ADD_ONION`` with ``await_publication``) and for it to count as published
(:mod:`.publisher`'s slots, ``obt node status``). One per tor process: a restarted tor
publishes afresh, and whoever waited on the old one is told.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from onionshare_bt.errors import Timeout, TorError
from onionshare_bt.tor.uploads import Uploads

__all__ = ["HELD", "STATES", "Publication"]

log = logging.getLogger(__name__)

#: the ``HS_DESC FAILED`` reason of an HSDir that already holds the descriptor
HELD = "UPLOAD_REJECTED"
#: where a service stands, as :meth:`Publication.counts` counts them
STATES = ("published", "uploading", "unstored", "queued")

_Waiters = dict[str, list[asyncio.Future[None]]]


class Publication:
    """One tor process's descriptor uploads, and the coroutines waiting on them.

    :param clock: monotonic seconds (tests give their own)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.uploads = Uploads()
        self._first: _Waiters = {}  # waiting for a service's first stored upload
        self._full: _Waiters = {}  # waiting for a service to count as published

    # -- tor's events (on the loop) -----------------------------------------------------
    def started(self, address: str, hsdir: str, descriptor: str = "") -> None:
        """``HS_DESC UPLOAD`` (**descriptor**: its blinded key, if the event named it)."""
        self.uploads.started(address, hsdir, self._clock(), descriptor)

    def stored(self, address: str, hsdir: str) -> None:
        """``HS_DESC UPLOADED``."""
        self.uploads.stored(address, hsdir)
        _resolve(self._first.pop(address, []))
        self._check(address)

    def failed(self, address: str, hsdir: str, reason: str) -> None:
        """``HS_DESC FAILED`` (an upload, or a fetch of an onion this tor does not host)."""
        log.debug("a descriptor upload ended in %s", reason or "a failure")
        self.uploads.failed(address, hsdir, held=reason == HELD)
        self._check(address)

    def _check(self, address: str) -> None:
        if address in self._full and self.published(address):
            _resolve(self._full.pop(address))

    def fail_all(self, why: str) -> None:
        """Tor exited or restarted: every waiter gets :class:`TorError` (**why**)."""
        for futures in (*self._first.values(), *self._full.values()):
            for future in futures:
                if not future.done():
                    future.set_exception(TorError(why))
        self._first.clear()
        self._full.clear()

    # -- questions and waits ------------------------------------------------------------
    def published(self, address: str) -> bool:
        """True once **address** counts as published (:mod:`.uploads`)."""
        return self.uploads.published(address, self._clock())

    def uploaded_once(self, address: str) -> bool:
        """True once one of **address**'s descriptors was stored."""
        return self.uploads.uploaded_once(address)

    def forget(self, address: str) -> None:
        """**address** is no longer hosted."""
        self.uploads.forget(address)

    def lost(self, skip: Callable[[str], bool]) -> list[str]:
        """Services a descriptor of which reached no HSDir (:meth:`.Uploads.lost`)."""
        return self.uploads.lost(self._clock(), skip)

    def behind(self) -> int:
        """Uploads tor has left unanswered for a while (:meth:`.Uploads.behind`)."""
        return self.uploads.behind(self._clock())

    def counts(self, addresses: Iterable[str], queued: Callable[[str], bool]) -> dict[str, int]:
        """How many of **addresses** stand in each of :data:`STATES`.

        :param queued: whether an address waits in :mod:`.publisher`'s queue
        """
        now, counts = self._clock(), dict.fromkeys(STATES, 0)
        for a in addresses:
            counts["queued" if queued(a) else self.uploads.state(a, now)] += 1
        return counts

    async def wait_published(self, address: str, timeout: float) -> bool:
        """Wait until **address** counts as published.

        :returns: True if it is, False if **timeout** seconds passed first
        :raises TorError: if tor exits meanwhile
        """
        if self.published(address):
            return True
        return await _wait(self._full, address, timeout) or self.published(address)

    async def wait_first_upload(self, address: str, timeout: float) -> None:
        """Wait until one of **address**'s descriptors was stored.

        :raises Timeout: if **timeout** seconds passed first
        :raises TorError: if tor exits meanwhile
        """
        if self.uploaded_once(address):
            return
        if not await _wait(self._first, address, timeout):
            raise Timeout(f"the onion service was not published within {timeout:g} s")


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


async def _wait(waiters: _Waiters, address: str, timeout: float) -> bool:
    """Wait until an event resolves a future of **waiters** for **address**.

    :returns: False if **timeout** seconds passed first
    """
    future = asyncio.get_running_loop().create_future()
    waiters.setdefault(address, []).append(future)
    try:
        async with asyncio.timeout(timeout):
            await future
        return True
    except TimeoutError:
        return False
    finally:
        mine = waiters.get(address, [])
        if future in mine:
            mine.remove(future)
        if not mine:
            waiters.pop(address, None)
