"""The test network's delaying proxy: it adds the delay each way and keeps every byte."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from onionshare_bt.testnet.delay import parse_pairs, serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def connect_once_listening(port: int, timeout: float = 5.0):
    """Connect to 127.0.0.1:``port`` as soon as something listens there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            assert loop.time() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.01)


async def test_round_trip_is_delayed_twice_and_bytes_arrive_in_order():
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    listen = free_port()
    stop = asyncio.Event()
    proxy = asyncio.create_task(serve({listen: target}, 0.05, stop))
    try:
        reader, writer = await connect_once_listening(listen)
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
        assert loop.time() - started >= 0.1  # 50 ms each way
        payload = os.urandom(3 * 1024 * 1024)
        writer.write(payload)
        assert await asyncio.wait_for(reader.readexactly(len(payload)), 30) == payload
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(proxy, 10)
        server.close()


def test_port_pairs_are_checked():
    assert parse_pairs(["30020=30000", "30021=30003"]) == {30020: 30000, 30021: 30003}
    with pytest.raises((SystemExit, ValueError)):
        parse_pairs(["nonsense"])
