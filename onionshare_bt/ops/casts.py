"""The live broadcast operations: cast, cast_stop, listen, listen_stop, casts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import requests as rq
from . import results as rs

if TYPE_CHECKING:
    from ..cast.service import CastService


class CastOps:
    """The node's broadcasts and what it listens to (:mod:`onionshare_bt.cast`)."""

    def __init__(self, casts: CastService) -> None:
        self.casts = casts

    async def cast(self, req: rq.Cast) -> rs.CastInfo:
        return await self.casts.cast(req.source, req.bitrate, req.fanout, req.input_format,
                                     req.public, req.name, req.description)

    async def stop(self, req: rq.CastStop) -> rs.CastInfo:
        return await self.casts.stop_cast(req.id)

    async def listen(self, req: rq.Listen) -> rs.CastInfo:
        return await self.casts.listen(req.uri, req.fanout, req.out)

    async def stop_listen(self, req: rq.ListenStop) -> rs.CastInfo:
        return await self.casts.stop_listen(req.id)

    async def list(self, req: rq.Casts) -> list[rs.CastInfo]:
        return self.casts.list()
