"""The node's liveness watchdog: it closes dead bridge paths and says why a download is not
moving.

A bridge path that holds a connection but whose peer sent nothing for
:data:`SILENCE_WINDOW` is dead (a live libtorrent peer sends a keep-alive after half its
``peer_timeout`` of quiet) and its connections are closed, so libtorrent dials again; so is
a path we dialled whose peer owes us blocks and sent none of them for as long. A download
without verified progress says why in :attr:`Watchdog.reasons`, is called stalled after
``stall_timeout``, and announces again when it loses its last peer or stays stalled. The
judgements are :mod:`.liveness`'s (pure); this part gathers the counters and acts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Set

from . import torrents
from .liveness import Liveness

__all__ = ["SILENCE_WINDOW", "WATCH_INTERVAL", "Watchdog"]

log = logging.getLogger(__name__)

#: how often the liveness watchdog looks at paths and downloads
WATCH_INTERVAL = 2.0
#: a path holding a connection whose peer sent nothing for this long is dead; libtorrent
#: (``peer_timeout`` 20 s) sends a keep-alive after 10 s of quiet, so a live peer never is
SILENCE_WINDOW = 30.0


class Watchdog:
    """Watch a node's bridge paths and downloads.

    :param swarm: the node's torrents (their store rows, engine, bridges; announcing again)
    :param stall_timeout: seconds without verified progress before a download is stalled
    :param gated: ids of downloads waiting for relay credit (the node's ledger keeps it):
      libtorrent asks them for nothing, so they are never judged
    """

    def __init__(self, swarm: torrents.Swarm, stall_timeout: float, gated: Set[str]) -> None:
        self.swarm = swarm
        self.gated = gated
        self.liveness = Liveness(SILENCE_WINDOW, stall_timeout)
        #: ids of downloads without verified progress for the stall timeout
        self.stalled: set[str] = set()
        #: why a download is not moving (``obt list``), by torrent id
        self.reasons: dict[str, str] = {}
        #: connections closed because their peer fell silent, since the node started
        self.silent_closed = 0

    async def run(self) -> None:
        """Every :data:`WATCH_INTERVAL`: close silent paths, then look at every download."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            await self.watch_once(time.monotonic())

    async def watch_once(self, now: float) -> None:
        """One look at every path and download at **now** (monotonic seconds)."""
        rows = self.swarm.store.torrents.all("download")
        await self._close_silent(now, rows)
        self.liveness.keep({r.id for r in rows})
        for row in rows:
            self._watch_download(now, row)

    async def _close_silent(self, now: float, downloads) -> None:
        """Close the connections of every path whose peer sent nothing for the window, and
        of every path we dialled whose peer owes us blocks and sent no payload for it."""
        bridges = self.swarm.bridges
        paths = bridges.counters()
        silent = self.liveness.silent_paths(now, ((_path_key(p), p.down, p.active)
                                                  for p in paths))
        owing = self.liveness.owing_peers(now, self._owed(downloads))
        for path in paths:
            key = _path_key(path)
            if key not in silent and key not in owing:
                continue
            closed = await bridges.close_connections(path)
            if closed:
                self.silent_closed += closed
                self.liveness.closed(path.torrent_id, closed)
                log.info("%s: closed %d connection(s) of path %s %s…: %s for %.0f s",
                         path.torrent_id[:16], closed, path.direction, path.onion[:8],
                         "nothing from the peer" if key in silent
                         else "none of the blocks we asked the peer for", SILENCE_WINDOW)

    def _owed(self, downloads):
        """``(path key, payload, blocks waited on)`` of each connection we dialled for a
        download that is moving or should be (outbound peers' addresses are our bridges'
        endpoints, so each is one path)."""
        engine = self.swarm.engine
        for row in downloads:
            if row.state != "downloading" or not engine.has(row.id) or row.id in self.gated:
                continue
            for peer in engine.peers(row.id):
                if not peer.incoming:
                    yield ((row.id, "out", f"{peer.host}:{peer.port}"), peer.payload_down,
                           peer.requests)

    def _watch_download(self, now: float, row) -> None:
        """Say why a download is not moving; call it stalled; announce and dial again."""
        engine = self.swarm.engine
        if row.state != "downloading" or not engine.has(row.id) or row.id in self.gated:
            self.liveness.forget(row.id)
            self.stalled.discard(row.id)
            self.reasons.pop(row.id, None)
            return
        st = engine.status(row.id)
        verdict = self.liveness.look(now, row.id, st.total_done, st.connected)
        if verdict.stalled and row.id not in self.stalled:
            log.warning("%s stalled at %d bytes: %s", row.name, st.total_done, verdict.reason)
        (self.stalled.add if verdict.stalled else self.stalled.discard)(row.id)
        if verdict.reason:
            self.reasons[row.id] = verdict.reason
        else:
            self.reasons.pop(row.id, None)
        if verdict.kick:
            log.info("%s: %s; announcing and dialling again", row.name, verdict.reason)
            self._reconnect(row)

    def _reconnect(self, row) -> None:
        for path in self.swarm.bridges.counters(row.id):
            if path.direction == "out":
                host, port = path.endpoint.rsplit(":", 1)
                self.swarm.engine.connect(row.id, (host, int(port)))
        self.swarm.start_announcing(row)  # announces again at once


def _path_key(path) -> tuple:
    """A bridge path's identity: its endpoint is never reused for another path."""
    return path.torrent_id, path.direction, path.endpoint
