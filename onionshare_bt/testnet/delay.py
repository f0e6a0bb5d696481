"""Delaying TCP proxies in front of the test network's ORPorts (opt-in latency).

This kernel has no netem, so latency between tor processes comes from a proxy: every router
advertises a proxy port (``ORPort <proxy> NoListen``) and listens on its real ORPort
(``ORPort <real> NoAdvertise``); each connection to the proxy is forwarded to the real port
with every chunk held back for ``delay`` seconds in each direction. Each tor-to-tor link
(client to guard, relay to relay) therefore crosses exactly one proxy: one-way latency
``+delay``, round trip ``+2 * delay``. Bandwidth is not limited; chunks keep their order.

Run as one detached process for the whole network::

    python -m onionshare_bt.testnet.delay --delay-ms 20 --tag ROOT \\
        30020=30000 30021=30003 ...

(``listen=target`` port pairs on 127.0.0.1; ``--tag`` only marks the process as the
network's own, so ``Testnet.down`` can find it.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket

__all__ = ["DelayLine", "main", "parse_pairs", "serve"]

HOST = "127.0.0.1"
CHUNK = 64 * 1024
#: bytes held back per direction before we stop reading (TCP flow control takes over)
MAX_QUEUED = 8 * 1024 * 1024


class DelayLine:
    """One direction of one connection: bytes come out ``delay`` seconds after they went in.

    :param delay: seconds each chunk is held back
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._queued = 0
        self._room = asyncio.Event()
        self._room.set()

    async def pump_in(self, reader: asyncio.StreamReader) -> None:
        """Read until EOF, stamping each chunk with its due time; an empty chunk ends it."""
        loop = asyncio.get_running_loop()
        try:
            while data := await reader.read(CHUNK):
                self._queue.put_nowait((loop.time() + self.delay, data))
                self._queued += len(data)
                if self._queued > MAX_QUEUED:
                    self._room.clear()
                    await self._room.wait()
        except (ConnectionError, OSError):
            pass
        finally:
            self._queue.put_nowait((loop.time() + self.delay, b""))

    async def pump_out(self, writer: asyncio.StreamWriter) -> None:
        """Write each chunk when it is due; half-close at the end."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self._queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                self._queued -= len(data)
                if self._queued <= MAX_QUEUED // 2:
                    self._room.set()
                await writer.drain()
        except (ConnectionError, OSError):
            pass


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int,
                 delay: float) -> None:
    """Forward one accepted connection to ``target`` through two delay lines."""
    try:
        up_reader, up_writer = await asyncio.open_connection(HOST, target)
    except OSError:
        writer.close()
        return
    for sock in (writer.get_extra_info("socket"), up_writer.get_extra_info("socket")):
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    there, back = DelayLine(delay), DelayLine(delay)
    try:
        await asyncio.gather(there.pump_in(reader), there.pump_out(up_writer),
                             back.pump_in(up_reader), back.pump_out(writer))
    finally:
        for w in (writer, up_writer):
            with contextlib.suppress(OSError, RuntimeError):
                w.close()


async def serve(pairs: dict[int, int], delay: float, stop: asyncio.Event) -> None:
    """Listen on every ``listen`` port and forward to its target until **stop** is set.

    :param pairs: listen port -> target port, both on 127.0.0.1
    :param delay: one-way delay in seconds
    :param stop: set it to close the listeners and end
    """
    tasks: set[asyncio.Task] = set()

    def handler(target: int):
        async def on_connect(reader, writer):
            task = asyncio.current_task()
            tasks.add(task)
            try:
                await _relay(reader, writer, target, delay)
            finally:
                tasks.discard(task)
        return on_connect

    servers = [await asyncio.start_server(handler(t), HOST, p, reuse_address=True)
               for p, t in pairs.items()]
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(list(tasks), timeout=2)


def parse_pairs(items: list[str]) -> dict[int, int]:
    """Parse ``listen=target`` port pairs.

    :param items: e.g. ``["30020=30000"]``
    :returns: listen port -> target port
    :raises ValueError: on a malformed pair
    """
    pairs = {}
    for item in items:
        listen, sep, target = item.partition("=")
        if not sep:
            raise ValueError(f"expected LISTEN=TARGET, not {item!r}")
        pairs[int(listen)] = int(target)
    return pairs


async def _run(pairs: dict[int, int], delay: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(pairs, delay, stop)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m onionshare_bt.testnet.delay")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--tag", default="", help="marks the process (the testnet's root)")
    parser.add_argument("pairs", nargs="+", metavar="LISTEN=TARGET")
    args = parser.parse_args(argv)
    asyncio.run(_run(parse_pairs(args.pairs), args.delay_ms / 1000.0))


if __name__ == "__main__":
    main()
