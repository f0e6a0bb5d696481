"""One torrent's readers, against the engine: piece deadlines, waits, verified reads.

:class:`TorrentReader` applies the :class:`~.core.Planner`'s wishes to libtorrent as piece
deadlines (``set_piece_deadline``; ``reset_piece_deadline`` for what nobody wants any more,
``clear_piece_deadlines`` once the last reader is gone; libtorrent would leave such pieces
at its lowest priority, the engine gives them the default back; within a window only what
is due soon keeps the top priority, see :func:`~.core.priority`), waits for a piece until
``have_piece`` holds (woken by the engine's piece-finished alerts, polling as a backstop),
and only then reads the piece from the file on disk. The first read of each piece checks its
v1 SHA-1 against the torrent's metadata: libtorrent may report a piece verified before its
last block reached the file, and bytes on their way are never served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import TorrentError
from .core import ASSUMED_RATE, Planner, Slice, Span, piece_slices, priority, step_ms

log = logging.getLogger(__name__)

#: seconds between checks of ``have_piece`` while a reader waits (alerts wake it sooner)
POLL = 1.0
#: seconds a reader waits for one piece before it gives up
PIECE_TIMEOUT = 600.0
#: tries (``RETRY`` seconds apart) to read a piece whose bytes on disk do not hash right yet
#: (libtorrent checks a piece's hash from memory; its disk threads may write it later on a
#: busy machine) or whose file is being moved from the staging folder to the target
READ_ATTEMPTS = 300
RETRY = 0.1


class Gone(Exception):
    """The reader has nothing more to wait for: its client left or the torrent was removed."""


class TorrentReader:
    """The readers of one torrent of ``engine``.

    :param engine: an :class:`~onionshare_bt.engine.session.Engine` (or a fake with its
        piece methods)
    """

    def __init__(self, engine, torrent_id: str, planner: Planner | None = None) -> None:
        self.engine = engine
        self.torrent_id = torrent_id
        self.layout = engine.layout(torrent_id)
        self.planner = planner or Planner()
        self._files = [(f.offset, f.size, f.pad) for f in self.layout.files]
        self.spans = {
            i: Span(i, f.path, f.offset, f.size, self.layout.piece_length)
            for i, f in enumerate(self.layout.files) if not f.pad
        }
        self.verified: set[int] = set()
        #: deadlines last given to libtorrent, by piece
        self.deadlines: dict[int, int] = {}
        self._planned_head: dict[int, int] = {}
        self._arrived = asyncio.Event()

    # -- readers and deadlines ----------------------------------------------------------------
    def open(self, span: Span, position: int) -> int:
        reader = self.planner.open(span, position)
        self._planned_head[reader] = span.piece_at(position)
        self.replan()
        return reader

    def move(self, reader: int, position: int) -> None:
        """The reader is at ``position``: plan again when it jumped, went a quarter window
        past where the last plan saw it, or must wait for a piece no deadline asks for (not
        on every piece: a plan sets up to a window of deadlines)."""
        self.planner.move(reader, position)
        span = self.planner.span(reader)
        head, last = span.piece_at(position), self._planned_head[reader]
        quarter = max(1, self.planner.window_pieces(span.piece_length) // 4)
        if not last <= head < last + quarter or (head not in self.deadlines
                                                  and not self._have(head)):
            self._planned_head[reader] = head
            self.replan()

    def close(self, reader: int) -> None:
        self.planner.close(reader)
        self._planned_head.pop(reader, None)
        if not self.planner.readers():
            if self.engine.has(self.torrent_id):
                self.engine.clear_piece_deadlines(
                    self.torrent_id, [p for p in self.deadlines if not self._have(p)])
            self.deadlines = {}
        else:
            self.replan()

    def replan(self) -> None:
        """Give libtorrent the deadlines the readers want now; withdraw the others."""
        if not self.engine.has(self.torrent_id):
            return
        tid, have, length = self.torrent_id, self._have, self.layout.piece_length
        step = step_ms(length, ASSUMED_RATE)
        wanted = self.planner.wanted(have, step)
        for piece in self.deadlines.keys() - wanted.keys():
            if not have(piece):
                self.engine.reset_piece_deadline(tid, piece)
        for piece, ms in sorted(wanted.items(), key=lambda item: item[1]):
            self.engine.set_piece_deadline(tid, piece, ms, priority(ms, step, length))
        self.deadlines = wanted

    def _have(self, piece: int) -> bool:
        return self.engine.have_piece(self.torrent_id, piece)

    # -- waiting and reading ----------------------------------------------------------------
    def arrived(self, piece: int) -> None:
        """A piece was verified: wake every waiting reader."""
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def wait(self, piece: int, alive: Callable[[], bool],
                   timeout: float = PIECE_TIMEOUT) -> None:
        """Return once the download has ``piece``.

        :param alive: False once the reader's client has gone
        :raises Gone: the client left, or the torrent left the engine
        :raises TimeoutError: the piece did not come within ``timeout`` seconds
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            arrived = self._arrived  # taken before the check: no wake-up is lost
            if not self.engine.has(self.torrent_id) or not alive():
                raise Gone()
            if self._have(piece):
                return
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"piece {piece} did not arrive in {timeout:.0f} s")
            try:
                await asyncio.wait_for(arrived.wait(), min(POLL, left))
            except TimeoutError:
                pass

    async def read(self, span: Span, piece: int) -> bytes:
        """The bytes of ``span``'s file inside ``piece``, read from disk.

        Call it only once :meth:`wait` returned for the piece. The first read of a piece
        hashes all of it (pad bytes are zeros) against the torrent's v1 piece hash.

        :raises TorrentError: the bytes on disk never matched the piece's hash
        """
        low, high = span.bounds(piece)
        missing = None
        for _ in range(READ_ATTEMPTS):
            base = Path(self.engine.save_path(self.torrent_id))
            try:
                if piece in self.verified:
                    return await asyncio.to_thread(_read, base / span.path, low, high - low)
                data = await self._verify(base, piece)
            except FileNotFoundError as exc:  # being moved into place: look where it is now
                data, missing = None, exc
            if data is not None:
                return data.get(span.index, b"")
            log.debug("piece %d of %s is not on disk yet (%s)", piece, self.torrent_id[:16],
                      "file missing" if missing else "hash differs")
            await asyncio.sleep(RETRY)  # no event says a write reached the file: retry
        if missing is not None:
            raise TorrentError(f"{span.path!r} is not where the engine keeps it: {missing}")
        raise TorrentError(f"piece {piece} of {span.path!r} on disk does not match its hash")

    async def _verify(self, base: Path, piece: int) -> dict[int, bytes] | None:
        """Read all of ``piece``; its bytes per file if it hashes right, else None."""
        slices = piece_slices(self._files, self.layout.piece_length, piece,
                              self.layout.piece_size(piece))
        chunks = await asyncio.to_thread(_read_slices, base, self.layout.files, slices)
        expected = self.engine.piece_hash(self.torrent_id, piece)
        if expected is not None and hashlib.sha1(b"".join(chunks)).digest() != expected:
            return None
        self.verified.add(piece)
        return {s.file: c for s, c in zip(slices, chunks) if not s.pad}


def _read(path: Path, position: int, length: int) -> bytes:
    """``length`` bytes of ``path`` from ``position``; the last component is never a link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        data = os.pread(fd, length, position)
    finally:
        os.close(fd)
    return data


def _read_slices(base: Path, files, slices: list[Slice]) -> list[bytes]:
    return [bytes(s.length) if s.pad else _read(base / files[s.file].path, s.position, s.length)
            for s in slices]
