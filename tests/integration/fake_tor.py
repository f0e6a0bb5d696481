"""A stand-in for tor's SOCKS port on 127.0.0.1: maps onion names to loopback servers.

``TrackerClient`` dials ``<onion>.onion:80`` through SOCKS5 with remote name resolution,
exactly as it does through tor; this proxy answers the CONNECT by opening a connection to
the loopback port registered for that name (an unknown name gets tor's "descriptor not
found" reply, 0xF0). It records every name asked for, so a test can tell that a redirect
target was never dialled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import struct


class FakeTor:
    """A SOCKS5 server (no auth, or any username and password as tor takes them for circuit
    isolation; CONNECT by domain name only) for loopback tests."""

    def __init__(self) -> None:
        self.routes: dict[str, int] = {}  # "<onion>.onion" -> loopback port
        self.dialled: list[str] = []
        self.usernames: list[str] = []  # the SOCKS username of each stream that sent one
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> FakeTor:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._handshake(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        finally:
            self._tasks.discard(task)

    async def _handshake(self, reader, writer) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if 2 in methods:  # as tor does: username/password when offered (circuit isolation)
            writer.write(b"\x05\x02")
            _, length = await reader.readexactly(2)
            self.usernames.append((await reader.readexactly(length)).decode("ascii", "replace"))
            (length,) = await reader.readexactly(1)
            await reader.readexactly(length)  # the password
            writer.write(b"\x01\x00")
        else:
            writer.write(b"\x05\x00")
        _, command, _, kind = await reader.readexactly(4)
        if kind != 3 or command != 1:  # only CONNECT to a name, as tor gets from obt
            writer.write(b"\x05\x08\x00\x01" + bytes(6))
            writer.close()
            return
        length = (await reader.readexactly(1))[0]
        name = (await reader.readexactly(length)).decode("ascii")
        (port,) = struct.unpack(">H", await reader.readexactly(2))
        self.dialled.append(name)
        target = self.routes.get(name)
        if target is None or port != 80:
            writer.write(b"\x05\xf0\x00\x01" + bytes(6))
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class FakeTorClient:
    """The node's tor as :class:`onionshare_bt.tor.client.TorClient` looks to the node, for
    a node that runs without Tor: its onion services are routes of a :class:`FakeTor` SOCKS
    port (``<address>.onion:80`` reaches what the service's virtual port 80 maps to), with
    real ``ED25519-V3`` keys whose public halves give the addresses.
    """

    pid = 0
    renewed = 0  # no descriptor is ever lost here (tor/rescue.py)
    uploads_behind = 0  # nor is an upload left unanswered

    def __init__(self, socks: FakeTor) -> None:
        self.socks = socks
        self.published: dict[str, dict] = {}
        self.closed = False
        #: how each stream to an onion went, as the node told it
        self.streams: list[tuple[str, str]] = []

    @property
    def socks_address(self) -> tuple[str, int]:
        return self.socks.address

    def is_alive(self) -> bool:
        return not self.closed

    def reached(self, onion: str) -> None:  # the real one remembers it (tor/reach.py)
        self.streams.append(("reached", onion))

    async def failed(self, onion: str) -> None:
        self.streams.append(("failed", onion))

    async def close(self) -> None:
        self.closed = True

    async def bootstrap_status(self) -> dict:
        return {"progress": 100, "summary": "Done", "tag": "done", "warning": None}

    async def relay_flags(self, fingerprint: str) -> list[str] | None:
        return None

    def publication(self, addresses) -> dict[str, int]:
        addresses = list(addresses)
        published = sum(1 for a in addresses if a in self.published)
        return {"published": published, "uploading": 0,
                "unstored": len(addresses) - published, "queued": 0}

    async def add_onion(self, ports, key=None, *, await_publication=True, timeout=60.0):
        from onionshare_bt.trust.identity import SigningKey, expand_seed

        if key is None:
            key = "ED25519-V3:" + base64.b64encode(expand_seed(secrets.token_bytes(32))).decode()
        address = SigningKey.from_tor(key).onion
        self.published[address] = dict(ports)
        if 80 in ports:
            self.socks.routes[f"{address}.onion"] = ports[80][1]
        return address, key

    async def wait_published(self, address: str, timeout: float) -> bool:
        return address in self.published

    def restore_onion(self, address: str, ports, key: str) -> None:
        self.published[address] = dict(ports)
        if 80 in ports:
            self.socks.routes[f"{address}.onion"] = ports[80][1]

    async def remove_onion(self, address: str) -> None:
        address = address.removesuffix(".onion")
        self.published.pop(address, None)
        self.socks.routes.pop(f"{address}.onion", None)
