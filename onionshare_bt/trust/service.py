"""The node's identity onion, its public catalogue, and the web of trust around it.

The identity onion has a key of its own (kept in the state database) and is never used for
a share's pieces, so a private share cannot be linked to it. What it serves is in
:mod:`.server`; the walk over trusted nodes is :mod:`.core`, driven here through Tor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .. import __version__
from ..config import TRACKER_VIRTUAL_PORT
from ..errors import UsageError
from ..onion import parse_onion
from ..text import DESCRIPTION_LIMIT, has_unsafe
from ..uri import ShareURI, new_token
from . import core
from .client import Remote
from .protocol import PROTOCOL
from .server import NodeServer

log = logging.getLogger(__name__)

MAX_DEPTH = 6


class TrustService:
    """Own the identity onion and answer the trust and catalogue operations.

    :param config: the node's settings (time limits, degrees, fan-out)
    :param store: the node's database (identity, trust, catalogue)
    :param tor: its tor (the identity onion)
    :param http: HTTP over Tor (other nodes' documents and catalogues)
    :param swarm: the node's torrents (their metadata, for the catalogue)
    :param origin: answers mirrors (:class:`onionshare_bt.mirror.origin.Origin`)
    :param release_offer: the newest verified release this node holds, for ``/node``
      (:func:`onionshare_bt.release.service.held_offer`), or None
    :param live_items: the live broadcasts published in the catalogue
      (:meth:`onionshare_bt.cast.service.CastService.public_items`), or None
    """

    def __init__(self, config, store, tor, http, swarm, origin=None,
                 release_offer: Callable[[], dict | None] | None = None,
                 live_items: Callable[[], list[dict]] | None = None) -> None:
        self.config, self.store, self.tor, self.http = config, store, tor, http
        self.swarm = swarm
        self.live_items = live_items
        self.origin = origin
        self.release_offer = release_offer
        self.onion = ""
        self._server: NodeServer | None = None
        self._ports: dict = {}

    # -- lifetime -----------------------------------------------------------------------
    async def start(self) -> None:
        token = self.store.identity.public_token() or new_token()
        self.store.identity.set_public_token(token)
        origin = self.origin
        self._server = NodeServer(self.document, self.catalogue, token,
                                  torrent=origin.torrent if origin else None,
                                  sync=origin.call if origin else None)
        port = await self._server.start()
        self._ports = {TRACKER_VIRTUAL_PORT: ("127.0.0.1", port)}
        await self.republish()

    async def republish(self) -> None:
        """Publish the identity onion (again, after a tor restart) from its stored key."""
        key = self.store.identity.key()
        # an existing identity is not waited for: a node restoring many shares has its tor
        # busy publishing them all, and the address is known already
        self.onion, key = await self.tor.add_onion(self._ports, key,
                                                         await_publication=key is None)
        self.store.identity.set_key(key)
        if self.origin is not None:  # mirror credentials must name this onion
            self.origin.onion = self.onion

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def public_uri(self) -> str:
        return str(ShareURI(self.onion, "public", self.store.identity.public_token()))

    # -- what the identity onion serves -------------------------------------------------
    def document(self) -> dict:
        doc = {"obt": __version__, "protocol": PROTOCOL, "onion": self.onion,
               "catalogue": f"/public/{self.store.identity.public_token()}"}
        if self.config.publish_trust:
            doc["trusts"] = self.store.trust.all()
        offer = self.release_offer() if self.release_offer else None
        if offer is not None:
            doc["release"] = offer
        return doc

    def catalogue(self) -> list[dict]:
        items = []
        for torrent_id, added, description in self.store.catalogue.all():
            row = self.store.torrents.get(torrent_id)
            if row is None or row.role != "share":
                continue
            meta = self.swarm.meta(row)
            items.append({"name": meta.name, "size": meta.size, "files": len(meta.files),
                          "infohash": meta.id, "uri": row.uri, "added": added,
                          "description": description})
        return items + (self.live_items() if self.live_items else [])

    # -- publishing ---------------------------------------------------------------------
    def publish(self, row, public: bool, description: str | None = None) -> dict:
        """Put a share in the public catalogue or take it out.

        :param description: what the catalogue says of it (None: as before); one line of
          at most :data:`DESCRIPTION_LIMIT` plain characters
        :raises UsageError: a download, or a description too long or with control
          characters
        """
        if row.role != "share":
            raise UsageError(f"{row.name!r} is a download; only this node's shares can be "
                             "published")
        if description is not None:
            description = description.strip()
            if len(description) > DESCRIPTION_LIMIT or has_unsafe(description):
                raise UsageError(f"a description is one line of at most {DESCRIPTION_LIMIT} "
                                 "characters, without control characters")
            if not public:
                raise UsageError("a description goes with --public")
        self.store.catalogue.publish(row.id, public, description)
        if self.origin is not None:
            self.origin.catalogue_changed()
        return {"id": row.id, "name": row.name, "public": public, "public_uri": self.public_uri}

    # -- trust --------------------------------------------------------------------------
    def add(self, text: str) -> dict:
        onion = parse_onion(text)
        if onion == self.onion:
            raise UsageError("that is this node's own onion")
        return {"onion": f"{onion}.onion", "added": self.store.trust.add(onion)}

    def remove(self, text: str) -> dict:
        onion = parse_onion(text)
        if not self.store.trust.remove(onion):
            raise UsageError(f"{onion}.onion is not trusted")
        return {"onion": f"{onion}.onion", "removed": True}

    def trusted(self) -> list[str]:
        """The onions this node trusts directly (without ``.onion``)."""
        return self.store.trust.all()

    def depth(self, value: int | None = None) -> int:
        if value is not None:
            if not 1 <= value <= MAX_DEPTH:
                raise UsageError(f"the trust depth must be between 1 and {MAX_DEPTH}")
            self.store.trust.set_depth(value)
        return self.store.trust.depth()

    def _limits(self) -> core.Limits:
        return core.Limits(depth=self.depth(), fan_out=self.config.trust_fan_out,
                           total=self.config.trust_total)

    async def walk(self) -> tuple[list[core.Visit], Remote, core.Walk]:
        """Visit the trusted set to the trust depth; the Remote keeps what each node sent."""
        remote = Remote(self.http, self.config.trust_timeout)
        walker = core.Walk(self.onion, self.store.trust.all(), self._limits())
        while not walker.done:
            batch = walker.next_batch()
            if not batch:
                break
            results = await asyncio.gather(*(remote.node(o) for o, _ in batch),
                                           return_exceptions=True)
            for (onion, _), result in zip(batch, results):
                if isinstance(result, BaseException):
                    walker.record(onion, None, _reason(result))
                else:
                    walker.record(onion, result)
        return walker.visits(), remote, walker

    async def graph(self) -> dict:
        visits, _, walker = await self.walk()
        return {"depth": self.depth(), "tree": walker.tree(),
                "nodes": [v.__dict__ for v in visits]}

    async def search(self, terms: list[str]) -> dict:
        visits, remote, _ = await self.walk()
        reachable = [v for v in visits if v.reachable]
        results = await asyncio.gather(*(remote.catalogue(v.onion) for v in reachable),
                                       return_exceptions=True)
        items, failed = {}, [v.__dict__ for v in visits if not v.reachable]
        for visit, result in zip(reachable, results):
            if isinstance(result, BaseException):
                failed.append({**visit.__dict__, "reachable": False, "error": _reason(result)})
            else:
                items[visit.onion] = result
        degrees = {v.onion: v.degree for v in visits}
        return {"results": core.search(items, degrees, terms), "unreachable": failed,
                "searched": len(items)}

    async def remote_catalogue(self, onion: str, token: str) -> list[dict]:
        remote = Remote(self.http, self.config.fetch_timeout)
        items = await remote.catalogue(onion, f"/public/{token}")
        return [i.__dict__ for i in items]


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
