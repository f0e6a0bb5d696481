"""TorrentReader against a recording fake engine: deadlines, waits, verified reads."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from onionshare_bt.engine.status import Layout, LayoutFile
from onionshare_bt.errors import TorrentError
from onionshare_bt.stream import pieces as pieces_mod
from onionshare_bt.stream.core import Planner
from onionshare_bt.stream.pieces import Gone, TorrentReader

TID = "ab" * 20


class FakeEngine:
    """The engine's piece methods over files in ``root``, written piece by piece.

    A hybrid layout (each file padded to a piece). :meth:`deliver` writes a piece's bytes
    and marks it held, as a download does; ``calls`` records every deadline call.
    """

    def __init__(self, root: Path, files: dict[str, bytes], piece_length: int) -> None:
        self.root, self.piece_length = root, piece_length
        entries, blob, offset = [], b"", 0
        for path, data in files.items():
            entries.append(LayoutFile(path, offset, len(data), False))
            blob += data
            offset += len(data)
            pad = -offset % piece_length
            if pad:
                entries.append(LayoutFile(f".pad/{pad}", offset, pad, True))
                blob += bytes(pad)
                offset += pad
        self.blob = blob
        self._layout = Layout(piece_length, -(-offset // piece_length), offset, tuple(entries))
        self.held: set[int] = set()
        self.calls: list[tuple] = []
        self.priorities: dict[int, int] = {}
        self.cleared: list[int] = []
        self.piece_listeners: list = []
        self.present = True
        for entry in entries:
            if not entry.pad:
                (root / entry.path).parent.mkdir(parents=True, exist_ok=True)
                (root / entry.path).write_bytes(bytes(entry.size))  # sparse, as libtorrent

    # what the stream asks of the engine
    def has(self, tid):
        return self.present and tid == TID

    def layout(self, tid):
        return self._layout

    def have_piece(self, tid, piece):
        return piece in self.held

    def have_pieces(self, tid):
        return [p in self.held for p in range(self._layout.num_pieces)]

    def piece_hash(self, tid, piece):
        start = piece * self.piece_length
        return hashlib.sha1(self.blob[start:start + self._layout.piece_size(piece)]).digest()

    def set_piece_deadline(self, tid, piece, ms, priority=7):
        self.calls.append(("set", piece, ms))
        self.priorities[piece] = priority

    def reset_piece_deadline(self, tid, piece):
        self.calls.append(("reset", piece))
        self.priorities.pop(piece, None)

    def clear_piece_deadlines(self, tid, pieces=()):
        self.calls.append(("clear",))
        self.cleared = list(pieces)
        self.priorities.clear()

    def save_path(self, tid):
        return str(self.root)

    # what the test does
    def write(self, piece: int) -> None:
        start, end = piece * self.piece_length, (piece + 1) * self.piece_length
        for entry in self._layout.files:
            low, high = max(start, entry.offset), min(end, entry.offset + entry.size)
            if low < high and not entry.pad:
                with open(self.root / entry.path, "r+b") as f:
                    f.seek(low - entry.offset)
                    f.write(self.blob[low:high])

    def deliver(self, piece: int, write: bool = True) -> None:
        if write:
            self.write(piece)
        self.held.add(piece)
        for listener in self.piece_listeners:
            listener(TID, piece)


@pytest.fixture
def engine(tmp_path):
    data = {"t/a.opus": bytes(range(256)) * 40 + b"x", "t/b.bin": b"B" * 5000}
    return FakeEngine(tmp_path, data, 1024)


def test_the_fake_layout_is_hybrid(engine):
    files = engine.layout(TID).files
    assert [(f.offset, f.size, f.pad) for f in files] == [
        (0, 10241, False), (10241, 1023, True), (11264, 5000, False), (16264, 120, True)]


async def test_a_reader_sets_deadlines_and_the_last_to_go_clears_them(engine):
    reader = TorrentReader(engine, TID, Planner(window=4096, edge=1024, min_pieces=1))
    span = reader.spans[0]
    rid = reader.open(span, 0)
    assert {c[1] for c in engine.calls if c[0] == "set"} == {0, 1, 2, 3, 9, 10}  # 9, 10: tail
    engine.calls.clear()
    other = reader.open(reader.spans[2], 0)
    assert {c[1] for c in engine.calls if c[0] == "set"} >= {11, 12, 13, 14, 15}
    engine.calls.clear()
    reader.close(other)
    assert {c[1] for c in engine.calls if c[0] == "reset"} == {11, 12, 13, 14, 15}
    engine.calls.clear()
    engine.held.add(9)
    reader.close(rid)
    assert engine.calls == [("clear",)] and reader.deadlines == {}
    assert sorted(engine.cleared) == [0, 1, 2, 3, 10]  # back to the default priority


async def test_only_what_is_due_soon_keeps_the_top_priority(tmp_path):
    engine = FakeEngine(tmp_path, {"t/big.bin": bytes(2 * 1024 * 1024)}, 16 * 1024)
    reader = TorrentReader(engine, TID, Planner(window=1024 * 1024, edge=16 * 1024))
    reader.open(reader.spans[0], 0)
    top = sorted(p for p, prio in engine.priorities.items() if prio == 7)
    assert top == list(range(16)) + [127]  # 256 KiB from the start, and the tail
    assert {engine.priorities[p] for p in range(16, 64)} == {6}


async def test_a_moving_reader_replans_per_quarter_window_not_per_piece(engine):
    reader = TorrentReader(engine, TID, Planner(window=8192, edge=1024, min_pieces=1))
    engine.held.update(range(0, 11))
    rid = reader.open(reader.spans[0], 0)
    engine.calls.clear()
    reader.move(rid, 1024)  # one piece on: within a quarter window (2 pieces)
    assert engine.calls == []
    reader.move(rid, 2048)
    assert engine.calls == []  # every piece held: nothing to ask
    engine.held.clear()
    reader.move(rid, 9000)
    assert ("set", 8, 0) in engine.calls


async def test_wait_returns_once_the_piece_arrives(engine):
    reader = TorrentReader(engine, TID)
    engine.piece_listeners.append(lambda tid, p: reader.arrived(p))
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, engine.deliver, 3)
    started = loop.time()
    await reader.wait(3, lambda: True)
    assert loop.time() - started < 0.5  # woken by the alert, not the 1 s poll


async def test_wait_polls_when_no_alert_comes(engine, monkeypatch):
    monkeypatch.setattr(pieces_mod, "POLL", 0.05)
    reader = TorrentReader(engine, TID)
    asyncio.get_running_loop().call_later(0.1, engine.held.add, 2)  # no listener called
    await asyncio.wait_for(reader.wait(2, lambda: True), 2)


async def test_wait_ends_when_the_client_or_the_torrent_goes(engine, monkeypatch):
    monkeypatch.setattr(pieces_mod, "POLL", 0.02)
    reader = TorrentReader(engine, TID)
    with pytest.raises(Gone):
        await reader.wait(1, lambda: False)
    gone = asyncio.get_running_loop().call_later(0.05, setattr, engine, "present", False)
    with pytest.raises(Gone):
        await asyncio.wait_for(reader.wait(1, lambda: True), 2)
    gone.cancel()
    engine.present = True
    with pytest.raises(TimeoutError):
        await reader.wait(1, lambda: True, timeout=0.05)


async def test_read_returns_the_files_bytes_including_a_padded_last_piece(engine):
    reader = TorrentReader(engine, TID)
    for piece in range(engine.layout(TID).num_pieces):
        engine.deliver(piece)
    a, b = reader.spans[0], reader.spans[2]
    got = b"".join([await reader.read(a, p) for p in a.pieces(0, a.size - 1)])
    assert got == engine.blob[:a.size]
    got = b"".join([await reader.read(b, p) for p in b.pieces(0, b.size - 1)])
    assert got == b"B" * 5000
    assert reader.verified == set(range(engine.layout(TID).num_pieces))


async def test_read_waits_for_bytes_still_on_their_way_to_disk(engine, monkeypatch):
    monkeypatch.setattr(pieces_mod, "RETRY", 0.02)
    reader = TorrentReader(engine, TID)
    engine.deliver(4, write=False)  # libtorrent says verified; the file holds zeros still
    asyncio.get_running_loop().call_later(0.1, engine.write, 4)
    span = reader.spans[0]
    assert await reader.read(span, 4) == engine.blob[4096:5120]
    assert 4 in reader.verified


async def test_read_refuses_bytes_that_never_hash_right(engine, monkeypatch):
    monkeypatch.setattr(pieces_mod, "RETRY", 0.0)
    monkeypatch.setattr(pieces_mod, "READ_ATTEMPTS", 3)
    reader = TorrentReader(engine, TID)
    engine.deliver(5, write=False)
    with pytest.raises(TorrentError, match="does not match its hash"):
        await reader.read(reader.spans[0], 5)
    assert 5 not in reader.verified


async def test_read_follows_the_files_when_they_move(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(pieces_mod, "RETRY", 0.02)
    reader = TorrentReader(engine, TID)
    for piece in range(3):
        engine.deliver(piece)
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "t").rename(target / "t")  # the node moves the download into place
    asyncio.get_running_loop().call_later(0.1, setattr, engine, "root", target)
    assert await reader.read(reader.spans[0], 1) == engine.blob[1024:2048]


async def test_read_never_follows_a_symlinked_file(engine, tmp_path):
    reader = TorrentReader(engine, TID)
    engine.deliver(11)
    path = tmp_path / "t" / "b.bin"
    secret = tmp_path / "secret"
    secret.write_bytes(b"B" * 5000)
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(OSError):
        await reader.read(reader.spans[2], 11)
