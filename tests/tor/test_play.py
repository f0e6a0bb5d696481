"""Issue 2.7: play while it arrives, on the private Tor network, through the CLI.

Node A shares an album: a 60 s tone as Ogg/Opus and as MP3 (made here with ffmpeg), then a
large random file. Node B, its download rate capped (``download_rate`` in its config.toml,
applied through ``Engine.limit_download``) so that the share takes about a minute, runs
``obt play URI --no-player``: while its download is under half done, ffmpeg reading B's
loopback URL decodes the first 10 s exactly as it decodes the source, range reads at random
offsets return the source's bytes, bad ranges get 416 and a wrong token 404, and the server
answers on 127.0.0.1 only. Once complete, the same file plays from the target folder.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import random
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

pytestmark = [pytest.mark.tor, pytest.mark.timeout(900)]

FFMPEG = shutil.which("ffmpeg")
RATE = 200_000  # bytes/s for node B: the album (~14 MB) takes ~70 s
BIG = 12 * 1024 * 1024
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/([A-Za-z0-9_-]{32})/(\d+)/[^/\s]+")


def make_album(root: Path) -> Path:
    album = root / "album"
    album.mkdir()
    for name, codec in (("01 tone.opus", "libopus"), ("02 tone.mp3", "libmp3lame")):
        subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i",
                        "sine=frequency=440:duration=60", "-c:a", codec, "-b:a", "128k",
                        str(album / name)], check=True, timeout=120)
    (album / "03 big.bin").write_bytes(secrets.token_bytes(BIG))
    return album


def decode(source: str, seconds: int = 10) -> bytes:
    """The first ``seconds`` of audio as 48 kHz mono s16le PCM."""
    return subprocess.run([FFMPEG, "-v", "error", "-i", source, "-t", str(seconds),
                           "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
                          capture_output=True, check=True, timeout=300).stdout


def fetch(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 300,
          host: str | None = None):
    """One HTTP request: (status, headers, body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(host or parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def row_of(node, torrent_id: str) -> dict:
    return next(r for r in node.json("list") if r["id"] == torrent_id)


def wait_until(predicate, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step)


@pytest.fixture(scope="module")
def album(tmp_path_factory) -> Path:
    if FFMPEG is None:
        pytest.fail("ffmpeg is missing: scripts/setup.sh installs it", pytrace=False)
    return make_album(tmp_path_factory.mktemp("play-src"))


@pytest.fixture(scope="module")
def capped_b(node_b):
    """Node B restarted with a download rate cap; restarted without it afterwards."""
    config = node_b.home / "config.toml"
    before = config.read_text() if config.exists() else None
    node_b.stop()
    node_b.configure(download_rate=RATE)
    node_b.start()
    yield node_b
    node_b.stop()
    if before is None:
        config.unlink()
    else:
        config.write_text(before)
    node_b.start()


@pytest.fixture(scope="module")
def playing(node_a, capped_b, album, tmp_path_factory):
    """A shares the album; B runs ``obt play URI --no-player`` (which starts the download)."""
    info = node_a.json("share", str(album), "--keep-metadata")
    out = tmp_path_factory.mktemp("play-out")
    started = time.monotonic()
    proc = capped_b.run("play", info["uri"], "-o", str(out), "--no-player", "--json")
    assert proc.returncode == 0, proc.stderr + capped_b.log()
    data = json.loads(proc.stdout)
    return SimpleNamespace(node=capped_b, share=info, data=data, out=out, album=album,
                           id=data["id"], url=data["url"], took=time.monotonic() - started)


def test_play_prints_a_loopback_url_with_an_unguessable_token(playing):
    data = playing.data
    assert URL.fullmatch(playing.url), playing.url
    assert data["id"] == playing.share["infohash"]
    assert data["file"]["path"] == "album/01 tone.opus" and data["file"]["playable"]
    assert data["file"]["type"] == "audio/ogg"
    assert {f["path"]: f["playable"] for f in data["files"]} == {
        "album/01 tone.opus": True, "album/02 tone.mp3": True, "album/03 big.bin": False}
    again = playing.node.run("play", playing.id[:12], "--print-url")  # by ID, text
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == playing.url  # one token per torrent for the node's life


def test_ffmpeg_decodes_the_first_ten_seconds_while_under_half_done(playing):
    node = playing.node
    assert row_of(node, playing.id)["progress"] < 0.5
    proc = node.run("play", playing.id, "02 tone.mp3", "--no-player")
    assert proc.returncode == 0, proc.stderr
    mp3_url = proc.stdout.strip()
    assert URL.fullmatch(mp3_url) and mp3_url.endswith("/02%20tone.mp3")
    for url, name in ((playing.url, "01 tone.opus"), (mp3_url, "02 tone.mp3")):
        expected = decode(str(playing.album / name))
        got = decode(url)
        assert len(expected) == 10 * 48000 * 2
        assert got == expected, name
    row = row_of(node, playing.id)
    assert row["state"] in ("downloading", "waiting for peers", "stalled")
    assert row["progress"] < 0.5, "decoded only after half the download"


def test_obt_list_shows_playable_files_and_how_far_ahead_of_a_reader(playing):
    node = playing.node
    big = next(f for f in playing.data["files"] if f["path"].endswith("big.bin"))
    parts = urllib.parse.urlsplit(playing.url)
    token = parts.path.split("/")[1]
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=300)
    conn.request("GET", f"/{token}/{big['index']}/big.bin", headers={"Range": "bytes=1000-"})
    resp = conn.getresponse()
    try:
        assert resp.status == 206
        assert resp.read(10) == (playing.album / "03 big.bin").read_bytes()[1000:1010]
        row = wait_until(lambda: (r := row_of(node, playing.id))["stream"]["readers"] and r,
                         60)
        reader = row["stream"]["readers"][0]
        assert reader["path"] == "album/03 big.bin" and reader["position"] >= 1000
        assert reader["ahead"] >= 0
        playable = {f["path"]: f for f in row["stream"]["playable"]}
        assert set(playable) == {"album/01 tone.opus", "album/02 tone.mp3"}
        assert playable["album/01 tone.opus"]["from_start"] > 0
        text = node.run("list").stdout
        assert "playable: album/01 tone.opus" in text and "reader: album/03 big.bin at" in text
    finally:
        conn.close()
    wait_until(lambda: not row_of(node, playing.id)["stream"]["readers"], 60)


def test_range_reads_at_random_offsets_return_the_source_bytes(playing):
    rng = random.Random(27)
    by_name = {f["path"].rsplit("/", 1)[1]: f for f in playing.data["files"]}
    base = playing.url.rsplit("/", 2)[0]
    for name in ("01 tone.opus", "03 big.bin", "02 tone.mp3", "03 big.bin", "03 big.bin"):
        data = (playing.album / name).read_bytes()
        start = rng.randrange(len(data))
        end = min(len(data) - 1, start + rng.randrange(1, 100_000))
        status, headers, body = fetch(f"{base}/{by_name[name]['index']}/x",
                                      headers={"Range": f"bytes={start}-{end}"})
        assert status == 206, name
        assert headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
        assert body == data[start:end + 1], (name, start, end)


def test_bad_ranges_get_416_and_a_wrong_token_404(playing):
    size = (playing.album / "01 tone.opus").stat().st_size
    for bad in (f"bytes={size}-", f"bytes={size + 1}-{size + 100}", "bytes=50-10",
                "bytes=0-1,10-20", "bytes=abc", "bytes=-0"):
        status, headers, _ = fetch(playing.url, headers={"Range": bad})
        assert status == 416, bad
        assert headers["content-range"] == f"bytes */{size}"
    status, headers, body = fetch(playing.url, "HEAD")
    assert status == 200 and headers["content-length"] == str(size) and body == b""
    token = urllib.parse.urlsplit(playing.url).path.split("/")[1]
    for other in (playing.url.replace(token, secrets.token_urlsafe(24)),
                  playing.url.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B")),
                  playing.url.replace(f"/{token}/", "/")):
        status, _, body = fetch(other)
        assert (status, body) == (404, b"404: Not Found")


def test_the_endpoint_answers_on_loopback_only(playing):
    port = int(URL.fullmatch(playing.url).group(1))
    pid = playing.node.json("node", "status")["pid"]
    listening = {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    # the media server's socket; the node's bridges listen on other 127/8 addresses, and one
    # of their (random) ports may equal this one: those are loopback too
    assert "127.0.0.1" in listening and "0.0.0.0" not in listening and "::" not in listening
    assert all(ipaddress.ip_address(ip).is_loopback for ip in listening), listening
    others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
              if a.family in (socket.AF_INET, socket.AF_INET6)
              and not ipaddress.ip_address(a.address.split("%")[0]).is_loopback]
    for address in others + ["::1"]:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            assert sock.connect_ex((address.split("%")[0], port)) != 0, address


def test_a_finished_download_plays_from_its_target_folder(playing):
    node = playing.node
    wait_until(lambda: row_of(node, playing.id)["state"] == "complete", 300, step=2)
    assert sorted(p.name for p in playing.out.iterdir()) == ["album"]  # staging gone
    proc = node.run("play", playing.id, "--no-player", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["url"] == playing.url and data["state"] == "complete"
    status, _, body = fetch(data["url"])
    assert status == 200 and body == (playing.album / "01 tone.opus").read_bytes()
    assert (playing.out / "album" / "01 tone.opus").read_bytes() == body
    row = row_of(node, playing.id)
    assert all(f["from_start"] == f["size"] for f in row["stream"]["playable"])


def test_a_playlist_dressed_as_audio_starts_no_player_and_nothing_leaves(
        node_a, playing, sinkhole, tmp_path):
    """A hostile share: ``song.mp3`` is an HLS playlist whose segment is on a clearnet
    address (the sinkhole's). ffprobe given it would fetch the segment outside Tor
    (tests/integration/test_stream_hostile.py shows it with a plain server); through
    ``obt play`` no player starts, the reason is shown, and nothing leaves."""
    folder = tmp_path / "disguise"
    folder.mkdir()
    (folder / "song.mp3").write_bytes(b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                                      b"http://192.0.2.7/seg.ts\n#EXT-X-ENDLIST\n")
    info = node_a.json("share", str(folder), "--keep-metadata")
    mark = sinkhole.mark() if sinkhole else None
    node = playing.node
    proc = node.run("play", info["uri"], "-o", str(tmp_path / "out"),
                    "--player", "ffprobe -v error")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "outside Tor" in proc.stderr and "obt starts no player on it" in proc.stderr
    url = URL.search(proc.stdout).group(0)
    status, _, body = fetch(url)
    assert status == 403 and b"outside Tor" in body
    row = next(r for r in node.json("list") if r["name"] == "disguise")
    assert row["stream"]["playable"] == []
    if sinkhole:
        count, seen = sinkhole.report(mark)
        assert count == 0, f"{count} packet(s) left the namespace: {seen}"
