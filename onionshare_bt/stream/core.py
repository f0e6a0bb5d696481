"""The pure core of streaming: ranges, piece maps, read-ahead plans, content types.

No sockets, no clock, no libtorrent: the driver (:mod:`.pieces`, :mod:`.server`) feeds in a
torrent's file layout and a ``have(piece)`` predicate and applies what comes out.

A torrent's files lie end to end in one byte space cut into pieces of ``piece_length``
bytes. In a hybrid v1+v2 torrent (every obt share) each file starts on a piece boundary:
the gaps are *pad files*, zeros that are never written to disk, so a file's last piece ends
in padding. :class:`Span` maps between a file's own positions and that space; nothing here
assumes alignment, so a v1 torrent whose pieces straddle files maps as well.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence

#: bytes each reader asks for ahead of its position (piece deadlines), within the caps below
WINDOW_BYTES = 4 * 1024 * 1024
MIN_WINDOW_PIECES = 4
MAX_WINDOW_PIECES = 256
#: bytes at a file's head and tail wanted first: players read the header, then seek to the
#: end (MP3's ID3v1 tag, Ogg's last page for the duration; a large MP4 ``moov`` box is
#: read by a reader of its own, whose window covers it)
EDGE_BYTES = 64 * 1024
#: what is due this soon (in bytes at the planned rate) gets the top priority in
#: libtorrent's ordinary picker too (7); the rest of a window comes after it (6). Every
#: deadline piece would get 7, so that a whole window raced the bytes a player waits for.
URGENT_BYTES = 256 * 1024
#: the download rate (bytes/s) deadlines are spaced for when nothing better is known
ASSUMED_RATE = 1_000_000


# -- ranges -----------------------------------------------------------------------------------
class RangeNotSatisfiable(ValueError):
    """A ``Range`` header that is malformed, names several ranges, or lies outside the file:
    answered with ``416`` and ``Content-Range: bytes */<size>``."""


@dataclasses.dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` of a file, both included."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range a ``Range`` header asks for, clamped to a file of ``size`` bytes.

    ``bytes=a-b``, ``bytes=a-`` and the suffix form ``bytes=-n`` are understood; an end
    past the file is cut to its last byte (RFC 9110, 14.1.2). Anything else is refused
    rather than ignored: other units, several ranges, a first byte after the last, a first
    byte at or past the end of the file, an empty suffix, any range of an empty file.

    :returns: None when there is no header (the whole file, ``200``)
    :raises RangeNotSatisfiable: as above (``416``)
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        raise RangeNotSatisfiable(f"malformed or multiple ranges: {header[:80]!r}")
    first, last = match.groups()
    if not first and not last:
        raise RangeNotSatisfiable("a range needs a first byte or a suffix length")
    if not first:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        raise RangeNotSatisfiable(f"the range ends ({end}) before it starts ({start})")
    if start >= size:
        raise RangeNotSatisfiable(f"the range starts at {start}, past the file ({size} bytes)")
    return ByteRange(start, min(end, size - 1))


# -- where a file's bytes lie ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Span:
    """One file of a torrent, placed in the torrent's piece space.

    :param index: the file's index in the torrent's layout (pad files count)
    :param path: its path inside the torrent (``name/sub/file``)
    :param offset: where its first byte lies in the torrent's byte space
    :param size: its length in bytes
    :param piece_length: the torrent's piece length
    """

    index: int
    path: str
    offset: int
    size: int
    piece_length: int

    def piece_at(self, position: int) -> int:
        """The piece holding byte ``position`` of the file."""
        return (self.offset + position) // self.piece_length

    @property
    def first_piece(self) -> int:
        return self.offset // self.piece_length

    @property
    def last_piece(self) -> int:
        """The piece of the file's last byte (``first_piece - 1`` for an empty file)."""
        return (self.offset + self.size - 1) // self.piece_length

    def pieces(self, start: int, end: int) -> range:
        """The pieces under bytes ``start`` to ``end`` (both included) of the file."""
        if self.size == 0 or end < start:
            return range(0)
        start, end = max(0, start), min(end, self.size - 1)
        return range(self.piece_at(start), self.piece_at(end) + 1)

    def bounds(self, piece: int) -> tuple[int, int]:
        """The file's positions ``[low, high)`` that lie inside ``piece``."""
        low = piece * self.piece_length - self.offset
        return max(0, low), min(self.size, low + self.piece_length)


@dataclasses.dataclass(frozen=True)
class Slice:
    """Part of a piece: ``length`` bytes of file ``file`` from ``position`` (zeros if pad)."""

    file: int
    position: int
    length: int
    pad: bool


