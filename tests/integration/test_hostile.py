"""Hostile input against the real engine: malicious .torrent files and corrupt peers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from pathlib import Path

import bencodepy
import pytest

from onionshare_bt.engine.metainfo import create, parse
from onionshare_bt.errors import MalformedReply

from .test_loopback_swarm import digest_tree, make_tree, wait_for

PIECE = 16 * 1024


def v1_torrent(name: bytes, files: list[tuple[list[bytes], bytes]]) -> tuple[bytes, bytes]:
    """A hand-made v1 torrent (what a malicious share could serve) and its payload."""
    payload = b"".join(data for _, data in files)
    pieces = b"".join(
        hashlib.sha1(payload[i : i + PIECE]).digest() for i in range(0, len(payload), PIECE)
    )
    info = {
        b"name": name, b"piece length": PIECE, b"pieces": pieces,
        b"files": [{b"length": len(data), b"path": path} for path, data in files],
    }
    return bencodepy.encode({b"info": info}), payload


async def test_path_traversal_names_stay_inside_the_target(tmp_path, engines):
    seeder, leecher = engines
    evil = [
        ([b"..", b"..", b"escaped.txt"], secrets.token_bytes(5000)),
        ([b"/etc", b"passwd"], secrets.token_bytes(3000)),
        ([b"a\x00b", b"nul.txt"], secrets.token_bytes(2000)),
        ([b"ok", b"fine.txt"], secrets.token_bytes(40000)),
    ]
    data, _ = v1_torrent(b"../../outside", evil)
    meta = parse(data)
    for entry in meta.files:
        parts = Path(entry.path).parts
        assert not Path(entry.path).is_absolute() and ".." not in parts
        assert "\x00" not in entry.path
    # the seeder holds the files under the names libtorrent sanitised them to
    seed_dir = tmp_path / "seed"
    for entry, (_, content) in zip(meta.files, evil):
        target = seed_dir / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    seeder.add(meta, seed_dir, seed=True)
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    leecher.add(meta, dest)
    leecher.connect(meta.id, ("127.0.0.1", seeder.listen_port))
    await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, timeout=60)
    written = {p for p in (tmp_path / "box").rglob("*") if p.is_file()}
    assert written and all(dest in p.parents for p in written)
    assert not (tmp_path / "escaped.txt").exists()
    assert sorted(p.stat().st_size for p in written) == sorted(len(c) for _, c in evil)


@pytest.mark.parametrize("data", [
    b"",
    b"not bencode",
    b"d4:infoi5ee",
    b"l" * 100_000 + b"e" * 100_000,  # deep nesting
    bencodepy.encode({b"info": {b"name": b"x", b"piece length": PIECE, b"length": 10**18,
                                b"pieces": b"\0" * 20}}),  # absurd size, too few pieces
    bencodepy.encode({b"info": {b"name": b"x", b"piece length": 0, b"length": 10,
                                b"pieces": b"\0" * 20}}),
])
def test_malformed_torrents_are_refused(data):
    with pytest.raises(MalformedReply):
        parse(data)


def test_oversized_torrent_is_refused_before_parsing():
    with pytest.raises(MalformedReply, match="too large"):
        parse(b"d" + b"0" * (33 * 1024 * 1024))


class EvilSeeder:
    """A peer that claims every piece and answers every request with garbage."""

    def __init__(self, info_hash: bytes, num_pieces: int) -> None:
        self.info_hash, self.num_pieces = info_hash, num_pieces
        self.sent_blocks = 0
        self.closed = asyncio.Event()

    async def serve(self, reader, writer):
        try:
            await reader.readexactly(68)
            writer.write(b"\x13BitTorrent protocol" + b"\0" * 8 + self.info_hash
                         + b"-EV0001-" + os.urandom(12))
            bits = bytearray(b"\xff" * ((self.num_pieces + 7) // 8))
            if self.num_pieces % 8:
                bits[-1] = (0xFF << (8 - self.num_pieces % 8)) & 0xFF
            self._msg(writer, 5, bytes(bits))
            self._msg(writer, 1)  # unchoke
            while True:
                length = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(length) if length else b""
                if body[:1] == b"\x06":  # request: index, begin, length
                    index, begin, size = (int.from_bytes(body[i:i + 4], "big") for i in (1, 5, 9))
                    self._msg(writer, 7, body[1:9] + os.urandom(size))
                    self.sent_blocks += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            writer.close()

    @staticmethod
    def _msg(writer, msg_id: int, payload: bytes = b"") -> None:
        writer.write((len(payload) + 1).to_bytes(4, "big") + bytes([msg_id]) + payload)


async def test_corrupt_peer_is_caught_and_the_file_is_still_right(tmp_path, engines, events):
    leecher, good = engines  # the leecher records its events
    src = make_tree(tmp_path / "src")
    meta = await asyncio.to_thread(create, src)
    good.add(meta, src.parent, seed=True)
    evil = EvilSeeder(bytes.fromhex(meta.id), meta.num_pieces)
    server = await asyncio.start_server(evil.serve, "127.0.0.1", 0)
    try:
        dest = tmp_path / "dest"
        dest.mkdir()
        leecher.add(meta, dest)
        leecher.connect(meta.id, ("127.0.0.1", server.sockets[0].getsockname()[1]))
        handle = leecher.session.get_torrents()[0]
        await wait_for(lambda: handle.status().total_failed_bytes > 0, timeout=60)
        leecher.connect(meta.id, ("127.0.0.1", good.listen_port))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, timeout=90)
        # progress reaches 1.0 once every piece passed its hash check, which libtorrent may
        # do before its disk thread has written the good blocks over the liar's (CI once
        # read the liar's bytes here). The node calls a download complete only once it has
        # moved it to its target, a job that waits for every write: so does this test
        await wait_for(lambda: ("finished", meta.id) in {(e.kind, e.torrent_id) for e in events},
                       10)
        leecher.move(meta.id, tmp_path / "final")
        await wait_for(lambda: ("moved", meta.id) in {(e.kind, e.torrent_id) for e in events}, 10)
        assert digest_tree(tmp_path / "final" / src.name) == digest_tree(src)
        assert evil.sent_blocks > 0
        await asyncio.wait_for(evil.closed.wait(), 30)  # the liar was cut off
    finally:
        server.close()
