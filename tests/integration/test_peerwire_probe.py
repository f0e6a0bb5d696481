"""What a remote peer sees of our libtorrent through the bridges, probed with a raw client.

Real libtorrent sessions, real bridges, no Tor: the outbound bridges' dial connects straight
to a loopback server. The raw peer here speaks just enough BitTorrent (handshake with the
extension bit, BEP 10 extension handshake, ``ut_holepunch``) to record what it is sent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import bencodepy
import libtorrent as lt
import pytest

from onionshare_bt.engine.metainfo import Metainfo, parse
from onionshare_bt.engine.session import Engine
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.onion import onion_from_pubkey

#: reserved bytes: extension protocol (BEP 10) and fast extension (BEP 6)
RESERVED = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])
#: what may be equal between two shares of one node: product constants only
PRODUCT_CONSTANTS = {"pstr", "reserved", "peer_id_prefix", "ext.m", "ext.reqq",
                     "ext.upload_only"}
LINKING_KEYS = (b"yourip", b"p", b"v", b"ipv4", b"ipv6", b"complete_ago")
#: libtorrent 2.1's own id for incoming holepunch messages (aux_/bt_peer_connection.hpp)
LT_HOLEPUNCH_ID = 4


async def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(step)


def make_torrent(folder: Path, name: str, size: int, extra: dict | None = None) -> Metainfo:
    """A hybrid v1+v2 torrent of one random file made here (``extra``: top-level keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(secrets.token_bytes(size))
    creator = lt.create_torrent(lt.list_files(str(folder / name)))
    lt.set_piece_hashes(creator, str(folder))
    entry = creator.generate()
    entry.pop(b"creation date", None)
    entry.pop(b"created by", None)
    entry.update(extra or {})
    return parse(lt.bencode(entry))


def fake_onion() -> str:
    return onion_from_pubkey(secrets.token_bytes(32))


async def started(*engines: Engine) -> tuple[Engine, ...]:
    for engine in engines:
        await engine.start()
    return engines


def listen_port(path) -> int:
    return int(path.endpoint.rsplit(":", 1)[1])


class RawPeer:
    """One raw BitTorrent connection: handshakes and BEP 10 messages, nothing more."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.peer_id = b"-RP0001-" + os.urandom(12)

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawPeer:
        return cls(*await asyncio.open_connection(host, port))

    def send_handshake(self, info_hash: bytes) -> None:
        self.writer.write(b"\x13BitTorrent protocol" + RESERVED + info_hash + self.peer_id)

    async def read_handshake(self) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(68), 20)

    def send_ext(self, ext_id: int, payload: bytes | dict) -> None:
        if isinstance(payload, dict):
            payload = bencodepy.encode(payload)
        body = bytes([20, ext_id]) + payload
        self.writer.write(len(body).to_bytes(4, "big") + body)

    def send_holepunch_connect(self, host: str, port: int) -> None:
        addr = bytes(int(x) for x in host.split("."))
        self.send_ext(LT_HOLEPUNCH_ID, bytes([1, 0]) + addr + port.to_bytes(2, "big"))

    async def read_message(self) -> bytes:
        length = int.from_bytes(await self.reader.readexactly(4), "big")
        return await self.reader.readexactly(length) if length else b""

    async def read_ext_handshake(self, timeout: float = 20) -> dict:
        async def until():
            while True:
                message = await self.read_message()
                if message[:2] == b"\x14\x00":
                    return bencodepy.decode(message[2:])

        return await asyncio.wait_for(until(), timeout)

    def close(self) -> None:
        self.writer.close()


def hostile_ext_handshake() -> dict:
    """What a hostile peer advertises: holepunch, a listen port, our 'address'."""
    return {b"m": {b"ut_holepunch": 9, b"ut_metadata": 3, b"ut_pex": 1, b"lt_donthave": 7},
            b"p": 22, b"yourip": bytes([127, 0, 0, 1]), b"v": b"probe 1.0", b"reqq": 250}


def fields(handshake: bytes, ext: dict) -> dict:
    """One probe as named values, to compare two probes field by field."""
    out = {"pstr": handshake[:20], "reserved": handshake[20:28],
           "peer_id_prefix": handshake[48:56], "peer_id": handshake[48:68]}
    out.update({f"ext.{k.decode()}": repr(v) for k, v in ext.items()})
    return out


async def probe_inbound(bridges_path, info_hash: bytes) -> tuple[bytes, dict]:
    """Reach a share through its inbound listener; what its libtorrent says."""
    peer = await RawPeer.connect(listen_port(bridges_path))
    try:
        peer.send_handshake(info_hash)
        peer.send_ext(0, hostile_ext_handshake())
        handshake = await peer.read_handshake()
        return handshake, await peer.read_ext_handshake()
    finally:
        peer.close()


class ProbeServer:
    """Stands in for a remote onion: records what our libtorrent says when it dials out."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, dict]] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        peer = RawPeer(reader, writer)
        try:
            handshake = await peer.read_handshake()
            peer.send_handshake(handshake[28:48])
            peer.send_ext(0, hostile_ext_handshake())
            self.seen.append((handshake, await peer.read_ext_handshake()))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            peer.close()

    def close(self) -> None:
        self.server.close()


def assert_clean(ext: dict) -> None:
    for key in LINKING_KEYS:
        assert key not in ext, key
    assert set(ext) <= {b"m", b"metadata_size", b"reqq", b"upload_only"}, ext
    assert set(ext.get(b"m", {})) <= {b"ut_metadata", b"upload_only"}, ext


async def test_peer_wire_carries_nothing_constant_per_node(tmp_path):
    node, other = await started(Engine(bridged=True), Engine(bridged=True))
    probe = ProbeServer()
    probe_port = await probe.start()
    dialled = []

    async def dial(onion, port, torrent_id, lane=0):
        dialled.append((onion, port, torrent_id))
        return await asyncio.open_connection("127.0.0.1", probe_port)

    bridges = Bridges(dial, node.listen_port, info_hashes=node.info_hashes)
    try:
        shares = [make_torrent(tmp_path / f"s{i}", f"f{i}.bin", 200_000 * (i + 1)) for i in (0, 1)]
        paths = []
        for meta in shares:
            node.add(meta, tmp_path / meta.name.replace(".bin", "").replace("f", "s"), seed=True)
            paths.append(await bridges.inbound(meta.id, meta.info_hashes))
        # libtorrent hangs up on a peer of a torrent still checking its files (seen once
        # on a busy machine: 0 bytes of the handshake); a remote peer would try again
        await wait_for(lambda: all(node.status(m.id).state == "seeding" for m in shares), 20)
        inbound = [await probe_inbound(paths[i], shares[i].info_hashes[0]) for i in (0, 1, 0)]

        downloads = [make_torrent(tmp_path / f"d{i}", f"g{i}.bin", 100_000 * (i + 1))
                     for i in (0, 1)]
        for meta in downloads:
            (tmp_path / f"dest-{meta.id}").mkdir()
            node.add(meta, tmp_path / f"dest-{meta.id}")
            node.connect(meta.id, await bridges.outbound(meta.id, fake_onion(), 6881))
        await wait_for(lambda: len(probe.seen) == 2, 20)
        outbound = probe.seen
    finally:
        probe.close()
        await bridges.close()
        for engine in (node, other):
            await engine.close()

    every = inbound + outbound
    for handshake, ext in every:
        assert_clean(ext)
        assert handshake[48:56] == b"-XX0000-"  # a product constant, no version
    peer_ids = [h[48:68] for h, _ in every]
    assert len(set(peer_ids)) == len(peer_ids)  # random per connection
    assert {t for _, _, t in dialled} == {m.id for m in downloads}  # dial knows the torrent
    # two shares of one node, two downloads of one node: equal only in product constants
    for a, b in ((inbound[0], inbound[1]), (outbound[0], outbound[1]),
                 (inbound[0], outbound[0])):
        fa, fb = fields(*a), fields(*b)
        equal = {k for k in fa if fa[k] == fb.get(k)}
        assert equal <= PRODUCT_CONSTANTS, equal - PRODUCT_CONSTANTS
    assert fields(*inbound[0])["ext.metadata_size"] != fields(*inbound[1])["ext.metadata_size"]


class Target:
    """A listener a hostile peer would like our libtorrent to dial: counts connections."""

    def __init__(self) -> None:
        self.hits = 0

    async def start(self, host: str) -> tuple[str, int]:
        async def hit(reader, writer):
            self.hits += 1
            writer.close()

        self.server = await asyncio.start_server(hit, host, 0)
        return host, self.server.sockets[0].getsockname()[1]


async def punch(peer: RawPeer, info_hash: bytes, targets: list[tuple[str, int]]) -> None:
    """Handshake, advertise ut_holepunch (twice), and ask for a connection to each target."""
    peer.send_handshake(info_hash)
    peer.send_ext(0, hostile_ext_handshake())
    await peer.read_handshake()
    await peer.read_ext_handshake()
    for host, port in targets:
        peer.send_holepunch_connect(host, port)
    peer.send_ext(0, {b"m": {b"ut_holepunch": 4}, b"p": targets[0][1]})  # advertise it again
    for host, port in targets:
        peer.send_holepunch_connect(host, port)
    await peer.writer.drain()


@pytest.mark.parametrize("through_bridge", [False, True], ids=["control", "bridged"])
async def test_holepunch_connect_reaches_no_listener(tmp_path, through_bridge):
    """A peer's ut_holepunch ``connect`` names loopback listeners; none is dialled.

    The control (no bridge, libtorrent's loopback-wide filter) shows the same messages do
    make a plain session dial 127.0.0.1, so the bridged run could see a dial if one happened.
    """
    (engine,) = await started(Engine(bridged=through_bridge))
    bridges = Bridges(None, engine.listen_port)
    targets = [Target() for _ in range(3)]
    try:
        addresses = [await targets[0].start("127.0.0.1")]
        if through_bridge:  # inside the ranges the bridged filter admits
            addresses += [await targets[1].start("127.100.7.9"),
                          await targets[2].start("127.1.250.3")]
        meta = make_torrent(tmp_path / "src", "f.bin", 300_000)
        engine.add(meta, tmp_path / "src", seed=True)
        if through_bridge:
            path = await bridges.inbound(meta.id, meta.info_hashes)
            peer = await RawPeer.connect(listen_port(path))
        else:
            peer = await RawPeer.connect(engine.listen_port)
        await punch(peer, meta.info_hashes[0], addresses)
        if through_bridge:
            await asyncio.sleep(5)  # a bounded wait: a dial comes within milliseconds
            assert [t.hits for t in targets] == [0, 0, 0]
            peer.close()
            await wait_for(lambda: bridges.usage()["ext_dropped"] >= 4, 10)
            assert bridges.usage()["ext_rewritten"] >= 3
        else:
            await wait_for(lambda: targets[0].hits > 0, 15)
            peer.close()
    finally:
        await bridges.close()
        await engine.close()
        for target in targets:
            if hasattr(target, "server"):
                target.server.close()
