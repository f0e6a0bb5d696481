"""The data path of one bridged connection: both directions copied through the wire filters.

A connection is a remote stream (through Tor) and libtorrent's loopback stream. Each
direction is a pump reading :data:`CHUNK` bytes at a time, counting them on the path's
:class:`~.core.PathCounters`, and writing what its :class:`~.core.WireFilter` lets through
(waiting for the writer to drain, so a slow side slows the other instead of filling
memory). A remote peer silent for :data:`REMOTE_IDLE_TIMEOUT` while we wait for it is
dead; once one direction ends, the other and both closes get :data:`LINGER` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib

from .core import ExtIds, HandshakeRename, PathCounters, WireError, WireFilter

__all__ = ["CHUNK", "LINGER", "REMOTE_IDLE_TIMEOUT", "splice"]

CHUNK = 64 * 1024
#: a spliced connection whose peer sends nothing for this long while we wait for it is
#: dead (libtorrent with the node's ``peer_timeout`` of 20 s sends a keep-alive after 10 s
#: of quiet); time spent waiting for libtorrent to read does not count
REMOTE_IDLE_TIMEOUT = 60.0
#: when one direction of a connection ends, the other direction, and the closing of both
#: sockets, get this long; then both are cut (a peer that reads nothing never lets a close
#: finish, and a pump waiting for it would never see libtorrent hang up)
LINGER = 5.0


async def splice(counters: PathCounters, remote_r: asyncio.StreamReader,
                 remote_w: asyncio.StreamWriter, lt_r: asyncio.StreamReader,
                 lt_w: asyncio.StreamWriter, *, lt_skip: int, remote_skip: int,
                 alias: bytes | None = None, stats: dict[str, int] | None = None) -> None:
    """Copy both ways through the wire filters until either side closes; count every
    byte read.

    :param lt_skip: bytes of libtorrent's handshake not read yet
    :param remote_skip: bytes of the remote peer's handshake not read yet
    :param alias: the info-hash the remote peer named (libtorrent's handshake is
      rewritten to it)
    :param stats: its ``rewritten`` and ``dropped`` grow by the extension handshakes the
      wire filters rewrote and the messages they dropped, when the connection ends
    """
    counters.active += 1
    ours = ExtIds()
    filters = (
        WireFilter(remote_skip, follow=True, ours=ours),  # remote -> libtorrent
        WireFilter(lt_skip, follow=False, ours=ours),  # libtorrent -> remote
    )

    rename = HandshakeRename(alias) if alias is not None else None

    async def pump(reader, writer, field, wire, idle):
        try:
            while True:
                async with asyncio.timeout(idle):  # None: no limit
                    data = await reader.read(CHUNK)
                if not data:
                    break
                setattr(counters, field, getattr(counters, field) + len(data))
                if rename is not None and field == "up":
                    data = rename.feed(data)
                out = wire.feed(data)
                if out:
                    writer.write(out)
                    await writer.drain()
        except WireError as exc:
            counters.last_error = str(exc)
        except TimeoutError:
            counters.last_error = f"nothing from the peer for {idle:.0f} s"
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    pumps = [
        asyncio.ensure_future(
            pump(remote_r, lt_w, "down", filters[0], REMOTE_IDLE_TIMEOUT)),
        asyncio.ensure_future(pump(lt_r, remote_w, "up", filters[1], None)),
    ]
    try:
        _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending, timeout=LINGER)
        await asyncio.wait([asyncio.ensure_future(_closed(w)) for w in (remote_w, lt_w)],
                           timeout=LINGER)
    finally:
        for task in pumps:
            task.cancel()
        for writer in (remote_w, lt_w):
            writer.transport.abort()
        await asyncio.gather(*pumps, return_exceptions=True)
        counters.active -= 1
        if stats is not None:
            stats["rewritten"] += sum(f.rewritten for f in filters)
            stats["dropped"] += sum(f.dropped for f in filters)


async def _closed(writer: asyncio.StreamWriter) -> None:
    """Wait until a closing writer's socket is closed (errors mean it is)."""
    with contextlib.suppress(OSError, RuntimeError):
        await writer.wait_closed()
