"""The node's embedded HTTP tracker (aiohttp), on 127.0.0.1 behind the onion services.

Each share gets a listener of its own, and its onion services point their port 80 there, so
a request that arrives through one share's onion can only ever see that share: knowing
another share's token does not link the two. Routes:

- ``GET /private/<token>``: the share's .torrent (bencoded), naming the share's trackers
  (every onion of the share, then its mirrors) in ``announce-list`` for standard clients
  (:mod:`.metafile`); the info-hash is the stored one
- ``GET /private/<token>/announce``: BEP 3 announce, onion peers only; an *open* share also
  answers clients that cannot be reached (see :mod:`.core`)

Anything else, including a wrong token or another method, is the same plain 404. No reply
carries a ``Server`` or ``Date`` header, not even the 400 that aiohttp's parser sends for
requests it cannot parse (binary garbage, unknown methods, a request line over 8190 bytes,
too many headers); those are logged at debug level only and without the raw request, which
could hold a token (see :mod:`onionshare_bt.httpserve`).
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

from .. import httpserve
from ..httpserve import KEEPALIVE_TIMEOUT, NOT_FOUND_BODY
from . import core, metafile

__all__ = ["KEEPALIVE_TIMEOUT", "NOT_FOUND_BODY", "Served", "TrackerServer"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Served:
    """A share as the tracker serves it.

    :param seeders: the share's own onions with their peer port, always listed (each
      serves the tracker too)
    :param open: admit clients that cannot be reached (standard clients under torsocks)
    :param aliases: other info-hashes announces may name for it (the one aria2 < 1.37
      computes for a hybrid torrent); :meth:`TrackerServer.attach` fills them in
    """

    torrent_id: str
    token: str = dataclasses.field(repr=False)
    torrent: bytes = dataclasses.field(repr=False)
    info_hashes: tuple[bytes, ...]
    seeders: tuple[tuple[str, int], ...] = ()
    open: bool = False
    aliases: tuple[bytes, ...] = ()


_not_found = httpserve.not_found


class TrackerServer:
    """Serve shares, each on its own loopback listener.

    :param interval: the announce interval we ask peers for
    :param clock: seconds, monotonic (injectable for tests)
    :param max_peers: announced peers remembered per torrent (the stalest make room)
    """

    def __init__(
        self,
        interval: int = 60,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = core.MAX_PEERS,
        on_announce: Callable[[str, core.Announce], None] | None = None,
        trackers: Callable[[str], list[str]] | None = None,
        public: tuple[str, Callable[[], dict]] | None = None,
    ) -> None:
        """:param trackers: the share's other trackers (mirrors) to name in replies and in
          the served .torrent
        :param public: ``(token, document)``: also serve ``GET /public/<token>`` as JSON
          (a mirror's catalogue)
        """
        self.interval = interval
        self._on_announce = on_announce
        self._trackers = trackers
        self._public = public
        self._clock = clock
        self.peers = core.PeerTable(ttl=interval * 3 + 30, max_peers=max_peers)
        self._by_port: dict[int, list[Served]] = {}
        self._sites: dict[int, web.TCPSite] = {}
        self._kept: set[int] = set()
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=4096)
        app.router.add_get("/private/{token}", self._torrent)
        app.router.add_get("/private/{token}/announce", self._announce)
        if self._public is not None:
            app.router.add_get("/public/{token}", self._catalogue)
        app.router.add_route("*", "/{tail:.*}", self._fallback)
        return app

    async def start(self) -> None:
        self._runner = httpserve.runner(self._app(), log)
        await self._runner.setup()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def listen(self, keep: bool = True) -> int:
        """Open a listener on 127.0.0.1 for shares to :meth:`attach`; returns its port.

        :param keep: stays open when its last share is withdrawn (a mirror's listener)
        """
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self._by_port[port] = []
        self._sites[port] = site
        if keep:
            self._kept.add(port)
        return port

    def attach(self, port: int, share: Served) -> None:
        """Serve ``share`` on the listener at ``port`` too."""
        if not share.aliases:
            legacy = metafile.legacy_info_hash(share.torrent)
            share.aliases = (legacy,) if legacy and legacy not in share.info_hashes else ()
        self._by_port[port].append(share)
        self.peers.set_fixed(share.info_hashes[0], list(share.seeders))

    async def serve(self, share: Served) -> int:
        """Open a listener for ``share`` alone; returns its port on 127.0.0.1."""
        port = await self.listen(keep=False)
        self.attach(port, share)
        return port

    def shares(self) -> list[Served]:
        return [s for shares in self._by_port.values() for s in shares]

    def _find(self, torrent_id: str) -> Served | None:
        return next((s for s in self.shares() if s.torrent_id == torrent_id), None)

    def restore(self, torrent_id: str, entries: list[tuple[str, int, int, float]]) -> None:
        """Take back a share's peers saved before a restart (see :meth:`core.PeerTable.restore`)."""
        share = self._find(torrent_id)
        if share is not None:
            self.peers.restore(share.info_hashes[0], entries, self._clock())

    def merge(self, torrent_id: str, entries: list[tuple[str, int, int, float]]) -> int:
        """Take in peers another tracker of the share saw (see :meth:`core.PeerTable.merge`)."""
        return len(self.merge_changes(torrent_id, entries))

    def merge_changes(self, torrent_id: str, entries: list[tuple[str, int, int, float]]
                      ) -> list[tuple[str, int, int, float]]:
        """Like :meth:`merge`; returns the entries that changed the swarm."""
        share = self._find(torrent_id)
        if share is None:
            return []
        return self.peers.merge_changes(share.info_hashes[0], entries, self._clock())

    def entries(self, torrent_id: str) -> list[tuple[str, int, int, float]]:
        """The share's live peers as ``(onion, port, left, age)``, its own onions included."""
        share = self._find(torrent_id)
        return self.peers.entries(share.info_hashes[0], self._clock()) if share else []

    def set_seeders(self, torrent_id: str, seeders: list[tuple[str, int]]) -> None:
        """Name the share's own onions, listed to every announcer as seeders."""
        for share in self.shares():
            if share.torrent_id == torrent_id:
                share.seeders = tuple(seeders)
                self.peers.set_fixed(share.info_hashes[0], list(seeders))

    def set_open(self, torrent_id: str, open_share: bool) -> None:
        """Open a share to clients that cannot be reached, or close it again."""
        for share in self.shares():
            if share.torrent_id == torrent_id:
                share.open = open_share

    def torrent_file(self, torrent_id: str) -> bytes | None:
        """The share's .torrent exactly as served (None: not served here)."""
        share = self._find(torrent_id)
        return self._served_torrent(share) if share is not None else None

    def announce_urls(self, share: Served) -> list[list[str]]:
        """The share's trackers in tiers: its own onions, then the other trackers (mirrors,
        or a mirror's source) that announce replies name."""
        own = list(dict.fromkeys(onion for onion, _ in share.seeders))
        others = self._trackers(share.torrent_id) if self._trackers else []
        return [[metafile.announce_url(o, share.token) for o in own],
                [metafile.announce_url(o, share.token) for o in others
                 if o not in own][:core.MAX_TRACKERS]]

    def _served_torrent(self, share: Served) -> bytes:
        try:
            return metafile.with_trackers(share.torrent, self.announce_urls(share))
        except ValueError as exc:  # a stored .torrent libtorrent took: not seen so far
            log.warning("serving %s's .torrent without trackers: %s", share.torrent_id[:16], exc)
            return share.torrent

    async def withdraw(self, torrent_id: str) -> None:
        """Stop serving a share: its swarm is forgotten, its own listeners close."""
        for port, shares in list(self._by_port.items()):
            for share in [s for s in shares if s.torrent_id == torrent_id]:
                shares.remove(share)
                self.peers.drop(share.info_hashes[0])
            if not shares and port not in self._kept:
                del self._by_port[port]
                await self._sites.pop(port).stop()

    def _share(self, request: web.Request) -> Served | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        shares = self._by_port.get(sockname[1], []) if sockname else []
        token = request.match_info.get("token", "").encode()
        found = None
        for share in shares:  # compare every token, in constant time each
            if hmac.compare_digest(token, share.token.encode()):
                found = share
        return found

    async def _torrent(self, request: web.Request) -> web.Response:
        share = self._share(request)
        if share is None:
            return _not_found()
        return web.Response(body=self._served_torrent(share),
                            content_type="application/x-bittorrent")

    async def _announce(self, request: web.Request) -> web.Response:
        share = self._share(request)
        if share is None:
            return _not_found()
        try:
            announce = core.parse_announce(request.rel_url.raw_query_string)
        except core.AnnounceError as exc:
            return self._bencoded(core.failure(str(exc)))
        if announce.info_hash not in share.info_hashes + share.aliases:
            return self._bencoded(core.failure("unknown info_hash"))
        try:
            core.admit(announce, share.open)
        except core.AnnounceError as exc:
            return self._bencoded(core.failure(str(exc)))
        key = share.info_hashes[0]
        announce = dataclasses.replace(announce, info_hash=key)
        now = self._clock()
        # only an announce that changed the swarm is saved and passed on to mirrors: one
        # for another peer_id's entry (a forged "stopped") changes nothing anywhere
        if self.peers.record(announce, now) and self._on_announce is not None:
            self._on_announce(share.torrent_id, announce)
        peers = self.peers.listed(announce, now)
        complete, incomplete = self.peers.counts(key)
        trackers = self._trackers(share.torrent_id) if self._trackers else []
        return self._bencoded(core.reply(peers, self.interval, complete, incomplete, trackers))

    async def _catalogue(self, request: web.Request) -> web.Response:
        token, document = self._public
        given = request.match_info["token"].encode()
        if not hmac.compare_digest(given, token.encode()):
            return _not_found()
        return web.json_response(document())

    @staticmethod
    def _bencoded(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    async def _fallback(self, request: web.Request) -> web.Response:
        return _not_found()
