"""The limit: raw TCP through N onion services, with no BitTorrent and no bridges.

A trivial sender behind N fresh onion services (one per stream, hosted by one tor) and a
trivial receiver dialling them through another tor's SOCKS port. The receiver opens all N
streams first, then sends one byte on each; each sender answers with its share of the total
(``total / N`` bytes) and closes. The rate is the total over the time from "go" to the last
byte, so circuit set-up is not counted (as for obt, whose rate starts at the first payload
byte).
"""

from __future__ import annotations

import asyncio
import os

from onionshare_bt.tor import socks
from onionshare_bt.tor.client import TorClient

from .procs import BenchError, machine_busy_s, machine_cpu

CONNECT_TIMEOUT = 120.0
#: seconds for one SOCKS attempt (a stuck rendezvous is retried, not waited out)
ATTEMPT_TIMEOUT = 30.0
BLOCK = os.urandom(1 << 20)


async def _sender(count: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Wait for the go byte, write **count** bytes, close."""
    try:
        await reader.readexactly(1)
        left = count
        while left > 0:
            chunk = BLOCK[: min(left, len(BLOCK))]
            writer.write(chunk)
            left -= len(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _receive(reader: asyncio.StreamReader) -> int:
    got = 0
    while data := await reader.read(256 * 1024):
        got += len(data)
    return got


async def _publish(server: TorClient, count: int) -> tuple[asyncio.Server, str]:
    srv = await asyncio.start_server(lambda r, w: _sender(count, r, w), "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    address, _key = await server.add_onion({80: ("127.0.0.1", port)})
    return srv, address


class ConnectFailed(BenchError):
    """A stream could not be opened through Tor."""


async def _connect_all(client: TorClient, addresses: list[str]) -> list:
    """Open one stream to each onion; close them all if any fails."""
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(
        socks.open_connection(client.socks_address, address, 80, timeout=ATTEMPT_TIMEOUT,
                              retry_until=loop.time() + CONNECT_TIMEOUT)
        for address in addresses), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for result in results:
            if not isinstance(result, BaseException):
                result[1].close()
        raise ConnectFailed(f"cannot open a raw stream: {failed[0]}")
    return results


async def measure(server: TorClient, client: TorClient, streams: int, total: int,
                  timeout: float) -> dict:
    """Send **total** bytes split over **streams** fresh onion services.

    :returns: ``rate`` (bytes/s, total), ``seconds``, ``per_stream`` (bytes/s each),
      ``connect_s`` (publish to all streams open)
    """
    loop = asyncio.get_running_loop()
    count = total // streams
    started = loop.time()
    published = await asyncio.gather(*(_publish(server, count) for _ in range(streams)))
    try:
        conns = await _connect_all(client, [address for _srv, address in published])
        connect_s = loop.time() - started
        t0, busy0 = loop.time(), machine_busy_s()
        for _reader, writer in conns:
            writer.write(b"g")

        async def one(reader):
            got = await _receive(reader)
            return got, loop.time() - t0

        results = await asyncio.wait_for(asyncio.gather(*(one(r) for r, _w in conns)), timeout)
        busy1 = machine_busy_s()
        for _reader, writer in conns:
            writer.close()
    finally:
        for srv, address in published:
            srv.close()
            await server.remove_onion(address)
    seconds = max(t for _got, t in results)
    got = sum(g for g, _t in results)
    if got != count * streams:
        raise BenchError(f"raw transfer short: {got} of {count * streams} bytes")
    return {"rate": got / seconds, "seconds": seconds, "connect_s": connect_s,
            "per_stream": [g / t for g, t in results],
            **machine_cpu(busy0, busy1, seconds, got)}
