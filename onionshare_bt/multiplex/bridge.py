"""The loopback bridges between libtorrent and Tor.

*Outbound*: for every (torrent, remote onion, port) a listener on a loopback address of its
own (from 127.64.0.0/10, never reused for another onion). libtorrent is told to connect
there; each connection is dialled on to ``<onion>.onion:<port>`` through Tor's SOCKS port.

*Inbound*: every onion service of ours points its peer port at a listener here. Each
connection must open with a BitTorrent handshake for one of that listener's own torrents
(so one share's onion never answers for another share), then is forwarded to libtorrent
from a fresh source address (127.1.x.y, bound before connect), because libtorrent admits one
peer per address per torrent and every Tor connection arrives from 127.0.0.1.

Every byte is counted per path in :class:`PathCounters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..errors import ObtError
from .core import (
    HANDSHAKE_PREFIX,
    INBOUND_NET,
    OUTBOUND_NET,
    AddressPool,
    PathCounters,
    handshake_info_hash,
)

log = logging.getLogger(__name__)

Dial = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT = 60.0


class Bridges:
    """Own every bridge listener and connection of a node.

    :param dial: opens a stream to ``(onion, port)``; through Tor's SOCKS port in the node
    :param engine_port: returns libtorrent's loopback listen port
    """

    def __init__(self, dial: Dial, engine_port: Callable[[], int]) -> None:
        self._dial = dial
        self._engine_port = engine_port
        self._out_pool = AddressPool(OUTBOUND_NET)
        self._in_pool = AddressPool(INBOUND_NET, wrap=True)
        self._servers: dict[tuple, asyncio.base_events.Server] = {}
        self._paths: dict[tuple, PathCounters] = {}
        self._tasks: dict[asyncio.Task, PathCounters] = {}  # connection task -> its path

    # -- outbound -----------------------------------------------------------------------
    async def outbound(self, torrent_id: str, onion: str, port: int) -> tuple[str, int]:
        """The loopback endpoint that reaches ``onion:port`` for ``torrent_id``."""
        key = ("out", torrent_id, onion, port)
        if key in self._paths:
            host, eport = self._paths[key].endpoint.rsplit(":", 1)
            return host, int(eport)
        host = self._out_pool.next()
        counters = PathCounters(torrent_id, "out", onion, port, endpoint="")

        async def on_connect(reader, writer):
            await self._forward_out(counters, reader, writer)

        server = await asyncio.start_server(self._owned(on_connect, counters), host, 0)
        eport = server.sockets[0].getsockname()[1]
        counters.endpoint = f"{host}:{eport}"
        self._servers[key] = server
        self._paths[key] = counters
        return host, eport

    async def _forward_out(self, counters: PathCounters, lt_reader, lt_writer) -> None:
        counters.connections += 1
        counters.dialing += 1
        try:
            remote_reader, remote_writer = await self._dial(counters.onion, counters.port)
        except (ObtError, OSError) as exc:
            counters.failures += 1
            counters.last_error = str(exc)
            log.info("dial %s…:%d failed: %s", counters.onion[:8], counters.port, exc)
            lt_writer.close()
            return
        finally:
            counters.dialing -= 1
        await self._splice(counters, remote_reader, remote_writer, lt_reader, lt_writer)

    # -- inbound ------------------------------------------------------------------------
    async def inbound(self, torrent_id: str, info_hashes: tuple[bytes, ...]) -> PathCounters:
        """Open a listener for one of our onion services, on 127.0.0.1.

        The caller names the path (``counters.onion``) once the onion exists.

        :param info_hashes: the only torrents a peer may ask for through it
        :returns: the path's counters; ``endpoint`` holds the listener's address
        """
        counters = PathCounters(torrent_id, "in", "", 0, endpoint="")
        allowed = frozenset(info_hashes)

        async def on_connect(reader, writer):
            await self._forward_in(counters, allowed, reader, writer)

        server = await asyncio.start_server(
            self._owned(on_connect, counters), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        counters.endpoint = f"127.0.0.1:{port}"
        key = ("in", torrent_id, port)
        self._servers[key] = server
        self._paths[key] = counters
        return counters

    async def _forward_in(self, counters, allowed, tor_reader, tor_writer) -> None:
        counters.connections += 1
        try:
            prefix = await asyncio.wait_for(
                tor_reader.readexactly(HANDSHAKE_PREFIX), HANDSHAKE_TIMEOUT
            )
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            tor_writer.close()
            return
        if handshake_info_hash(prefix) not in allowed:
            counters.failures += 1
            counters.last_error = "handshake for another torrent"
            tor_writer.close()
            return
        try:
            lt_reader, lt_writer = await asyncio.open_connection(
                "127.0.0.1", self._engine_port(), local_addr=(self._in_pool.next(), 0)
            )
        except OSError as exc:
            counters.failures += 1
            counters.last_error = str(exc)
            tor_writer.close()
            return
        lt_writer.write(prefix)
        counters.down += len(prefix)
        await self._splice(counters, tor_reader, tor_writer, lt_reader, lt_writer)

    # -- shared -------------------------------------------------------------------------
    def _owned(self, handler, path: PathCounters):
        async def run(reader, writer):
            task = asyncio.current_task()
            self._tasks[task] = path
            try:
                await handler(reader, writer)
            finally:
                self._tasks.pop(task, None)

        return run

    async def _splice(self, counters, remote_r, remote_w, lt_r, lt_w) -> None:
        """Copy both ways until either side closes; count every byte."""
        counters.active += 1

        async def pump(reader, writer, field):
            try:
                while data := await reader.read(CHUNK):
                    writer.write(data)
                    setattr(counters, field, getattr(counters, field) + len(data))
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

        try:
            await asyncio.gather(pump(remote_r, lt_w, "down"), pump(lt_r, remote_w, "up"))
        finally:
            counters.active -= 1

    def endpoints(self) -> set[str]:
        """Every outbound endpoint host we created (libtorrent may connect to these only)."""
        return {p.endpoint.rsplit(":", 1)[0] for p in self._paths.values() if p.direction == "out"}

    @staticmethod
    def is_inbound_source(host: str) -> bool:
        return host in AddressPool(INBOUND_NET)

    def counters(self, torrent_id: str | None = None) -> list[PathCounters]:
        return [p for p in self._paths.values() if torrent_id in (None, p.torrent_id)]

    async def close_torrent(self, torrent_id: str) -> None:
        """Close a torrent's listeners (its connections end with them)."""
        for key in [k for k in self._servers if k[1] == torrent_id]:
            server = self._servers.pop(key)
            server.close()
        for key in [k for k in self._paths if k[1] == torrent_id]:
            del self._paths[key]
        await self._cancel([t for t, p in self._tasks.items() if p.torrent_id == torrent_id])

    async def _cancel(self, tasks: list[asyncio.Task]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def close_listener(self, torrent_id: str, onion: str) -> None:
        """Close the inbound listener of one of our onions and its connections.

        The path keeps its counters.
        """
        for key, path in self._paths.items():
            if path.direction == "in" and path.torrent_id == torrent_id and path.onion == onion:
                server = self._servers.pop(key, None)
                if server is not None:
                    server.close()
                await self._cancel([t for t, p in self._tasks.items() if p is path])

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        await self._cancel(list(self._tasks))
