"""cast/ogg.py: pages out of a byte stream in pieces of any size; anything else refused."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from onionshare_bt.cast.ogg import FLAG_BOS, MAX_PAGE, OggError, Page, PageReader, crc32


def _pages(n: int = 5) -> list[Page]:
    out = [Page.build(b"OpusHead" + bytes(11), granule=0, serial=7, sequence=0, flags=FLAG_BOS)]
    out += [Page.build(bytes([i]) * (100 + 300 * i), granule=960 * i, serial=7, sequence=i)
            for i in range(1, n)]
    return out


def test_the_crc_is_oggs_not_zlibs():
    # the check value of CRC-32/MPEG-2 without its initial value and final xor (Ogg's)
    assert crc32(b"123456789") == 0x89A1897F
    assert crc32(b"") == 0


@pytest.mark.parametrize("step", [1, 7, 27, 28, 1000, 10**6])
def test_pages_come_out_whole_whatever_the_pieces(step):
    pages = _pages()
    data = b"".join(p.raw for p in pages)
    reader, got = PageReader(), []
    for i in range(0, len(data), step):
        got += reader.feed(data[i:i + step])
    assert got == pages and reader.pending == 0
    assert [p.granule for p in got] == [0, 960, 1920, 2880, 3840]
    assert got[0].bos and got[0].is_header and not got[1].is_header


def test_a_page_of_more_than_255_bytes_has_a_longer_segment_table():
    page = Page.build(b"x" * 600, granule=1, serial=1, sequence=1)
    assert page.raw[26] == 3 and list(page.raw[27:30]) == [255, 255, 90]
    assert len(page.raw) == 27 + 3 + 600 <= MAX_PAGE


def test_a_flipped_byte_anywhere_is_refused():
    raw = _pages(2)[1].raw
    for at in (5, 10, 16, 20, 23, 40, len(raw) - 1):
        bad = bytearray(raw)
        bad[at] ^= 0x01
        with pytest.raises(OggError):
            PageReader().feed(bytes(bad))


def test_a_stream_that_does_not_start_on_a_page_is_refused_at_once():
    with pytest.raises(OggError, match="capture"):
        PageReader().feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(OggError, match="capture"):  # four bytes are enough to tell
        PageReader().feed(b"Ogg!")
    reader = PageReader()
    assert reader.feed(_pages(2)[1].raw + b"Og")  # a page, then not yet wrong
    with pytest.raises(OggError):
        reader.feed(b"g!")


def test_a_page_whose_length_lies_is_refused():
    raw = bytearray(_pages(2)[1].raw)
    with pytest.raises(OggError, match="length"):
        Page.parse(bytes(raw[:-1]))
    with pytest.raises(OggError, match="version"):
        Page.parse(bytes(raw[:4]) + b"\x01" + bytes(raw[5:]))


def test_a_real_ogg_opus_stream_from_ffmpeg_reads_back(tmp_path):
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is part of the set-up (scripts/setup.sh)"
    out = tmp_path / "tone.ogg"
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", "-c:a", "libopus", "-b:a", "48k",
                    "-page_duration", "200000", "-f", "ogg", str(out)], check=True, timeout=60)
    data = out.read_bytes()
    reader, pages = PageReader(), []
    for i in range(0, len(data), 333):
        pages += reader.feed(data[i:i + 333])
    assert reader.pending == 0 and b"".join(p.raw for p in pages) == data
    assert pages[0].bos and pages[0].raw[28:36] == b"OpusHead" and pages[-1].eos
    assert [p.is_header for p in pages[:2]] == [True, True] and not pages[2].is_header
    assert [p.sequence for p in pages] == list(range(len(pages)))
    audio = [p.granule for p in pages if not p.is_header]
    assert audio == sorted(audio) and audio[-1] >= 2 * 48_000  # two seconds at 48 kHz
