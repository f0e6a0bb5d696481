"""The pure core of obt play: ranges, piece maps, read-ahead plans, content types, picks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionshare_bt.stream.core import (HEAD_BYTES, ByteRange, Planner, RangeNotSatisfiable,
                                       Span, content_type, contiguous, id3_length, is_media,
                                       is_playlist, parse_range, pick, piece_slices, step_ms,
                                       vet)


# -- ranges -----------------------------------------------------------------------------------
@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None),
    ("bytes=0-0", 100, ByteRange(0, 0)),
    ("bytes=0-", 100, ByteRange(0, 99)),
    ("bytes=10-19", 100, ByteRange(10, 19)),
    ("bytes=90-500", 100, ByteRange(90, 99)),  # the end is cut to the file
    ("bytes=-10", 100, ByteRange(90, 99)),
    ("bytes=-1000", 100, ByteRange(0, 99)),
    ("BYTES = 5 - 6", 100, ByteRange(5, 6)),
    ("bytes=99-99", 100, ByteRange(99, 99)),
])
def test_ranges_understood(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header, size", [
    ("bytes=100-", 100),           # starts at the end
    ("bytes=100-200", 100),        # outside
    ("bytes=5-4", 100),            # backwards
    ("bytes=-0", 100),             # empty suffix
    ("bytes=-", 100),
    ("bytes=0-1,5-6", 100),        # several ranges
    ("items=0-1", 100),            # another unit
    ("bytes=a-b", 100),
    ("bytes=0x10-", 100),
    ("bytes=1-2-3", 100),
    ("", 100),
    ("bytes=0-", 0),               # any range of an empty file
    ("bytes=-5", 0),
    ("bytes=" + "9" * 30 + "-", 100),
])
def test_ranges_refused(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_content_range():
    assert ByteRange(5, 9).content_range(100) == "bytes 5-9/100"
    assert ByteRange(5, 9).length == 5


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_a_range_understood_lies_inside_the_file(a, b, size):
    try:
        rng = parse_range(f"bytes={a}-{b}", size)
    except RangeNotSatisfiable:
        assert b < a or a >= size
        return
    assert 0 <= rng.start <= rng.end < size and rng.start == a


# -- spans and pieces ---------------------------------------------------------------------------
def hybrid(sizes: list[int], piece: int) -> list[tuple[int, int, bool]]:
    """A hybrid torrent's layout: each file aligned to a piece by a pad file after it."""
    files, offset = [], 0
    for size in sizes:
        files.append((offset, size, False))
        offset += size
        pad = -offset % piece
        if pad:
            files.append((offset, pad, True))
            offset += pad
    return files


def test_a_span_maps_file_positions_to_pieces_with_pad_files():
    layout = hybrid([300_000, 70_000], 16384)
    assert layout[2] == (311296, 70_000, False)  # what libtorrent makes of it (see integration)
    span = Span(2, "s/b.bin", 311296, 70_000, 16384)
    assert span.first_piece == 19 and span.last_piece == 23
    assert span.piece_at(0) == 19 and span.piece_at(16383) == 19 and span.piece_at(16384) == 20
    assert span.bounds(19) == (0, 16384)
    assert span.bounds(23) == (65536, 70_000)  # the rest of piece 23 is padding
    assert list(span.pieces(16000, 17000)) == [19, 20]
    assert list(span.pieces(0, 10**9)) == [19, 20, 21, 22, 23]


def test_an_empty_file_has_no_pieces():
    span = Span(0, "e", 4096, 0, 4096)
    assert list(span.pieces(0, 0)) == [] and span.last_piece < span.first_piece
    assert contiguous(span, 0, lambda p: True) == 0


def test_piece_slices_cover_a_piece_that_straddles_files_and_padding():
    files = [(0, 10, False), (10, 5, False), (15, 1, True), (16, 20, False)]
    assert piece_slices(files, 8, 1, 8) == [
        _slice(0, 8, 2, False), _slice(1, 0, 5, False), _slice(2, 0, 1, True)]
    assert piece_slices(files, 8, 4, 4) == [_slice(3, 16, 4, False)]  # the last, short piece


def _slice(file, position, length, pad):
    from onionshare_bt.stream.core import Slice

    return Slice(file, position, length, pad)


