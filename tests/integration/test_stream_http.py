"""obt play's server over a real libtorrent download in progress (two sessions, no Tor).

The leecher's download rate is capped, so every read below happens while most of the torrent
is still missing: it waits for its pieces, which its piece deadlines bring in first.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import libtorrent as lt
import pytest

from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine
from onionshare_bt.stream.server import StreamService

RATE = 400_000  # bytes/s: the big file alone takes ~30 s
BIG = 12 * 1024 * 1024
FFMPEG = shutil.which("ffmpeg")


def make_audio(folder: Path) -> dict[str, Path]:
    """A 60 s sine as Ogg/Opus and MP3 (ffmpeg), or random stand-ins without ffmpeg."""
    folder.mkdir(parents=True)
    out = {"opus": folder / "01 tone.opus", "mp3": folder / "02 tone.mp3"}
    if FFMPEG:
        for kind, codec in (("opus", "libopus"), ("mp3", "libmp3lame")):
            subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i",
                            "sine=frequency=440:duration=60", "-c:a", codec, "-b:a", "128k",
                            str(out[kind])], check=True, timeout=120)
    else:
        for path in out.values():
            path.write_bytes(secrets.token_bytes(960_000 + random.randrange(1000)))
    return out


async def wait_for(predicate, timeout: float, step: float = 0.05):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(step)


@pytest.fixture
async def swarm(tmp_path):
    """A seeder, a rate-capped leecher that just started, and the leecher's stream server."""
    album = tmp_path / "src" / "album"
    audio = make_audio(album)
    (album / "03 big.bin").write_bytes(secrets.token_bytes(BIG))
    (album / "04 odd.txt").write_bytes(secrets.token_bytes(12_345))
    meta = await asyncio.to_thread(create, album)
    events = []
    seeder, leecher = Engine(bridged=False), Engine(events.append, bridged=False)
    await seeder.start()
    await leecher.start()
    stream = StreamService(leecher)
    try:
        seeder.add(meta, album.parent, seed=True)
        staging = tmp_path / "out" / ".staging"
        staging.mkdir(parents=True)
        leecher.add(meta, staging)
        leecher.limit_download(RATE)
        await stream.start()
        leecher.connect(meta.id, ("127.0.0.1", seeder.listen_port))
        async with aiohttp.ClientSession() as http:
            yield SimpleNamespace(meta=meta, album=album, audio=audio, seeder=seeder,
                                  leecher=leecher, stream=stream, http=http, events=events,
                                  staging=staging, tmp=tmp_path)
    finally:
        await stream.close()
        await seeder.close()
        await leecher.close()


def index_of(s, name: str) -> int:
    return next(f["index"] for f in s.stream.files(s.meta.id) if f["path"].endswith(name))


def progress(s) -> float:
    return s.leecher.status(s.meta.id).progress


