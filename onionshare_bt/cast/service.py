"""The node's cast part: its live broadcasts (:mod:`.broadcast`, ``obt cast``) and what it
listens to and relays (:mod:`.listening`, ``obt listen``). Nothing of it outlives the node.
"""

from __future__ import annotations

import logging

from ..errors import ObtError
from ..tor.client import TorClient
from ..tor.http import OnionHTTP
from .broadcast import Broadcasts
from .listening import Listenings
from .protocol import Tasks, port_of

__all__ = ["CastService"]

log = logging.getLogger(__name__)


class CastService:
    """Every broadcast and listening of the node.

    :param tor: the node's tor (the onions the streams are served on)
    :param http: HTTP over Tor (joins, heartbeats, the streams pulled)
    :param ffmpeg: the encoder (default ``ffmpeg`` on PATH)
    """

    def __init__(self, tor: TorClient, http: OnionHTTP, ffmpeg: str | None = None) -> None:
        self.tor = tor
        self.tasks = Tasks()
        self.broadcasts = Broadcasts(tor, self.tasks, ffmpeg)
        self.listenings = Listenings(tor, http, self.tasks)
        self.cast, self.stop_cast = self.broadcasts.cast, self.broadcasts.stop
        self.listen, self.stop_listen = self.listenings.listen, self.listenings.stop
        self.public_items = self.broadcasts.public_items

    def list(self) -> list[dict]:
        return ([c.describe() for c in self.broadcasts.items.values()]
                + [lst.describe() for lst in self.listenings.items.values()])

    def received(self) -> dict[str, int]:
        """Bytes each listening has received (they count in the ratio as downloads do)."""
        return {f"cast:{i}": lst.received for i, lst in self.listenings.items.items()}

    async def republish(self) -> None:
        """Give a restarted tor every onion again, at the same addresses (the tree and the
        listeners know them)."""
        onions = [(c.key, c.runner) for c in self.broadcasts.items.values() if c.key]
        onions += [(lst.key_, lst.runner) for lst in self.listenings.items.values()
                   if lst.key_]
        for key, run in onions:
            try:
                await self.tor.add_onion({80: ("127.0.0.1", port_of(run))}, key,
                                         await_publication=False)
            except ObtError as exc:
                log.error("a cast's onion could not be published again: %s", exc.message)

    async def close(self) -> None:
        for ident in list(self.listenings.items):
            await self.listenings.stop(ident)
        for ident in list(self.broadcasts.items):
            await self.broadcasts.stop(ident)
        self.tasks.cancel()
