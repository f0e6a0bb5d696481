"""Ogg pages (RFC 3533), read from a byte stream a piece at a time, checked, never trusted.

A live broadcast is an Ogg/Opus stream cut into pages: the broadcaster reads them off
``ffmpeg``, and every relay and listener reads them off a Tor stream from whoever serves it
to them. A page is the unit everything else works in: the backlog a newcomer starts from,
the clean boundary a re-joining listener resumes at, the count of what a gap lost.

:class:`PageReader` takes bytes as they come and hands back whole pages, each checked
(capture pattern, version, length, CRC): a peer that sends anything else is refused with
:class:`OggError`, and nothing it sent is passed on.
"""

from __future__ import annotations

import dataclasses
import struct

__all__ = ["CAPTURE", "HEADER_SIZE", "MAX_PAGE", "OggError", "Page", "PageReader", "crc32",
           "page_size"]

CAPTURE = b"OggS"
#: the fixed part of a page header, before its segment table
HEADER_SIZE = 27
#: the largest page there can be: a full segment table of full segments
MAX_PAGE = HEADER_SIZE + 255 + 255 * 255
_HEADER = struct.Struct("<4sBBqIIIB")

FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04


def _table() -> list[int]:
    out = []
    for byte in range(256):
        r = byte << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        out.append(r & 0xFFFFFFFF)
    return out


_CRC = _table()


def crc32(data: bytes) -> int:
    """Ogg's CRC: polynomial 0x04C11DB7, not reflected, initial 0, no final xor."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ byte) & 0xFF]
    return crc


class OggError(ValueError):
    """Bytes that are not a well-formed Ogg page."""


@dataclasses.dataclass(frozen=True)
class Page:
    """One checked page: its bytes as sent and what its header says."""

    raw: bytes
    flags: int
    granule: int
    serial: int
    sequence: int
    #: the broadcaster's signature of ``raw`` (:mod:`.wire`), once there is one
    sig: bytes = dataclasses.field(default=b"", compare=False, repr=False)

    @property
    def continued(self) -> bool:
        """Its first packet began on an earlier page: no decoder can start here."""
        return bool(self.flags & FLAG_CONTINUED)

    @property
    def bos(self) -> bool:
        return bool(self.flags & FLAG_BOS)

    @property
    def eos(self) -> bool:
        return bool(self.flags & FLAG_EOS)

    @property
    def is_header(self) -> bool:
        """A page of the stream's headers (Opus: ``OpusHead``, ``OpusTags``): granule 0."""
        return self.granule == 0

    @classmethod
    def parse(cls, raw: bytes) -> Page:
        """One whole page, checked.

        :raises OggError: not exactly one well-formed page
        """
        if len(raw) < HEADER_SIZE:
            raise OggError("a page shorter than its header")
        capture, version, flags, granule, serial, sequence, crc, count = _HEADER.unpack_from(raw)
        if capture != CAPTURE:
            raise OggError("no Ogg capture pattern where a page should begin")
        if version != 0:
            raise OggError(f"Ogg version {version}")
        if flags & ~(FLAG_CONTINUED | FLAG_BOS | FLAG_EOS):
            raise OggError("unknown page flags")
        table_end = HEADER_SIZE + count
        if len(raw) < table_end or len(raw) != table_end + sum(raw[HEADER_SIZE:table_end]):
            raise OggError("a page's length does not match its segment table")
        if crc32(raw[:22] + b"\0\0\0\0" + raw[26:]) != crc:
            raise OggError("a page's CRC does not match")
        return cls(bytes(raw), flags, granule, serial, sequence)

    @classmethod
    def build(cls, body: bytes, *, granule: int, serial: int, sequence: int,
              flags: int = 0) -> Page:
        """A page holding **body** as one packet (at most 255 × 255 - 1 bytes; tests and
        tools make pages with it)."""
        if len(body) >= 255 * 255:
            raise ValueError("a body that does not fit one page")
        table = bytes([255] * (len(body) // 255) + [len(body) % 255])
        head = _HEADER.pack(CAPTURE, 0, flags, granule, serial, sequence, 0, len(table))
        raw = bytearray(head + table + body)
        raw[22:26] = struct.pack("<I", crc32(bytes(raw)))
        return cls.parse(bytes(raw))


def page_size(buffer: bytes | bytearray) -> int | None:
    """The size of the page **buffer** starts with, once its header and segment table are
    in (None before).

    :raises OggError: **buffer** does not start with the capture pattern
    """
    if len(buffer) >= 4 and buffer[:4] != CAPTURE:
        raise OggError("no Ogg capture pattern where a page should begin")
    if len(buffer) < HEADER_SIZE:
        return None
    table_end = HEADER_SIZE + buffer[26]
    if len(buffer) < table_end:
        return None
    return table_end + sum(buffer[HEADER_SIZE:table_end])


class PageReader:
    """Whole pages out of a byte stream fed in pieces of any size.

    The stream must start on a page: a server that does not is refused at its first byte,
    not searched for the next capture pattern (a peer gets no second reading).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a page not yet whole."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Page]:
        """:returns: the pages **data** completed, in order
        :raises OggError: at the first malformed page (the reader is then of no further use)
        """
        self._buffer += data
        pages = []
        while True:
            buffer = self._buffer
            size = page_size(buffer)
            if size is None or len(buffer) < size:
                break
            pages.append(Page.parse(bytes(buffer[:size])))
            del buffer[:size]
        return pages
