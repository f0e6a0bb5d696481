"""The node's running parts as the torrent operations use them (:class:`Parts`)."""

from __future__ import annotations

import dataclasses

from ..config import Config
from ..engine.metainfo import Metainfo, parse
from ..engine.session import Engine
from ..multiplex.bridge import Bridges
from ..store import Store, TorrentRow
from ..tasks import TaskRegistry
from ..tor.client import TorClient
from ..tracker.client import TrackerClient
from ..tracker.server import TrackerServer


@dataclasses.dataclass
class Parts:
    """The node's running parts, as the torrent operations use them."""

    config: Config
    store: Store
    tor: TorClient
    engine: Engine
    bridges: Bridges
    tracker: TrackerServer
    http: TrackerClient
    tasks: TaskRegistry
    peer_ids: dict[str, bytes] = dataclasses.field(default_factory=dict)
    #: every published onion's port map, to republish after a tor restart
    onion_ports: dict[str, dict] = dataclasses.field(default_factory=dict)
    #: parsed metadata per torrent id (status polls must not re-parse the .torrent)
    metas: dict[str, Metainfo] = dataclasses.field(default_factory=dict)

    def meta(self, row: TorrentRow) -> Metainfo:
        """The torrent's metadata, parsed once per node lifetime."""
        meta = self.metas.get(row.id)
        if meta is None:
            meta = self.metas[row.id] = parse(row.torrent)
        return meta
    announce_errors: dict[str, str] = dataclasses.field(default_factory=dict)