def test_contiguous_counts_bytes_up_to_the_first_missing_piece():
    span = Span(0, "f", 1000, 10_000, 1000)  # pieces 1..10 (offset 1000)
    held = {1, 2, 3, 5}
    have = held.__contains__
    assert contiguous(span, 0, have) == 3000
    assert contiguous(span, 2500, have) == 500
    assert contiguous(span, 3000, have) == 0
    assert contiguous(span, 4000, have) == 1000
    assert contiguous(span, 10_000, have) == 0
    assert contiguous(span, 0, lambda p: True) == 10_000


# -- plans --------------------------------------------------------------------------------------
def test_a_reader_wants_its_window_and_the_file_edges_first():
    span = Span(0, "a.opus", 0, 100 * 1024, 1024)  # 100 pieces
    planner = Planner(window=8 * 1024, edge=2 * 1024, min_pieces=2, max_pieces=64)
    reader = planner.open(span, 50 * 1024)
    wanted = planner.wanted(lambda p: False, step=10)
    assert wanted == {0: 0, 1: 0,                                # head of the file
                      98: 10, 99: 10,                            # its tail, one step later
                      **{50 + k: 10 * k for k in range(8)}}      # the window, a step apart
    planner.move(reader, 51 * 1024 + 3)
    assert planner.wanted(lambda p: p < 2 or p > 97, 10) == {51 + k: 10 * k for k in range(8)}


def test_pieces_held_are_never_wanted_and_the_earliest_deadline_wins():
    span = Span(0, "a", 0, 64 * 1024, 1024)
    planner = Planner(window=16 * 1024, edge=1024)
    planner.open(span, 0)
    planner.open(span, 8 * 1024)  # a second reader (a seek) overlapping the first
    wanted = planner.wanted(lambda p: p % 2 == 1, 5)
    assert all(p % 2 == 0 for p in wanted)
    assert wanted[8] == 0 and wanted[10] == 10  # the seeking reader's head, not 8 * 5


def test_a_reader_that_goes_releases_what_it_wanted():
    a = Span(0, "a", 0, 64 * 1024, 1024)
    b = Span(1, "b", 64 * 1024, 64 * 1024, 1024)
    planner = Planner(window=4096, edge=1024, min_pieces=1)
    ra, rb = planner.open(a, 10_000), planner.open(b, 0)
    both = planner.wanted(lambda p: False, 1)
    planner.close(rb)
    only_a = planner.wanted(lambda p: False, 1)
    assert set(only_a) < set(both) and all(p < 64 for p in only_a)
    planner.close(ra)
    assert planner.wanted(lambda p: False, 1) == {} and planner.readers() == []


def test_move_says_when_the_reader_stepped_onto_another_piece():
    planner = Planner()
    reader = planner.open(Span(0, "a", 0, 10_000, 1000), 0)
    assert not planner.move(reader, 999)
    assert planner.move(reader, 1000)


def test_window_size_in_pieces_is_capped_both_ways():
    planner = Planner(window=4 * 1024 * 1024, min_pieces=4, max_pieces=256)
    assert planner.window_pieces(16 * 1024) == 256
    assert planner.window_pieces(256 * 1024) == 16
    assert planner.window_pieces(4 * 1024 * 1024) == 4
    assert step_ms(1_000_000, 1_000_000) == 1000 and step_ms(1, 10**9) == 1


def test_priority_is_top_only_for_what_is_due_within_256_kib():
    from onionshare_bt.stream.core import priority

    step = step_ms(32 * 1024)
    assert [priority(k * step, step, 32 * 1024) for k in (0, 7, 8, 100)] == [7, 7, 6, 6]
    assert priority(0, 4000, 4 * 1024 * 1024) == 7 and priority(4000, 4000, 4 << 20) == 6


def test_a_reader_past_the_end_wants_only_the_edges():
    span = Span(0, "a", 0, 10 * 1024, 1024)
    planner = Planner(window=4096, edge=1024)
    planner.open(span, 10 * 1024)
    assert planner.wanted(lambda p: False, 3) == {0: 0, 9: 3}


# -- types and picks --------------------------------------------------------------------------
def test_content_types_never_say_html():
    assert content_type("x/Song.OPUS") == "audio/ogg"
    assert content_type("a.mp3") == "audio/mpeg"
    assert content_type("v.mkv") == "video/x-matroska"
    for name in ("page.html", "page.htm", "x.svg", "x.js", "x.xhtml", "noext", "list.m3u"):
        assert content_type(name) == "application/octet-stream"
    assert is_media("a.flac") and not is_media("a.txt") and not is_media("a.m3u")
    assert is_playlist("a.M3U8") and is_playlist("b.pls") and not is_playlist("a.mp3")


