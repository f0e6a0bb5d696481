"""The web-of-trust operations: identity and catalogue, trust, search, mirrors, releases."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UsageError
from ..uri import parse_uri
from . import requests as rq
from . import results as rs

if TYPE_CHECKING:
    from ..mirror.service import MirrorService
    from ..release.service import ReleaseService
    from ..torrents import Swarm
    from ..trust.service import TrustService


class TrustOps:
    """The node's identity, its public catalogue, the nodes it trusts, and search."""

    def __init__(self, trust: TrustService, swarm: Swarm) -> None:
        self.trust, self.swarm = trust, swarm

    async def node_id(self, req: rq.NodeId) -> rs.NodeIdInfo:
        return {"onion": f"{self.trust.onion}.onion", "public_uri": self.trust.public_uri}

    async def publish(self, req: rq.Publish) -> rs.PublishInfo:
        return self.trust.publish(self.swarm.find(req.id), req.public, req.description)

    async def published(self, req: rq.Published) -> rs.PublishedInfo:
        return {"public_uri": self.trust.public_uri, "items": self.trust.catalogue()}

    async def catalogue(self, req: rq.Catalogue) -> rs.CatalogueInfo:
        parsed = parse_uri(req.uri)
        if parsed.kind != "public":
            raise UsageError("that is not a public catalogue URI (…/public/<token>)")
        items = await self.trust.remote_catalogue(parsed.onion, parsed.token)
        return {"node": f"{parsed.onion}.onion", "items": items}

    async def add(self, req: rq.TrustAdd) -> rs.TrustChange:
        return self.trust.add(req.onion)

    async def remove(self, req: rq.TrustRemove) -> rs.TrustChange:
        return self.trust.remove(req.onion)

    async def list(self, req: rq.TrustList) -> rs.TrustListInfo:
        return {"depth": self.trust.depth(),
                "trusted": [f"{o}.onion" for o in self.trust.trusted()]}

    async def depth(self, req: rq.TrustDepth) -> rs.TrustDepthInfo:
        return {"depth": self.trust.depth(req.depth)}

    async def graph(self, req: rq.TrustGraph) -> rs.TrustGraph:
        return await self.trust.graph()

    async def search(self, req: rq.Search) -> rs.SearchResults:
        return await self.trust.search([t.strip() for t in req.terms])


class MirrorOps:
    """Other nodes' public trackers kept alive on onions of this node."""

    def __init__(self, mirrors: MirrorService) -> None:
        self.mirrors = mirrors

    async def add(self, req: rq.MirrorAdd) -> rs.MirrorInfo:
        return await self.mirrors.add(req.onion, req.follow)

    async def remove(self, req: rq.MirrorRemove) -> rs.MirrorInfo:
        return await self.mirrors.remove(req.onion)

    async def list(self, req: rq.MirrorList) -> list[rs.MirrorInfo]:
        return self.mirrors.list()


class ReleaseOps:
    """Signed releases of obt: seeded, listed, fetched from the trusted set."""

    def __init__(self, releases: ReleaseService) -> None:
        self.releases = releases

    async def publish(self, req: rq.ReleasePublish) -> rs.ReleaseInfo:
        return await self.releases.publish(req.folder)

    async def list(self, req: rq.ReleaseList) -> list[rs.ReleaseInfo]:
        return self.releases.list()

    async def show(self, req: rq.ReleaseShow) -> rs.ReleaseInfo:
        return self.releases.find(req.id)

    async def update_check(self, req: rq.UpdateCheck) -> rs.UpdateInfo:
        return await self.releases.check()
