"""The loopback bridges between libtorrent and Tor.

*Outbound*: for every (torrent, remote onion, port) a listener on a loopback address of its
own (drawn in a random order from 127.64.0.0/10, never reused for another onion). libtorrent
is told to connect there. Each connection must open with libtorrent's BitTorrent handshake
for that endpoint's own torrent (so a peer that makes libtorrent dial another torrent's
endpoint, by ``ut_holepunch`` or otherwise, reaches nothing), and is then dialled on to
``<onion>.onion:<port>`` through Tor's SOCKS port. A torrent holds at most
:data:`~.core.MAX_ENDPOINTS_PER_TORRENT` endpoints and the node
:data:`~.core.MAX_ENDPOINTS`; past a cap the least recently useful idle endpoint is closed,
and when none is idle the new one is refused with :class:`~onionshare_bt.errors.NodeError`.

*Inbound*: every onion service of ours points its peer port at a listener here. Each
connection must open with a BitTorrent handshake for one of that listener's own torrents
(so one share's onion never answers for another share), then is forwarded to libtorrent
from a random source address (127.1.x.y, bound before connect), because libtorrent admits
one peer per address per torrent and every Tor connection arrives from 127.0.0.1. Only
:data:`~.core.MAX_PENDING_PER_LISTENER` connections per listener (and
:data:`~.core.MAX_PENDING` in all) may wait for their handshake.

Both directions pass through a :class:`~.core.WireFilter` (:mod:`.splice` copies the
bytes): extension handshakes lose every value that could link two connections of one
node, and ``ut_holepunch`` is neither advertised nor accepted.

Every byte is counted per path in :class:`PathCounters`; :meth:`Bridges.usage` reports the
caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable

from ..errors import ObtError
from .ahead import Ahead, Taken
from .core import (
    HANDSHAKE,
    HANDSHAKE_PREFIX,
    INBOUND_NET,
    MAX_PENDING,
    MAX_PENDING_PER_LISTENER,
    OUTBOUND_NET,
    AddressPool,
    EndpointTable,
    PathCounters,
    handshake_info_hash,
    in_network,
    node_endpoint_cap,
)
from .splice import splice

log = logging.getLogger(__name__)

#: ``dial(onion, port, torrent_id, lane)`` opens a stream to ``onion:port`` for one torrent
#: (the node isolates Tor circuits per torrent and lane by it: each lane to one onion is a
#: circuit of its own); ``dial(..., isolation=KEY)`` opens it on the circuits of that
#: isolation key instead (:meth:`.Ahead.dial`)
Dial = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
HANDSHAKE_TIMEOUT = 60.0
#: libtorrent is local and writes its handshake at once
ENGINE_HANDSHAKE_TIMEOUT = 10.0


class Bridges:
    """Own every bridge listener and connection of a node.

    :param dial: ``dial(onion, port, torrent_id, lane)``; through Tor's SOCKS port in the node
    :param engine_port: libtorrent's loopback listen port (the engine is started first)
    :param info_hashes: returns the info-hashes (20-byte, v1 and truncated v2) of a torrent
        of ours (:meth:`Engine.info_hashes <onionshare_bt.engine.session.Engine.info_hashes>`);
        libtorrent's handshake through an outbound endpoint must name one of them. Without
        it the check is weaker (see :meth:`_handshake_allowed`)
    """

    def __init__(
        self,
        dial: Dial,
        engine_port: int,
        info_hashes: Callable[[str], Iterable[bytes]] | None = None,
    ) -> None:
        self._dial = dial
        self._engine_port = engine_port
        self._info_hashes = info_hashes
        self._known: dict[str, set[bytes]] = {}
        self._out_pool = AddressPool(OUTBOUND_NET)
        self._in_pool = AddressPool(INBOUND_NET, wrap=True)
        self._table = EndpointTable(total=node_endpoint_cap())
        self._servers: dict[tuple, asyncio.base_events.Server] = {}
        self._paths: dict[tuple, PathCounters] = {}
        self._tasks: dict[asyncio.Task, PathCounters] = {}  # connection task -> its path
        self._pending: dict[tuple, int] = {}  # inbound listener key -> waiting handshakes
        # torrent -> alias -> info-hash: the names a share's inbound paths answer to besides
        # its info-hashes (:func:`.core.share_alias` of its token)
        self._aliases: dict[str, dict[bytes, bytes]] = {}
        #: streams dialled before libtorrent asks for them (a download's first byte)
        self.ahead = Ahead(dial)
        self._stats = {"pending_refused": 0, "wrong_torrent": 0, "rewritten": 0, "dropped": 0,
                       "dialled_ahead": 0}

    # -- outbound -----------------------------------------------------------------------
    async def outbound(self, torrent_id: str, onion: str, port: int,
                       lane: int = 0) -> tuple[str, int]:
        """The loopback endpoint that reaches ``onion:port`` for ``torrent_id``.

        :param lane: another path to the same onion (0: the first), its own endpoint and
          its own circuits (:mod:`.growth` opens them)
        :raises NodeError: when the torrent's or the node's endpoints are all busy
        """
        key = ("out", torrent_id, onion, port, lane)
        if key in self._paths:
            self._table.touch(key)
            host, eport = self._paths[key].endpoint.rsplit(":", 1)
            return host, int(eport)
        for victim in self._table.admit(key, torrent_id):
            self._drop_path(victim)
        counters = PathCounters(torrent_id, "out", onion, port, endpoint="", lane=lane)
        try:
            host = self._out_pool.next()
            # bound and listening before the first await, so that a concurrent call for the
            # same key finds the path instead of opening a second listener
            sock = socket.create_server((host, 0), backlog=64)
        except BaseException:
            self._table.remove(key)
            raise
        eport = sock.getsockname()[1]
        counters.endpoint = f"{host}:{eport}"
        self._paths[key] = counters

        async def on_connect(reader, writer):
            await self._forward_out(key, counters, reader, writer)

        try:
            server = await asyncio.start_server(self._owned(on_connect, counters), sock=sock)
        except BaseException:
            sock.close()
            self._paths.pop(key, None)
            self._table.remove(key)
            raise
        if self._paths.get(key) is counters:
            self._servers[key] = server
        else:  # evicted while it started
            server.close()
        return host, eport

    async def drop(self, path: PathCounters) -> None:
        """Close one outbound path: its listener, its connections, its endpoint."""
        key = next((k for k, p in self._paths.items() if p is path), None)
        if key is None:
            return
        self._drop_path(key)
        self._table.remove(key)
        await self._cancel([t for t, p in self._tasks.items() if p is path])

    def _drop_path(self, key: tuple) -> None:
        server = self._servers.pop(key, None)
        if server is not None:
            server.close()
        self._paths.pop(key, None)

    def _handshake_allowed(self, torrent_id: str, info_hash: bytes | None) -> bool:
        """Whether libtorrent's handshake through an endpoint of ``torrent_id`` is for it.

        With the engine's ``info_hashes`` the check is exact. Without it (callers from
        before it existed) a hybrid torrent's truncated v2 hash may be unknown here, and
        libtorrent uses it once a peer upgraded to v2; then only a hash known to belong to
        another torrent is refused.
        """
        if info_hash is None:
            return False
        known = {tid: set(hashes) for tid, hashes in self._known.items()}
        for path in self._paths.values():
            with contextlib.suppress(ValueError):
                known.setdefault(path.torrent_id, set()).add(bytes.fromhex(path.torrent_id))
        if self._info_hashes is not None:
            with contextlib.suppress(KeyError, ObtError):
                known.setdefault(torrent_id, set()).update(self._info_hashes(torrent_id))
            return info_hash in known.get(torrent_id, ())
        if info_hash in known.get(torrent_id, ()):
            return True
        return not any(info_hash in hashes for tid, hashes in known.items() if tid != torrent_id)

    async def _forward_out(self, key, counters: PathCounters, lt_reader, lt_writer) -> None:
        counters.connections += 1
        self._table.busy(key, +1)
        try:
            try:
                prefix = await asyncio.wait_for(
                    lt_reader.readexactly(HANDSHAKE_PREFIX), ENGINE_HANDSHAKE_TIMEOUT
                )
            except (asyncio.IncompleteReadError, TimeoutError, OSError):
                lt_writer.close()
                return
            if not self._handshake_allowed(counters.torrent_id, handshake_info_hash(prefix)):
                self._refuse(counters, lt_writer, "libtorrent's handshake is for another torrent")
                return
            self._table.touch(key)
            remote = await self._dial_out(counters, prefix, lt_writer)
            if remote is None:
                return
            lt_skip = HANDSHAKE - HANDSHAKE_PREFIX
            remote_skip = HANDSHAKE
            if remote.sent:  # ours went ahead: libtorrent's peer id goes nowhere
                try:
                    peer_id = await asyncio.wait_for(lt_reader.readexactly(lt_skip),
                                                     ENGINE_HANDSHAKE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, OSError):
                    lt_writer.close()
                    remote.writer.close()
                    return
                counters.up += HANDSHAKE
                lt_skip = 0
                if remote.named is not None:
                    remote = await self._alias_answered(counters, remote, prefix + peer_id,
                                                        lt_writer)
                    if remote is None:
                        return
                    remote_skip = 0 if remote.sent else HANDSHAKE
            else:
                remote.writer.write(prefix)
                counters.up += len(prefix)
            await splice(counters, remote.reader, remote.writer, lt_reader, lt_writer,
                         lt_skip=lt_skip, remote_skip=remote_skip, stats=self._stats)
        finally:
            self._table.busy(key, -1)

    def dial_ahead(self, torrent_id: str, onion: str, port: int, handshake: bytes) -> bool:
        """Dial the first path of ``torrent_id`` to ``onion:port`` now, on that path's own
        circuits, and send ``handshake`` on it as soon as it is up, if the path has not
        dialled yet: a peer named by an announce is being dialled, and its handshake
        answered, while libtorrent waits for its next round of connection attempts (up to
        a second) to dial it. Whether a dial was started."""
        path = self._paths.get(("out", torrent_id, onion, port, 0))
        if path is None or path.connections or path.dialing:
            return False
        if not self.ahead.dial(onion, port, torrent_id=torrent_id):
            return False
        self.ahead.handshake(onion, port, handshake)
        return True

    async def _alias_answered(self, counters: PathCounters, remote: Taken, handshake: bytes,
                              lt_writer) -> Taken | None:
        """The share's handshake on a stream ours named it on by its alias
        (:meth:`.Ahead.name`) must name the alias too; libtorrent reads the info-hash in its
        place. Returns that stream (``sent``); or, when the peer closed it before a whole
        handshake (an obt from before aliases), a new one with libtorrent's ``handshake``
        sent on it (not ``sent``); None when the peer named another torrent or the new dial
        failed (``lt_writer`` is closed)."""
        alias, info_hash = remote.named
        try:
            theirs = await asyncio.wait_for(remote.reader.readexactly(HANDSHAKE),
                                            HANDSHAKE_TIMEOUT)
        except asyncio.IncompleteReadError:
            remote.writer.close()
            log.info("%s… does not answer to the share's alias; dialling again",
                     counters.onion[:8])
            fresh = await self._dial_out(counters, handshake[:HANDSHAKE_PREFIX], lt_writer,
                                         ahead=False)
            if fresh is not None:
                fresh.writer.write(handshake)
            return fresh
        except (TimeoutError, OSError):
            remote.writer.close()
            lt_writer.close()
            return None
        if handshake_info_hash(theirs[:HANDSHAKE_PREFIX]) != alias:
            remote.writer.close()
            self._refuse(counters, lt_writer, "the share's handshake names another torrent")
            return None
        lt_writer.write(theirs[:HANDSHAKE_PREFIX - 20] + info_hash + theirs[HANDSHAKE_PREFIX:])
        counters.down += HANDSHAKE
        return remote

    async def _dial_out(self, counters: PathCounters, prefix: bytes,
                        lt_writer, ahead: bool = True) -> Taken | None:
        """The remote stream for one connection of libtorrent's, and whether our handshake
        went ahead on it already (:meth:`.Ahead.handshake`); None if the dial failed."""
        counters.dialing += 1
        try:
            if counters.lane == 0 and ahead:
                taken = await self.ahead.take(counters.torrent_id, counters.onion,
                                               counters.port, prefix)
                if taken is not None:
                    self._stats["dialled_ahead"] += 1
                    return taken
            reader, writer = await self._dial(counters.onion, counters.port,
                                              counters.torrent_id, counters.lane)
            return Taken(reader, writer, sent=False)
        except (ObtError, OSError) as exc:
            counters.failures += 1
            counters.last_error = str(exc)
            log.info("dial %s…:%d failed: %s", counters.onion[:8], counters.port, exc)
            lt_writer.close()
            return None
        finally:
            counters.dialing -= 1

    # -- inbound ------------------------------------------------------------------------
    async def inbound(self, torrent_id: str, info_hashes: tuple[bytes, ...],
                      aliases: dict[bytes, bytes] | None = None) -> PathCounters:
        """Open a listener for one of our onion services, on 127.0.0.1.

        The caller names the path (``counters.onion``) once the onion exists.

        :param info_hashes: the only torrents a peer may ask for through it
        :param aliases: other names a peer may give one of them, each mapped to the
          info-hash libtorrent knows (the info-hash aria2 < 1.37 computes for a hybrid
          torrent): libtorrent is handed the real one and the peer reads its alias back
        :returns: the path's counters; ``endpoint`` holds the listener's address
        """
        counters = PathCounters(torrent_id, "in", "", 0, endpoint="")
        real = frozenset(info_hashes)
        renames = {a: h for a, h in (aliases or {}).items() if h in real and a not in real}
        allowed = real | frozenset(renames)
        self._known.setdefault(torrent_id, set()).update(real)
        holder: list[tuple] = []

        async def on_connect(reader, writer):
            await self._forward_in(holder[0], counters, allowed, reader, writer, renames)

        server = await asyncio.start_server(
            self._owned(on_connect, counters), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        counters.endpoint = f"127.0.0.1:{port}"
        key = ("in", torrent_id, port)
        holder.append(key)
        self._servers[key] = server
        self._paths[key] = counters
        return counters

    def answer_to(self, torrent_id: str, alias: bytes, info_hash: bytes) -> None:
        """Let the inbound paths of ``torrent_id`` (those open and those to come) take a
        handshake naming ``alias``: libtorrent is handed ``info_hash``, and the peer reads
        ``alias`` back in libtorrent's handshake. For a share's alias
        (:func:`.core.share_alias`), which a download names before it has the .torrent."""
        self._aliases.setdefault(torrent_id, {})[alias] = info_hash

    async def _forward_in(self, key, counters, allowed, tor_reader, tor_writer,
                          renames=None) -> None:
        counters.connections += 1
        waiting = self._pending.get(key, 0)
        if waiting >= MAX_PENDING_PER_LISTENER or sum(self._pending.values()) >= MAX_PENDING:
            self._stats["pending_refused"] += 1
            counters.failures += 1
            counters.last_error = "too many connections waiting for a handshake"
            tor_writer.close()
            return
        self._pending[key] = waiting + 1
        try:
            prefix = await asyncio.wait_for(
                tor_reader.readexactly(HANDSHAKE_PREFIX), HANDSHAKE_TIMEOUT
            )
        except (asyncio.IncompleteReadError, TimeoutError, OSError):
            tor_writer.close()
            return
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]
        asked = handshake_info_hash(prefix)
        names = {**self._aliases.get(counters.torrent_id, {}), **(renames or {})}
        if asked not in allowed and asked not in names:
            self._refuse(counters, tor_writer, "handshake for another torrent")
            return
        alias = asked if asked in names else None
        try:
            lt_reader, lt_writer = await asyncio.open_connection(
                "127.0.0.1", self._engine_port, local_addr=(self._in_pool.next(), 0)
            )
        except OSError as exc:
            counters.failures += 1
            counters.last_error = str(exc)
            tor_writer.close()
            return
        lt_writer.write(prefix if alias is None else prefix[:-20] + names[alias])
        counters.down += len(prefix)
        await splice(counters, tor_reader, tor_writer, lt_reader, lt_writer,
                     lt_skip=HANDSHAKE, remote_skip=HANDSHAKE - HANDSHAKE_PREFIX, alias=alias,
                     stats=self._stats)

    def _refuse(self, counters: PathCounters, writer, reason: str) -> None:
        self._stats["wrong_torrent"] += 1
        counters.failures += 1
        counters.last_error = reason
        writer.close()

    # -- shared -------------------------------------------------------------------------
    def _owned(self, handler, path: PathCounters):
        async def run(reader, writer):
            task = asyncio.current_task()
            self._tasks[task] = path
            try:
                await handler(reader, writer)
            except asyncio.CancelledError:
                # our own close cancelled it. Ending quietly: Python 3.11's stream server
                # calls task.exception() on a cancelled handler task and logs the error
                writer.close()
            finally:
                self._tasks.pop(task, None)

        return run

    def endpoints(self) -> set[str]:
        """Every outbound endpoint host we hold (libtorrent may connect to these only)."""
        return {p.endpoint.rsplit(":", 1)[0] for p in self._paths.values() if p.direction == "out"}

    @staticmethod
    def is_inbound_source(host: str) -> bool:
        return in_network(host, INBOUND_NET)

    @staticmethod
    def is_outbound_endpoint(host: str) -> bool:
        return in_network(host, OUTBOUND_NET)

    def counters(self, torrent_id: str | None = None) -> list[PathCounters]:
        return [p for p in self._paths.values() if torrent_id in (None, p.torrent_id)]

    def usage(self) -> dict:
        """What the bridges hold against their caps, for the node to show.

        ``outbound_evicted`` counts idle endpoints closed to make room, ``outbound_refused``
        new endpoints refused because every endpoint under a cap was busy,
        ``pending_refused`` inbound connections closed because too many waited for their
        handshake, ``wrong_torrent`` connections whose handshake named a torrent their path
        does not serve, ``ext_rewritten``/``ext_dropped`` extension handshakes rewritten and
        extension messages dropped by the wire filters (of connections that ended),
        ``dialled_ahead`` paths whose first stream was dialled before libtorrent asked.
        """
        busiest = max((self._table.count(t) for t in {p.torrent_id for p in self._paths.values()
                                                       if p.direction == "out"}), default=0)
        return {
            "outbound_endpoints": len(self._table),
            "outbound_cap": self._table.total,
            "outbound_per_torrent_max": busiest,
            "outbound_per_torrent_cap": self._table.per_torrent,
            "outbound_evicted": self._table.evicted,
            "outbound_refused": self._table.refused,
            "pending_handshakes": sum(self._pending.values()),
            "pending_cap": MAX_PENDING,
            "pending_per_listener_cap": MAX_PENDING_PER_LISTENER,
            "pending_refused": self._stats["pending_refused"],
            "wrong_torrent": self._stats["wrong_torrent"],
            "ext_rewritten": self._stats["rewritten"],
            "ext_dropped": self._stats["dropped"],
            "dialled_ahead": self._stats["dialled_ahead"],
        }

    async def close_torrent(self, torrent_id: str) -> None:
        """Close a torrent's listeners (its connections end with them)."""
        for key in [k for k in self._servers if k[1] == torrent_id]:
            server = self._servers.pop(key)
            server.close()
        for key in [k for k in self._paths if k[1] == torrent_id]:
            del self._paths[key]
            self._table.remove(key)
        self._known.pop(torrent_id, None)
        self._aliases.pop(torrent_id, None)
        await self._cancel([t for t, p in self._tasks.items() if p.torrent_id == torrent_id])

    async def close_connections(self, path: PathCounters) -> int:
        """Close every connection of one path now; its listener stays open, so libtorrent
        (or the peer) may connect again. For a path whose peer fell silent.

        :returns: how many connections were closed
        """
        tasks = [t for t, p in self._tasks.items() if p is path]
        await self._cancel(tasks)
        return len(tasks)

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
        self.ahead.close()
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        await self._cancel(list(self._tasks))