FILES = [(0, "album/01 intro.opus"), (2, "album/02 song.mp3"), (4, "album/cover.jpg"),
         (5, "album/notes.txt"), (6, "album/list.m3u")]


@pytest.mark.parametrize("wanted, expected", [
    (None, [0]),                       # the first media file
    ("2", [2]),                        # an index
    ("album/cover.jpg", [4]),          # a path
    ("02 song.mp3", [2]),              # a name
    ("SONG", [2]),                     # a part, any case
    (".opus", [0]),
    ("album", [0, 2, 4, 5, 6]),        # ambiguous: the caller refuses
    ("nothing", []),
    ("7", []),
])
def test_pick(wanted, expected):
    assert pick(FILES, wanted) == expected


def test_pick_without_media_takes_the_only_file_or_none():
    assert pick([(0, "a.bin")], None) == [0]
    assert pick([(0, "a.bin"), (1, "b.bin")], None) == []
    assert pick([(0, "list.m3u")], None) == [0]  # the only file; no player is started on it


# -- what a file's first bytes say (vet) -------------------------------------------------------
HLS = (b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://192.0.2.7/seg.ts\n"
       b"#EXT-X-ENDLIST\n")


def id3(body: bytes, footer: bool = False) -> bytes:
    n = len(body)
    size = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3\x04\x00" + (b"\x10" if footer else b"\x00") + size + body + (
        b"3DI" + b"\x00" * 7 if footer else b"")


def test_id3_length_reads_the_syncsafe_size_and_the_footer():
    tag = id3(b"\x00" * 300)
    assert id3_length(tag + b"rest", 10_000) == len(tag) == 310
    assert id3_length(id3(b"x" * 200, footer=True), 10_000) == 220
    assert id3_length(b"OggS\x00\x02" + b"\x00" * 20, 10_000) == 0
    assert id3_length(b"ID3\x04\x00\x00\x80\x00\x00\x00", 10_000) == 0  # not syncsafe
    assert id3_length(id3(b"\x00" * 300), 50) == 50  # a tag longer than the file


@pytest.mark.parametrize("head", [
    HLS,
    b"\xef\xbb\xbf" + HLS,                                  # with a BOM
    b"ffconcat version 1.0\nfile 'http://192.0.2.7/a.mp3'\n",
    b"[playlist]\nFile1=http://192.0.2.7/a.mp3\n",
    b'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011">',
    b"v=0\r\no=- 0 0 IN IP4 192.0.2.7\r\nc=IN IP4 192.0.2.7\r\nm=audio 5004 RTP/AVP 96\r\n",
    b"# mpv EDL v0\nhttp://192.0.2.7/a.mp3\n",
    b"just some text\n" * 300,                              # no NUL at all: text
    b"\xff\xfb" + b"junk without a nul " * 10 + b"\nc=IN IP4 192.0.2.7\n\x00binary",
])
def test_playlists_stream_descriptions_and_text_are_refused(head):
    reason = vet(head[:HEAD_BYTES])
    assert reason is not None and "outside Tor" in reason


@pytest.mark.parametrize("head", [
    b"OggS\x00\x02" + bytes(range(256)) * 4,
    b"\xff\xfb\x90\x64\x00\x00\x00\x00" + b"\x55" * 500,  # an MPEG audio frame
    b"fLaC\x00\x00\x00\x22" + b"\x10" * 40,
    b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00",
    b"RIFF\x24\x08\x00\x00WAVEfmt ",
    # a marker after the first NUL is past where players' probes read
    b"OggS\x00" + HLS,
    b"",
])
def test_media_heads_are_served(head):
    assert vet(head) is None


def test_an_id3_tag_hides_nothing_behind_it():
    """ffmpeg skips one ID3v2 tag before it guesses the format: the bytes after it count."""
    data = id3(b"\x00" * 64) + HLS
    start = id3_length(data[:10], len(data))
    assert vet(data[start:start + HEAD_BYTES]) is not None
    assert vet(data[:HEAD_BYTES]) is None  # what a check of the first bytes alone would miss
