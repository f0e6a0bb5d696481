"""Every operation of a running node, composed of its parts (see :mod:`onionshare_bt.ops`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Set
from typing import TYPE_CHECKING, Any

from . import requests
from . import requests as rq
from .casts import CastOps
from .node import Lifetime, NodeOps
from .torrents import TorrentOps
from .trust import MirrorOps, ReleaseOps, TrustOps

if TYPE_CHECKING:
    from ..cast.service import CastService
    from ..config import Config
    from ..mirror.origin import Origin
    from ..mirror.service import MirrorService
    from ..relay.driver import Relay
    from ..release.service import ReleaseService
    from ..stream.server import StreamService
    from ..torrents import Swarm
    from ..trust.service import TrustService

Runner = Callable[[Any], Awaitable[Any]]


class Operations:
    """Every operation of a running node, by request type, but the web UI's own (``ui_link``,
    see :class:`Dispatch`): the UI runs these, so it comes after them."""

    def __init__(self, *, config: Config, swarm: Swarm, relay: Relay, stream: StreamService,
                 origin: Origin, trust: TrustService, mirrors: MirrorService,
                 releases: ReleaseService, casts: CastService, gated: Set[str],
                 stalled: Set[str], reasons: Mapping[str, str], lifetime: Lifetime) -> None:
        self.torrents = TorrentOps(swarm, stream, origin, gated, stalled, reasons)
        self.node = NodeOps(config, swarm, relay, gated, lifetime)
        self.trust = TrustOps(trust, swarm)
        self.mirrors = MirrorOps(mirrors)
        self.releases = ReleaseOps(releases)
        self.casts = CastOps(casts)
        t, n, tr, m, r = self.torrents, self.node, self.trust, self.mirrors, self.releases
        c = self.casts
        #: each request type's runner
        self.runners: Mapping[type[rq.Request], Runner] = {
            rq.Share: t.share, rq.SharePreview: t.share_preview, rq.Get: t.get,
            rq.ListTorrents: t.list, rq.Torrent: t.torrent,
            rq.TorrentFile: t.torrent_file, rq.Peers: t.peers, rq.Play: t.play,
            rq.SetOpen: t.set_open, rq.Unshare: t.unshare, rq.Remove: t.remove,
            rq.Pause: t.pause, rq.Resume: t.resume,
            rq.Status: n.status, rq.Stop: n.stop, rq.RelayStatus: n.relay_status,
            rq.Ratio: n.ratio, rq.Settings: n.settings, rq.SettingsSet: n.settings_set,
            rq.NodeId: tr.node_id, rq.Publish: tr.publish, rq.Published: tr.published,
            rq.Catalogue: tr.catalogue, rq.TrustAdd: tr.add, rq.TrustRemove: tr.remove,
            rq.TrustList: tr.list, rq.TrustDepth: tr.depth, rq.TrustGraph: tr.graph,
            rq.Search: tr.search,
            rq.MirrorAdd: m.add, rq.MirrorRemove: m.remove, rq.MirrorList: m.list,
            rq.ReleasePublish: r.publish, rq.ReleaseList: r.list, rq.ReleaseShow: r.show,
            rq.UpdateCheck: r.update_check,
            rq.Cast: c.cast, rq.CastStop: c.stop, rq.Listen: c.listen,
            rq.ListenStop: c.stop_listen, rq.Casts: c.list,
        }

    async def run(self, request: rq.Request) -> Any:
        """Run one operation; its result is JSON-ready."""
        return await self.runners[type(request)](request)



class Dispatch:
    """The control socket's way in: every request runs on the one part whose table names
    its type (the node's :class:`Operations`, the web UI's own).

    :raises ValueError: two tables name the same request type
    """

    def __init__(self, *tables: Mapping[type[rq.Request], Runner]) -> None:
        self.runners: dict[type[rq.Request], Runner] = {}
        for table in tables:
            if both := self.runners.keys() & table.keys():
                raise ValueError(f"two runners for {sorted(t.__name__ for t in both)}")
            self.runners.update(table)

    async def call(self, op: str, args: dict) -> Any:
        """Run the operation named ``op`` with JSON ``args``; its result is JSON-ready.

        :raises UsageError: an unknown operation or bad arguments, before anything runs
        """
        request = requests.parse(op, args)
        return await self.runners[type(request)](request)