async def test_engine_layout_matches_libtorrents_map_file(swarm):
    s = swarm
    info = lt.torrent_info(s.meta.data)
    layout = s.leecher.layout(s.meta.id)
    assert any(f.pad for f in layout.files)  # a hybrid torrent: files aligned by pad files
    for i, entry in enumerate(layout.files):
        if entry.pad or not entry.size:
            continue
        assert entry.offset % layout.piece_length == 0
        span = s.stream._reader(s.meta.id).spans[i]
        for pos in (0, 1, entry.size // 2, entry.size - 1):
            where = info.map_file(i, pos, 1)
            assert (where.piece, where.start) == (span.piece_at(pos),
                                                 (entry.offset + pos) % layout.piece_length)


async def test_range_reads_at_random_offsets_return_the_source_bytes_while_downloading(swarm):
    s = swarm
    rng = random.Random(7)
    assert progress(s) < 0.5
    checked = 0
    for name, path in [("01 tone.opus", s.audio["opus"]), ("02 tone.mp3", s.audio["mp3"]),
                       ("03 big.bin", s.album / "03 big.bin")] * 2:
        data = path.read_bytes()
        start = rng.randrange(len(data))
        end = min(len(data) - 1, start + rng.randrange(1, 200_000))
        url = s.stream.url(s.meta.id, index_of(s, name))
        async with s.http.get(url, headers={"Range": f"bytes={start}-{end}"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
            assert int(resp.headers["Content-Length"]) == end - start + 1
            assert await resp.read() == data[start:end + 1]
        checked += 1
    assert checked == 6
    assert progress(s) < 0.9, "the reads should not have needed the whole download"


async def test_a_read_near_the_end_comes_long_before_the_download_would(swarm):
    s = swarm
    data = (s.album / "03 big.bin").read_bytes()
    url = s.stream.url(s.meta.id, index_of(s, "03 big.bin"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with s.http.get(url, headers={"Range": f"bytes={BIG - 300_000}-{BIG - 200_000}"}
                          ) as resp:
        assert await resp.read() == data[BIG - 300_000:BIG - 199_999]
    took = loop.time() - started
    assert progress(s) < 0.5, "the deadlines brought the range in, not the whole download"
    assert took < BIG / RATE / 2  # the whole file would take BIG / RATE


async def test_whole_file_head_and_types(swarm):
    s = swarm
    opus = s.audio["opus"].read_bytes()
    url = s.stream.url(s.meta.id, index_of(s, "01 tone.opus"))
    assert url.startswith(f"http://127.0.0.1:{s.stream.port}/") and url.endswith("/01%20tone.opus")
    async with s.http.head(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(opus))
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Type"] == "audio/ogg"
        assert "Server" not in resp.headers and "Date" not in resp.headers
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    async with s.http.head(url, headers={"Range": "bytes=-100"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {len(opus) - 100}-{len(opus) - 1}/{len(opus)}"
    async with s.http.get(url) as resp:
        assert resp.status == 200 and await resp.read() == opus
    mp3 = s.stream.url(s.meta.id, index_of(s, "02 tone.mp3"))
    async with s.http.head(mp3) as resp:
        assert resp.headers["Content-Type"] == "audio/mpeg"
    odd = s.stream.url(s.meta.id, index_of(s, "04 odd.txt"))
    async with s.http.get(odd, headers={"Range": "bytes=12000-"}) as resp:
        assert await resp.read() == (s.album / "04 odd.txt").read_bytes()[12000:]


async def test_refusals_416_404_405(swarm):
    s = swarm
    size = s.audio["opus"].stat().st_size
    url = s.stream.url(s.meta.id, index_of(s, "01 tone.opus"))
    for bad in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=9-3", "bytes=-0",
                "bytes=0-1,4-5", "bytes=x-", "lines=0-1", ""):
        async with s.http.get(url, headers={"Range": bad}) as resp:
            assert resp.status == 416, bad
            assert resp.headers["Content-Range"] == f"bytes */{size}"
    token = url.split("/")[3]
    wrong = url.replace(token, secrets.token_urlsafe(24))
    bodies = set()
    for other in (wrong, wrong.rsplit("/", 1)[0], url.replace(f"/{token}/", f"/{token}x/"),
                  url.replace(f"/{token}/", f"/{token}/999/"),
                  f"http://127.0.0.1:{s.stream.port}/", url.split("/0")[0] + "/1/pad"):
        async with s.http.get(other) as resp:
            assert resp.status == 404, other
            bodies.add(await resp.read())
    async with s.http.get(url, headers={"Host": f"example.com:{s.stream.port}"}) as resp:
        assert resp.status == 404  # a rebound name: not ours
        bodies.add(await resp.read())
    assert len(bodies) == 1
    async with s.http.post(url, data=b"x") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD"


async def test_a_reader_that_leaves_releases_its_deadlines(swarm, monkeypatch):
    s = swarm
    calls = []
    for name in ("set_piece_deadline", "reset_piece_deadline", "clear_piece_deadlines"):
        real = getattr(s.leecher, name)
        monkeypatch.setattr(s.leecher, name,
                            lambda *a, _real=real, _name=name: (calls.append((_name, *a[1:])),
                                                                _real(*a))[1])
    tid = s.meta.id
    url = s.stream.url(tid, index_of(s, "03 big.bin"))
    start = BIG // 2
    resp = await s.http.get(url, headers={"Range": f"bytes={start}-"})
    assert resp.status == 206
    first = await resp.content.read(1000)
    assert first == (s.album / "03 big.bin").read_bytes()[start:start + 1000]
    readers = s.stream.readers(tid)
    assert len(readers) == 1 and readers[0]["position"] >= start and readers[0]["ahead"] >= 0
    listed = s.stream.describe(tid)
    assert {f["path"].rsplit("/", 1)[1] for f in listed["playable"]} == {"01 tone.opus",
                                                                        "02 tone.mp3"}
    big = s.stream._reader(tid).spans[index_of(s, "03 big.bin")]
    # deadlines for the pieces ahead of the reader (the one under it may have come already:
    # libtorrent fetches in its own order, and a loaded machine gives it time)
    assert any(c[0] == "set_piece_deadline" and big.piece_at(start) <= c[1] <= big.last_piece
               for c in calls), calls
    resp.close()  # the player goes away
    await wait_for(lambda: not s.stream.readers(tid), 10)
    assert calls[-1][0] == "clear_piece_deadlines" and calls[-1][1]
    assert s.stream._reader(tid).deadlines == {}
    # libtorrent leaves a piece whose deadline goes at priority 1; the engine restores 4
    def missing_priorities() -> set[int]:
        priorities = s.leecher._handles[tid].get_piece_priorities()
        return {p for p, h in zip(priorities, s.leecher.have_pieces(tid)) if not h}

    try:
        await wait_for(lambda: missing_priorities() == {4}, 10)
    except AssertionError:
        assert missing_priorities() == {4}  # shows what the pieces were left at


async def test_two_readers_at_once_each_get_their_bytes(swarm):
    s = swarm
    data = (s.album / "03 big.bin").read_bytes()
    url = s.stream.url(s.meta.id, index_of(s, "03 big.bin"))

    async def read(start, length):
        async with s.http.get(url, headers={"Range": f"bytes={start}-{start + length - 1}"}
                              ) as resp:
            return await resp.read()

    a, b = BIG // 3, 2 * BIG // 3
    got = await asyncio.gather(read(a, 150_000), read(b, 150_000))
    assert got == [data[a:a + 150_000], data[b:b + 150_000]]
    assert progress(s) < 0.9


@pytest.mark.parametrize("kind", ["opus", "mp3"])
async def test_ffmpeg_decodes_the_first_ten_seconds_while_it_downloads(swarm, kind):
    assert FFMPEG is not None, "ffmpeg is not installed: scripts/setup.sh installs it"
    s = swarm
    url = s.stream.url(s.meta.id, index_of(s, s.audio[kind].name))
    assert progress(s) < 0.5

    def decode(source: str) -> bytes:
        return subprocess.run([FFMPEG, "-v", "error", "-i", source, "-t", "10", "-f", "s16le",
                               "-ac", "1", "-ar", "48000", "-"], capture_output=True,
                              check=True, timeout=120).stdout

    expected = await asyncio.to_thread(decode, str(s.audio[kind]))
    got = await asyncio.to_thread(decode, url)
    assert len(expected) == 10 * 48000 * 2
    assert got == expected
    assert progress(s) < 0.5


async def test_a_download_moved_into_place_still_plays(swarm):
    s = swarm
    tid = s.meta.id
    url = s.stream.url(tid, index_of(s, "03 big.bin"))
    s.leecher.limit_download(0)
    await wait_for(lambda: any(e.kind == "finished" for e in s.events), 60)
    target = s.tmp / "out"
    s.leecher.move(tid, target)
    await wait_for(lambda: any(e.kind == "moved" for e in s.events), 30)
    assert not (s.staging / "album").exists()
    data = (s.album / "03 big.bin").read_bytes()
    async with s.http.get(url, headers={"Range": "bytes=1000-99999"}) as resp:
        assert await resp.read() == data[1000:100000]
    assert s.stream.describe(tid, complete=True)["playable"][0]["from_start"] == \
        s.audio["opus"].stat().st_size