def piece_slices(files: Sequence[tuple[int, int, bool]], piece_length: int, piece: int,
                 piece_size: int) -> list[Slice]:
    """Which files, and which of their bytes, make up ``piece``.

    :param files: every file of the torrent in layout order, as ``(offset, size, pad)``
    :param piece_size: the piece's length (the torrent's last piece may be short)
    """
    start, end = piece * piece_length, piece * piece_length + piece_size
    out = []
    for index, (offset, size, pad) in enumerate(files):
        low, high = max(start, offset), min(end, offset + size)
        if low < high:
            out.append(Slice(index, low - offset, high - low, pad))
    return out


def contiguous(span: Span, position: int, have: Callable[[int], bool]) -> int:
    """Bytes the download holds without a gap from ``position`` on in the file."""
    if position >= span.size:
        return 0
    end = position
    for piece in range(span.piece_at(max(0, position)), span.last_piece + 1):
        if not have(piece):
            break
        end = span.bounds(piece)[1]
    return max(0, end - position)


# -- read-ahead plans -----------------------------------------------------------------------
def step_ms(piece_length: int, rate: float = ASSUMED_RATE) -> int:
    """Milliseconds one piece takes at ``rate`` bytes/s: the spacing of deadlines."""
    return max(1, round(piece_length * 1000 / max(rate, 1.0)))


