"""What the swarm part keeps while the node runs, and the parts it is made of.

:class:`SwarmState` is the bottom of ``torrents/``: the modules holding the operations'
code (shares, downloads, onions, announce, removal) take it first and import nothing above
it; :class:`.swarm.Swarm` adds the operations as methods.
"""

from __future__ import annotations

from ..config import Config
from ..engine.metainfo import Metainfo, parse
from ..engine.session import Engine
from ..multiplex.bridge import Bridges
from ..multiplex.growth import PathGrowth
from ..store import Store, TorrentRow
from ..tasks import TaskRegistry
from ..tor.client import TorClient
from ..tracker.client import TrackerClient
from ..tracker.server import TrackerServer

__all__ = ["SwarmState"]


class SwarmState:
    """Every torrent of the node, shared or downloaded, and the parts that carry them.

    :param config: the node's settings
    :param store: its database (torrents, onions, trackers, peers)
    :param tor: its tor (onion services, SOCKS)
    :param engine: libtorrent, bound to loopback
    :param bridges: the loopback bridges between libtorrent and Tor
    :param tracker: the node's own tracker (one listener per share)
    :param http: HTTP over Tor (announces, .torrent fetches)
    :param tasks: where long-running work (announce loops) is spawned
    """

    def __init__(self, config: Config, store: Store, tor: TorClient, engine: Engine,
                 bridges: Bridges, tracker: TrackerServer, http: TrackerClient,
                 tasks: TaskRegistry) -> None:
        self.config, self.store, self.tor, self.engine = config, store, tor, engine
        self.bridges, self.tracker, self.http, self.tasks = bridges, tracker, http, tasks
        #: the peer id each torrent announces with (a fresh one per node lifetime)
        self.peer_ids: dict[str, bytes] = {}
        #: every published onion's port map, to republish after a tor restart
        self.onion_ports: dict[str, dict] = {}
        #: parsed metadata per torrent id (status polls must not re-parse the .torrent)
        self.metas: dict[str, Metainfo] = {}
        #: the last announce's error per torrent id, until an announce succeeds
        self.announce_errors: dict[str, str] = {}
        #: each download's path count as it grew (:mod:`.paths`), kept once it settled
        self.growth: dict[str, PathGrowth] = {}

    def meta(self, row: TorrentRow) -> Metainfo:
        """The torrent's metadata, parsed once per node lifetime."""
        meta = self.metas.get(row.id)
        if meta is None:
            meta = self.metas[row.id] = parse(row.torrent)
        return meta
