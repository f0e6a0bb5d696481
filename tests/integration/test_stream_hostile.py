"""A hostile share against obt play: a playlist dressed as audio (two sessions, no Tor).

An HLS playlist named ``song.mp3`` makes ffmpeg (and so ffplay, mpv and every player built
on it) fetch its segments from wherever the playlist points, whatever the file is called and
whatever ``Content-Type`` it is served with. The control shows that with a plain file server:
ffprobe connects to the address the playlist names. obt's server must refuse the same file,
and ffprobe reading obt's URL must connect nowhere.
"""

from __future__ import annotations

import asyncio
import shutil
import socket

import aiohttp
import pytest
from aiohttp import web

from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine
from onionshare_bt.stream.server import StreamService

FFPROBE = shutil.which("ffprobe") or "ffprobe"  # installed by scripts/setup.sh (ffmpeg)


def playlist(port: int) -> bytes:
    return (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
            f"http://127.0.0.1:{port}/seg.ts\n#EXT-X-ENDLIST\n").encode()


def id3_tag(body_len: int) -> bytes:
    n = body_len
    return b"ID3\x04\x00\x00" + bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F,
                                       n & 0x7F]) + b"\x00" * n


class Listener:
    """A loopback TCP listener that counts the connections made to it (the 'elsewhere')."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._server = None

    async def __aenter__(self):
        async def count(reader, writer):
            self.accepted += 1
            writer.close()
        self._server = await asyncio.start_server(count, sock=self.sock)
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        await self._server.wait_closed()


async def ffprobe(url: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        FFPROBE, "-v", "error", "-rw_timeout", "5000000", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(proc.wait(), 60)


@pytest.fixture
async def hostile(tmp_path):
    async with Listener() as elsewhere:
        share = tmp_path / "src" / "album"
        share.mkdir(parents=True)
        (share / "song.mp3").write_bytes(playlist(elsewhere.port))
        (share / "tagged.mp3").write_bytes(id3_tag(64) + playlist(elsewhere.port))
        meta = await asyncio.to_thread(create, share)
        seeder, leecher = Engine(bridged=False), Engine(bridged=False)
        await seeder.start()
        await leecher.start()
        stream = StreamService(leecher)
        try:
            seeder.add(meta, share.parent, seed=True)
            staging = tmp_path / "out"
            staging.mkdir()
            leecher.add(meta, staging)
            await stream.start()
            leecher.connect(meta.id, ("127.0.0.1", seeder.listen_port))
            yield share, meta, stream, elsewhere
        finally:
            await stream.close()
            await seeder.close()
            await leecher.close()


async def test_control_a_playlist_named_mp3_makes_ffprobe_connect_elsewhere(hostile):
    share, _, _, elsewhere = hostile
    app = web.Application()
    app.router.add_static("/", share)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for name in ("song.mp3", "tagged.mp3"):
            before = elsewhere.accepted
            await ffprobe(f"http://127.0.0.1:{port}/{name}")
            assert elsewhere.accepted > before, name  # the attack is real
    finally:
        await runner.cleanup()


async def test_obt_refuses_it_and_ffprobe_connects_nowhere(hostile):
    _, meta, stream, elsewhere = hostile
    index = {f["path"].rsplit("/", 1)[-1]: f["index"] for f in stream.files(meta.id)}
    async with aiohttp.ClientSession() as http:
        for name in ("song.mp3", "tagged.mp3"):
            url = stream.url(meta.id, index[name])
            async with http.get(url) as resp:
                body = await resp.text()
                assert resp.status == 403, (name, body)
                assert "outside Tor" in body
            async with http.head(url) as resp:
                assert resp.status == 403
            await ffprobe(url)
    assert elsewhere.accepted == 0
    playable = {f["path"].rsplit("/", 1)[-1]: f["playable"] for f in stream.files(meta.id)}
    assert playable == {"song.mp3": False, "tagged.mp3": False}
