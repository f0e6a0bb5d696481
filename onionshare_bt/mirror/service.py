"""The mirror's half: copy another node's public tracker data and serve it on a new onion.

``obt mirror add <onion>`` fetches the node's ``/node`` document, its public catalogue and
each item's .torrent (metadata only, never file data), opens a tracker of its own on 127.0.0.1
and publishes it as a net-new onion service of this node: ``http://<mirror>.onion/public/
<token>`` lists the copied items, each as ``http://<mirror>.onion/private/<same token as at
the source>``. Two loops per mirror keep it alive:

- *pull*: a long-poll on the source's identity onion brings every peer-list change there
  within a round trip; with ``follow`` a changed catalogue is copied again (new items added,
  withdrawn ones dropped); without it the items stay as first copied (a backup).
- *push*: peers that announce to the mirror go to the source's tracker in batches of at most
  :data:`core.MAX_PUSH`.

Every sync call carries a credential (:mod:`.auth`) signed with this node's identity onion
key (the one the trust service keeps in the store's ``identity``). The source reads it only if it
trusts this node (``obt trust add <this node's onion>`` there): then it takes the pushes
and names the mirror to its downloaders. Otherwise the mirror still follows the source
read-only, drops its pushes, and ``obt mirror list`` says why.

The copy outlives the source: when it is gone for good, the mirror still answers with the
peers it last knew, and downloaders keep announcing to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time

from ..config import TRACKER_VIRTUAL_PORT
from ..engine.metainfo import Metainfo, parse
from ..errors import NotFound, ObtError, UsageError
from ..store import MirrorItemRow, MirrorRow
from ..onion import parse_onion
from ..tracker.client import MAX_TORRENT
from ..tracker.server import Served, TrackerServer
from ..trust.client import Remote, item_name
from ..trust.core import Item
from ..trust.identity import SigningKey
from ..uri import ShareURI, new_token, parse_uri
from . import auth, core

log = logging.getLogger(__name__)

#: the long-poll asked of the source
PULL_WAIT = 20.0
#: a full snapshot is asked for this often (it refreshes the ages of the source's seeders)
FULL_EVERY = 60.0
#: pushes are batched over this long
PUSH_BATCH = 0.3
#: saved peers are written this often
SAVE_EVERY = 15.0
MAX_PENDING = 5000
FETCH_CONCURRENCY = 4


@dataclasses.dataclass
class _Mirror:
    row: MirrorRow
    server: TrackerServer
    port: int
    items: dict[str, MirrorItemRow] = dataclasses.field(default_factory=dict)
    metas: dict[str, Metainfo] = dataclasses.field(default_factory=dict)
    epoch: str = ""
    since: int = 0
    last_full: float = -1e9
    synced: float | None = None  # wall clock of the last sync that answered
    error: str | None = None
    #: the source took our last credential: it takes our pushes and names the mirror
    #: (None until the first call answers)
    registered: bool | None = None
    pending: list[core.Update] = dataclasses.field(default_factory=list)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def source(self) -> str:
        return self.row.source


class MirrorService:
    """Own this node's mirrors of other nodes.

    :param config: the node's settings (time limits, announce interval)
    :param store: the node's database (its mirrors tables, its identity)
    :param tor: its tor (each mirror's own onion service)
    :param http: HTTP over Tor (pulls from and pushes to the mirrored nodes)
    :param tasks: where each mirror's pull and push loops run
    """

    def __init__(self, config, store, tor, http, tasks) -> None:
        self.config, self.store, self.tor, self.http, self.tasks = config, store, tor, http, tasks
        self._key: tuple[str, SigningKey] | None = None  # the identity key, parsed once
        self._mirrors: dict[str, _Mirror] = {}
        self._lock = asyncio.Lock()

    # -- lifetime -----------------------------------------------------------------------
    async def start(self) -> None:
        for row in self.store.mirrors.all():
            try:
                mirror = await self._open(row, self.store.mirrors.items(row.source))
                await self._publish(mirror, row.key)
            except ObtError as exc:
                log.error("could not restore the mirror of %s…: %s", row.source[:12],
                          exc.message)
                continue
            self._start_loops(mirror)
        self.tasks.spawn("mirror-saver", self._saver())

    async def close(self) -> None:
        self._save_all()
        for mirror in list(self._mirrors.values()):
            await mirror.server.close()
        self._mirrors.clear()

    async def republish(self) -> None:
        """Publish every mirror onion again from its stored key (after a tor restart)."""
        for mirror in self._mirrors.values():
            await self._publish(mirror, mirror.row.key)

    # -- commands -----------------------------------------------------------------------
    async def add(self, text: str, follow: bool) -> dict:
        source = parse_onion(text)
        if source == self._own():  # a node never mirrors itself
            raise UsageError("that is this node's own onion; a node cannot mirror itself")
        async with self._lock:
            existing = self._mirrors.get(source)
            if existing is not None:
                if bool(existing.row.follow) != follow:
                    self.store.mirrors.update(source, follow=int(follow))
                    existing.row = dataclasses.replace(existing.row, follow=int(follow))
                return {**self._describe(existing), "added": False}
            return await self._add(source, follow)

    async def _add(self, source: str, follow: bool) -> dict:
        remote = Remote(self.http, self.config.trust_timeout)
        await remote.node(source)
        path = remote.catalogues.get(source)
        if path is None:
            raise UsageError(f"{source}.onion publishes no public catalogue to mirror")
        listed = await remote.catalogue(source, path)
        items = await self._fetch_items(source, path, listed)
        row = MirrorRow(source=source, address="", key="", token=new_token(), catalogue=path,
                        follow=int(follow), digest=core.catalogue_digest(
                            [i.infohash for i in listed]), added=time.time())
        mirror = await self._open(row, items)
        try:
            address, key = await self._publish(mirror, None)
        except BaseException:
            await mirror.server.close()
            self._mirrors.pop(source, None)
            raise
        mirror.row = row = dataclasses.replace(row, address=address, key=key)
        self.store.mirrors.add(row, items)
        try:  # the current peer lists, before the command returns
            await self._pull_once(mirror, wait=0.0, full=True)
        except ObtError as exc:
            mirror.error = exc.message
        self._start_loops(mirror)
        return {**self._describe(mirror), "added": True}

    async def remove(self, text: str) -> dict:
        source = parse_onion(text)
        async with self._lock:
            mirror = self._mirrors.pop(source, None)
            if mirror is None:
                raise UsageError(f"{source}.onion is not mirrored here", hint="See: obt mirror list")
            await self._stop_loops(source)
            try:
                await self.tor.remove_onion(mirror.row.address)
            except ObtError as exc:
                log.warning("could not remove the mirror's onion service: %s", exc.message)
            await mirror.server.close()
            self.store.mirrors.remove(source)
        return {"source": f"{source}.onion", "onion": f"{mirror.row.address}.onion",
                "removed": True}

    def list(self) -> list[dict]:
        return [self._describe(m) for m in self._mirrors.values()]

    # -- serving ------------------------------------------------------------------------
    async def _open(self, row: MirrorRow, items: list[MirrorItemRow]) -> _Mirror:
        holder: dict[str, _Mirror] = {}
        server = TrackerServer(
            interval=self.config.announce_interval,
            on_announce=lambda tid, a: self._announced(holder["m"], tid, a),
            trackers=lambda tid: self._origin_of(holder["m"], tid),
            public=(row.token, lambda: self._catalogue(holder["m"])),
        )
        await server.start()
        port = await server.listen()
        mirror = holder["m"] = _Mirror(row, server, port)
        for item in items:
            self._attach(mirror, item)
        self._mirrors[row.source] = mirror
        return mirror

    def _attach(self, mirror: _Mirror, item: MirrorItemRow) -> None:
        meta = parse(item.torrent)
        token = parse_uri(item.uri).token
        mirror.server.attach(mirror.port, Served(meta.id, token, item.torrent, meta.info_hashes))
        mirror.items[item.infohash] = item
        mirror.metas[item.infohash] = meta
        saved = self.store.mirrors.peers(mirror.source, item.infohash,
                                              mirror.server.peers.ttl)
        if saved:
            mirror.server.restore(item.infohash, saved)

    async def _publish(self, mirror: _Mirror, key: str | None) -> tuple[str, str]:
        ports = {TRACKER_VIRTUAL_PORT: ("127.0.0.1", mirror.port)}
        # a stored mirror's address exists already: not waited for (see trust.republish)
        return await self.tor.add_onion(ports, key, await_publication=key is None)

    def _catalogue(self, mirror: _Mirror) -> dict:
        address = mirror.row.address
        return {"node": address, "mirror_of": mirror.source, "items": [
            {"name": i.name, "size": i.size, "files": i.files, "infohash": i.infohash,
             "uri": str(ShareURI(address, "private", parse_uri(i.uri).token)),
             "added": i.added}
            for i in mirror.items.values()]}

    def _origin_of(self, mirror: _Mirror, torrent_id: str) -> list[str]:
        """Downloaders that came through the mirror also learn the source's tracker."""
        item = mirror.items.get(torrent_id)
        return [parse_uri(item.uri).onion] if item is not None else []

    def _announced(self, mirror: _Mirror, torrent_id: str, announce) -> None:
        left = -1 if announce.event == "stopped" else announce.left
        if len(mirror.pending) < MAX_PENDING:
            mirror.pending.append(core.Update(torrent_id, announce.onion, announce.port,
                                              left, 0.0))
            mirror.wake.set()

    def _describe(self, mirror: _Mirror) -> dict:
        row = mirror.row
        return {
            "source": f"{row.source}.onion",
            "onion": f"{row.address}.onion",
            "public_uri": str(ShareURI(row.address, "public", row.token)),
            "follow": bool(row.follow),
            "items": [{"name": i.name, "infohash": i.infohash,
                       "uri": str(ShareURI(row.address, "private", parse_uri(i.uri).token)),
                       "peers": len(mirror.server.entries(i.infohash))}
                      for i in mirror.items.values()],
            "synced": mirror.synced,
            "error": mirror.error,
        }

    # -- copying ------------------------------------------------------------------------
    async def _fetch_items(self, source: str, path: str, listed: list[Item]
                           ) -> list[MirrorItemRow]:
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(item: Item) -> MirrorItemRow | None:
            async with limit:
                try:
                    data = await self._fetch_torrent(source, path, item)
                    meta = parse(data)
                    name = item_name(meta.name)
                except ValueError:
                    log.warning("mirror of %s…: %r's .torrent has no usable name; skipped",
                                source[:12], item.name)
                    return None
                except ObtError as exc:
                    log.warning("mirror of %s…: skipped %r: %s", source[:12], item.name,
                                exc.message)
                    return None
                if meta.id != item.infohash:
                    log.warning("mirror of %s…: %r's .torrent is another torrent; skipped",
                                source[:12], item.name)
                    return None
                return MirrorItemRow(source, item.infohash, name, meta.size,
                                     len(meta.files), item.uri, data, item.added or time.time())

        rows = await asyncio.gather(*(one(i) for i in listed))
        return [r for r in rows if r is not None]

    async def _fetch_torrent(self, source: str, path: str, item: Item) -> bytes:
        timeout = self.config.fetch_timeout
        try:
            return await self.http.get(
                f"http://{source}.onion{path}/torrent/{item.infohash}", timeout, MAX_TORRENT)
        except NotFound:  # an older node: fetch it from the share's own onion
            return await self.http.fetch_torrent(parse_uri(item.uri), timeout)

    async def _refresh(self, mirror: _Mirror, digest: str) -> None:
        """Copy the source's catalogue again (``follow``): add new items, drop withdrawn."""
        remote = Remote(self.http, self.config.trust_timeout)
        listed = await remote.catalogue(mirror.source, mirror.row.catalogue)
        wanted = {i.infohash for i in listed}
        new = [i for i in listed if i.infohash not in mirror.items]
        for item in await self._fetch_items(mirror.source, mirror.row.catalogue, new):
            self.store.mirrors.add_item(item)
            self._attach(mirror, item)
            log.info("mirror of %s…: copied %r", mirror.source[:12], item.name)
        for infohash in [ih for ih in mirror.items if ih not in wanted]:
            await mirror.server.withdraw(infohash)
            mirror.items.pop(infohash, None)
            mirror.metas.pop(infohash, None)
            self.store.mirrors.remove_item(mirror.source, infohash)
        self.store.mirrors.update(mirror.source, digest=digest)
        mirror.row = dataclasses.replace(mirror.row, digest=digest)

    # -- syncing ------------------------------------------------------------------------
    def _start_loops(self, mirror: _Mirror) -> None:
        self.tasks.spawn(f"mirror-pull:{mirror.source}", self._pull_loop(mirror))
        self.tasks.spawn(f"mirror-push:{mirror.source}", self._push_loop(mirror))

    async def _stop_loops(self, source: str) -> None:
        await self.tasks.cancel(f"mirror-pull:{source}")
        await self.tasks.cancel(f"mirror-push:{source}")

    def _sync_url(self, mirror: _Mirror) -> str:
        return f"http://{mirror.source}.onion{mirror.row.catalogue}/sync"

    def _own(self) -> str:
        """This node's identity onion, read from its key in the store ("" while none)."""
        key = self._signing_key()
        return key.onion if key is not None else ""

    def _signing_key(self) -> SigningKey | None:
        """This node's identity key, or None while it has none (calls then only read)."""
        blob = self.store.identity.key()
        if not blob:
            return None
        if self._key is None or self._key[0] != blob:
            try:
                self._key = (blob, SigningKey.from_tor(blob))
            except ValueError:
                log.error("the identity onion key cannot sign mirror calls")
                return None
        return self._key[1]

    def _credential(self, mirror: _Mirror, body: bytes) -> dict[str, str]:
        """The headers of one sync attempt: a fresh credential for the source."""
        key = self._signing_key()
        if key is None:
            return {}
        value = auth.credential(key, mirror.source, mirror.row.address, body,
                                int(time.time()), secrets.token_hex(16))
        return {auth.HEADER: value}

    async def _call(self, mirror: _Mirror, epoch: str, since: int, wait: float,
                    peers: list[core.Update]) -> core.SyncReply:
        body = core.encode_request(mirror.row.address, epoch, since, wait, peers)
        timeout = wait + self.config.trust_timeout
        raw = await self.http.post(self._sync_url(mirror), body, timeout,
                                         core.MAX_MESSAGE,
                                         headers=lambda: self._credential(mirror, body))
        reply = core.parse_reply(raw)
        mirror.registered = reply.registered
        return reply

    async def _pull_once(self, mirror: _Mirror, wait: float, full: bool = False) -> None:
        loop = asyncio.get_running_loop()
        full = full or loop.time() - mirror.last_full > FULL_EVERY
        reply = await self._call(mirror, "" if full else mirror.epoch,
                                 0 if full else mirror.since, wait, [])
        if reply.full:
            mirror.last_full = loop.time()
        mirror.epoch, mirror.since = reply.epoch, reply.seq
        self._merge(mirror, reply.peers)
        mirror.synced, mirror.error = time.time(), self._not_registered(reply)
        if mirror.row.follow and reply.catalogue and reply.catalogue != mirror.row.digest:
            await self._refresh(mirror, reply.catalogue)

    def _not_registered(self, reply: core.SyncReply) -> str | None:
        """What ``obt mirror list`` says of a source that reads us as a stranger."""
        if reply.registered:
            return None
        why = f" ({reply.reason})" if reply.reason else ""
        return (f"read-only: the source does not take this mirror's peers{why}; its "
                f"operator can run: obt trust add {self._own()}.onion")

    def _merge(self, mirror: _Mirror, updates: tuple[core.Update, ...]) -> None:
        by_item: dict[str, list[tuple[str, int, int, float]]] = {}
        for u in updates:
            if u.infohash in mirror.items:
                by_item.setdefault(u.infohash, []).append((u.onion, u.port, u.left, u.age))
        for infohash, entries in by_item.items():
            mirror.server.merge(infohash, entries)

    async def _pull_loop(self, mirror: _Mirror) -> None:
        backoff = 2.0
        while True:
            try:
                await self._pull_once(mirror, PULL_WAIT)
                backoff = 2.0
            except ObtError as exc:
                if mirror.error != exc.message:
                    log.info("mirror of %s…: %s", mirror.source[:12], exc.message)
                mirror.error = exc.message
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _push_loop(self, mirror: _Mirror) -> None:
        backoff = 2.0
        while True:
            await mirror.wake.wait()
            await asyncio.sleep(PUSH_BATCH)
            mirror.wake.clear()
            batch, mirror.pending = mirror.pending[:core.MAX_PUSH], \
                mirror.pending[core.MAX_PUSH:]
            if mirror.registered is False:  # the source would refuse them: do not keep them
                mirror.pending.clear()
                continue
            if mirror.pending:
                mirror.wake.set()
            if not batch:
                continue
            try:
                reply = await self._call(mirror, mirror.epoch, mirror.since, 0.0, batch)
                self._merge(mirror, reply.peers)
                backoff = 2.0
            except ObtError as exc:
                log.info("mirror of %s…: push failed: %s", mirror.source[:12], exc.message)
                mirror.pending = (batch + mirror.pending)[:MAX_PENDING]
                mirror.wake.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    # -- saving -------------------------------------------------------------------------
    async def _saver(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            self._save_all()

    def _save_all(self) -> None:
        for mirror in self._mirrors.values():
            peers = {ih: mirror.server.entries(ih) for ih in mirror.items}
            try:
                self.store.mirrors.save_peers(mirror.source, peers)
            except ObtError as exc:
                log.warning("could not save the mirror's peers: %s", exc.message)