def priority(ms: int, step: int, piece_length: int) -> int:
    """The picker priority of a piece due in ``ms`` (see :data:`URGENT_BYTES`)."""
    urgent = max(1, -(-URGENT_BYTES // piece_length))
    return 7 if ms < urgent * step else 6


@dataclasses.dataclass
class _Reader:
    span: Span
    position: int


class Planner:
    """The readers of one torrent, and the piece deadlines they call for.

    Each reader wants a window of pieces from its position on, due one :func:`step_ms`
    apart (the piece it stands on at 0 ms); the head of every file being read is due at
    0 ms and its tail one step later, since players read both first. A piece several
    readers want gets the earliest deadline; a piece the download has is never asked for.
    """

    def __init__(self, window: int = WINDOW_BYTES, edge: int = EDGE_BYTES,
                 min_pieces: int = MIN_WINDOW_PIECES, max_pieces: int = MAX_WINDOW_PIECES):
        self.window, self.edge = window, edge
        self.min_pieces, self.max_pieces = min_pieces, max_pieces
        self._readers: dict[int, _Reader] = {}
        self._next = 0

    def open(self, span: Span, position: int = 0) -> int:
        """A new reader of ``span`` at ``position``; returns its id."""
        self._next += 1
        self._readers[self._next] = _Reader(span, position)
        return self._next

    def move(self, reader: int, position: int) -> bool:
        """The reader is now at ``position``; True when it stepped onto another piece."""
        state = self._readers[reader]
        before = state.span.piece_at(state.position)
        state.position = position
        return state.span.piece_at(position) != before

    def close(self, reader: int) -> None:
        self._readers.pop(reader, None)

    def span(self, reader: int) -> Span:
        return self._readers[reader].span

    def readers(self) -> list[tuple[int, Span, int]]:
        """``(id, span, position)`` of every reader, oldest first."""
        return [(rid, r.span, r.position) for rid, r in self._readers.items()]

    def window_pieces(self, piece_length: int) -> int:
        return max(self.min_pieces, min(self.max_pieces, -(-self.window // piece_length)))

    def wanted(self, have: Callable[[int], bool], step: int) -> dict[int, int]:
        """Every piece the readers want that the download lacks: ``{piece: deadline ms}``."""
        out: dict[int, int] = {}

        def want(pieces: Iterable[int], deadline: Callable[[int], int]) -> None:
            for k, piece in enumerate(pieces):
                ms = deadline(k)
                if (piece not in out or ms < out[piece]) and not have(piece):
                    out[piece] = ms

        for span in {r.span for r in self._readers.values()}:
            if span.size:
                want(span.pieces(0, self.edge - 1), lambda k: 0)
                want(span.pieces(span.size - self.edge, span.size - 1), lambda k: step)
        for state in self._readers.values():
            span = state.span
            if not span.size or state.position >= span.size:
                continue
            head = span.piece_at(state.position)
            last = min(span.last_piece, head + self.window_pieces(span.piece_length) - 1)
            want(range(head, last + 1), lambda k: k * step)
        return out


# -- content types --------------------------------------------------------------------------
CONTENT_TYPES = {
    "opus": "audio/ogg", "ogg": "audio/ogg", "oga": "audio/ogg", "spx": "audio/ogg",
    "mp3": "audio/mpeg", "flac": "audio/flac", "wav": "audio/wav", "m4a": "audio/mp4",
    "aac": "audio/aac", "weba": "audio/webm", "mka": "audio/x-matroska", "wma": "audio/x-ms-wma",
    "aif": "audio/aiff", "aiff": "audio/aiff", "mid": "audio/midi", "midi": "audio/midi",
    "ogv": "video/ogg", "mp4": "video/mp4", "m4v": "video/mp4", "mkv": "video/x-matroska",
    "webm": "video/webm", "mov": "video/quicktime", "avi": "video/x-msvideo",
    "mpg": "video/mpeg", "mpeg": "video/mpeg", "ts": "video/mp2t", "wmv": "video/x-ms-wmv",
    "flv": "video/x-flv", "3gp": "video/3gpp",
    "txt": "text/plain; charset=utf-8", "pdf": "application/pdf", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
    "srt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8",
}
DEFAULT_TYPE = "application/octet-stream"
#: files that make a player fetch what they name (playlists, stream descriptions): obt never
#: hands one to a player, which could fetch a clearnet URL outside Tor
PLAYLISTS = frozenset({"m3u", "m3u8", "pls", "xspf", "asx", "wax", "wvx", "wpl", "ram", "rm",
                       "smil", "smi", "sdp", "strm", "cue", "url", "qtl", "b4s", "mxu", "vlc",
                       "nsc", "ifo"})


def _extension(path: str) -> str:
    return posixpath.splitext(path)[1].lower().lstrip(".")


def content_type(path: str) -> str:
    """The ``Content-Type`` a file is served with, from its name alone.

    Names come from the share, so nothing served says ``text/html`` or anything else a
    browser would run: unknown kinds (playlists included) are ``application/octet-stream``.
    """
    return CONTENT_TYPES.get(_extension(path), DEFAULT_TYPE)


def is_media(path: str) -> bool:
    """Whether a player plays the file (audio or video, by name)."""
    return content_type(path).startswith(("audio/", "video/"))


def is_playlist(path: str) -> bool:
    return _extension(path) in PLAYLISTS


def pick(paths: Sequence[tuple[int, str]], wanted: str | None) -> list[int]:
    """The files of a torrent that ``obt play ID [FILE]`` may mean, best first.

    ``wanted`` is a file index, a path as listed (``name/sub/file``), a file name, or a part
    of a path (case-insensitive); the first rule that matches anything decides. Without it:
    the first media file, or the only file.

    :param paths: ``(index, path)`` of every file (pad files left out), in layout order
    """
    if wanted is None:
        media = [i for i, p in paths if is_media(p) and not is_playlist(p)]
        return media[:1] or ([paths[0][0]] if len(paths) == 1 else [])
    text = wanted.strip()
    rules = (
        lambda i, p: text.isdigit() and i == int(text),
        lambda i, p: p == text,
        lambda i, p: posixpath.basename(p) == text,
        lambda i, p: text.casefold() in p.casefold(),
    )
    for rule in rules:
        found = [i for i, p in paths if rule(i, p)]
        if found:
            return found
    return []


# -- what a file's first bytes say --------------------------------------------------------
#: bytes of a file (after an ID3v2 tag) that :func:`vet` looks at before any of it is served
HEAD_BYTES = 4096
#: what makes a player fetch something else: playlists and stream descriptions (HLS, DASH,
#: SDP, ffmpeg's concat and IMF, mpv's EDL, ASX/SMIL/XSPF/PLS/WPL, VLC's RTSPtext) and URLs.
#: Media players and ffmpeg recognise these by content, whatever the file is called: an HLS
#: playlist named ``song.mp3`` makes ffmpeg fetch its segments from wherever they point.
#: Their probes read C strings, so only what comes before the first NUL byte counts.
MARKERS = (b"#extm3u", b"#ext-x-", b"[playlist]", b"[reference]", b"ffconcat", b"c=in ip",
           b"<mpd", b"<asx", b"<smil", b"<playlist", b"<compositionplaylist", b"<?wpl",
           b"# mpv edl", b"edl://", b"rtsptext", b"://")


def id3_length(first: bytes, size: int) -> int:
    """The length of an ID3v2 tag at the start of a file (0 without one), capped at ``size``.

    ffmpeg skips such a tag before it guesses a file's format, so what follows it is what
    decides: :func:`vet` must look there too.
    """
    if len(first) < 10 or first[:3] != b"ID3" or any(b & 0x80 for b in first[6:10]):
        return 0
    length = 10 + ((first[6] << 21) | (first[7] << 14) | (first[8] << 7) | first[9])
    if first[5] & 0x10:  # a footer follows the tag
        length += 10
    return min(length, size)


def vet(head: bytes) -> str | None:
    """Why a file whose first bytes (after any ID3v2 tag) are ``head`` is not served; None
    when it may be.

    A file is refused when it reads as text (no NUL byte in :data:`HEAD_BYTES`: every audio
    and video container has one early; every playlist format is text) or when what comes
    before its first NUL byte carries a :data:`MARKERS` entry. Either way a player handed it
    could fetch what it names, outside Tor.
    """
    if not head:
        return None
    nul = head.find(b"\0")
    if nul < 0:
        return ("it reads as text, as playlists and stream descriptions do: a player would "
                "fetch what it names, outside Tor")
    prefix = head[:nul].lower()
    for marker in MARKERS:
        if marker in prefix:
            return (f"it carries {marker.decode()!r}, as playlists and stream descriptions "
                    "do: a player would fetch what it names, outside Tor")
    return None
