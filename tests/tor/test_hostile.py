"""Hostile shares, trackers and peers, met through the CLI on the private network.

Each test puts node B (driven through `obt`) in front of an adversary that has onions of its
own on the private network (tests/tor/adversary.py) and does what a hostile party would: a
.torrent that names clearnet trackers, web seeds and DHT nodes; tracker replies carrying IP
peers, cookies, redirects, huge and malformed bodies; a BitTorrent peer sending a hostile
extension handshake, ut_holepunch connects, bogus messages and corrupt pieces. For each:
nothing leaves the namespace (the sinkhole counts no packet: asserted here and again by the
module's leak check), the node stays up and answers, the user gets a clear message, and
nothing of theirs is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import socket
import struct
import threading
import time
import urllib.parse
from pathlib import Path

import bencodepy
import libtorrent as lt
import pytest
from aiohttp import web

from onionshare_bt.multiplex.core import share_alias
from onionshare_bt.tracker.metafile import announce_url, with_trackers
from tests.tor.adversary import PEER_PORT

PROTOCOL = b"\x13BitTorrent protocol"
SETTLE = 8.0  # seconds a node is given to misbehave (libtorrent announces within ~1 s)


def share_on(node, root: Path, name: str, size: int):
    """A fresh share of ``size`` random bytes: its folder, ``obt share`` reply, .torrent."""
    src = root / name
    src.mkdir()
    (src / "data.bin").write_bytes(secrets.token_bytes(size))
    info = node.json("share", str(src))
    status, body = node.fetch_torrent(info["uri"])
    assert status == 200
    return src, info, body


@pytest.fixture
def real_share(node_a, tmp_path_factory):
    """A fresh 3 MiB share on node A: the real data the hostile .torrents point at."""
    return share_on(node_a, tmp_path_factory.mktemp("real"), "real-share", 3 * 1024 * 1024)


def sha256_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_no_leak(sinkhole, mark, what: str) -> None:
    count, seen = sinkhole.report(mark)
    assert count == 0, f"{what}: {count} packet(s) left the namespace: {seen}"


def assert_node_answers(node) -> None:
    started = time.monotonic()
    status = node.json("node", "status", timeout=30)
    assert status["pid"] and time.monotonic() - started < 30
    node.json("list", timeout=30)


def peer_dicts(onions: list[str]) -> list[dict]:
    return [{"ip": o, "port": PEER_PORT} for o in onions]


def local_torrent(root: Path, name: str, size: int = 64 * 1024) -> bytes:
    """A valid .torrent of fresh random data nobody seeds (metadata for tracker tests)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "f.bin").write_bytes(secrets.token_bytes(size))
    ct = lt.create_torrent(lt.list_files(str(folder)))
    lt.set_piece_hashes(ct, str(root))
    return lt.bencode(ct.generate())


# -- a share whose .torrent names clearnet trackers, web seeds and DHT nodes ----------------
HOSTILE_KEYS = {
    b"announce": b"http://tracker.hostile.example/announce",
    b"announce-list": [[b"http://tracker.hostile.example/announce"],
                       [b"udp://198.51.100.22:1337/announce"],
                       [b"udp://tracker2.hostile.example:1337"],
                       [b"http://198.51.100.23:6969/announce"]],
    b"url-list": [b"http://seed.hostile.example/", b"http://198.51.100.21/"],
    b"httpseeds": [b"http://httpseed.hostile.example/seed", b"http://198.51.100.24/seed"],
    b"nodes": [[b"dht.hostile.example", 6881], [b"198.51.100.20", 6881]],
}


def test_a_torrent_naming_clearnet_trackers_and_seeds_makes_no_packet(
        adversary, node_a, node_b, real_share, sinkhole, tmp_path):
    src, info, body = real_share
    hostile = bencodepy.decode(body)
    hostile.update(HOSTILE_KEYS)
    hostile_torrent = bencodepy.encode(hostile)
    token = secrets.token_urlsafe(24)
    seeders = peer_dicts(info["onions"])

    app = web.Application()
    app.router.add_get(f"/private/{token}", _constant(hostile_torrent))
    app.router.add_get(f"/private/{token}/announce",
                       _constant(bencodepy.encode({b"interval": 60, b"peers": seeders})))
    onion = adversary.onion(http=app)

    mark = sinkhole.mark()
    out = tmp_path / "out"
    proc = node_b.run("get", f"http://{onion}.onion/private/{token}", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr + node_b.log()
    assert sha256_tree(out / src.name) == sha256_tree(src)
    time.sleep(SETTLE)  # seeding now: a tracker or web seed would have been tried by now
    assert_no_leak(sinkhole, mark, "downloading and seeding a hostile .torrent")

    # on every restart too: the node re-adds the torrent from the bytes it stored
    node_b.stop()
    node_b.start()
    time.sleep(SETTLE)  # restored and seeding: a leak would show by now (none expected)
    assert_no_leak(sinkhole, mark, "restoring a hostile .torrent after a restart")
    assert sha256_tree(out / src.name) == sha256_tree(src)
    assert_node_answers(node_b)


# -- tracker replies: IP peers, cookies, redirects, huge and malformed bodies ---------------
def test_hostile_tracker_replies_are_refused_with_a_clear_message(
        adversary, node_a, node_b, real_share, sinkhole, tmp_path):
    src, info, body = real_share
    seeders = peer_dicts(info["onions"])
    cookie_probe = adversary.onion(http=_cookie_probe_app())
    metadata = {mode: local_torrent(tmp_path / "meta", mode)
                for mode in ("redirect", "huge", "malformed", "ippeers-only")}
    tokens = {mode: secrets.token_urlsafe(24) for mode in (*metadata, "cookie")}

    modes = {token: mode for mode, token in tokens.items()}

    def mode_of(request: web.Request) -> str:
        mode = modes.get(request.match_info["token"])
        if mode is None:
            raise web.HTTPNotFound()
        return mode

    async def torrent(request):
        mode = mode_of(request)
        response = web.Response(body=body if mode == "cookie" else metadata[mode])
        # a supercookie: set for every onion
        response.headers.add("Set-Cookie", "obt_track=victim-1; Domain=onion; Path=/")
        response.headers.add("Set-Cookie", f"obt_host=victim-1; Domain={cookie_probe}.onion")
        return response

    async def announce(request):
        mode = mode_of(request)
        if mode == "redirect":
            raise web.HTTPFound("http://198.51.100.31/announce?" + request.query_string)
        if mode == "huge":
            response = web.StreamResponse()
            await response.prepare(request)
            chunk = b"d5:peersl" + b"x" * (1024 * 1024)
            for _ in range(100):  # 100 MiB, streamed: the node must stop reading early
                try:
                    await response.write(chunk)
                except (ConnectionError, RuntimeError):
                    break
            return response
        if mode == "malformed":
            return web.Response(body=b"d8:intervali60e5:peersl\xff\xfe garbage")
        ip_peers = [{b"ip": b"198.51.100.30", b"port": 6881},
                    {b"ip": b"tracker.hostile.example", b"port": 80},
                    {b"ip": b"127.0.0.1", b"port": 22}]
        compact = socket.inet_aton("198.51.100.32") + struct.pack("!H", 6881)
        peers = ip_peers + ([] if mode == "ippeers-only" else seeders)
        reply = {b"interval": 60, b"peers": peers, b"peers6": b"\x20" * 18,
                 b"x-obt-trackers": [cookie_probe.encode()]}
        if mode == "ippeers-only":
            reply = {b"interval": 60, b"peers": compact, b"x-obt-trackers": []}
        return web.Response(body=bencodepy.encode(reply))

    app = web.Application()
    app.router.add_get("/private/{token}", torrent)
    app.router.add_get("/private/{token}/announce", announce)
    onion = adversary.onion(http=app)

    mark = sinkhole.mark()
    out = tmp_path / "out"
    # the cookie-setting tracker still hands out the real seeders: the download completes
    proc = node_b.run("get", f"http://{onion}.onion/private/{tokens['cookie']}",
                      "-o", str(out / "cookie"), "--json")
    assert proc.returncode == 0, proc.stderr + node_b.log()
    assert sha256_tree(out / "cookie" / src.name) == sha256_tree(src)

    ids = {}
    for mode in metadata:
        proc = node_b.run("get", f"http://{onion}.onion/private/{tokens[mode]}",
                          "-o", str(out / mode), "--no-wait", "--json")
        assert proc.returncode == 0, proc.stderr
        ids[mode] = json.loads(proc.stdout)["id"]

    expected = {"redirect": "HTTP 302", "huge": "larger than", "malformed": "",
                "ippeers-only": None}
    rows = _wait_rows(node_b, ids, lambda row, mode: expected[mode] is None
                      or (row.get("announce_error") or "") and expected[mode]
                      in row["announce_error"], timeout=120)
    for mode, row in rows.items():
        if expected[mode] is not None:
            assert row["announce_error"] and "\x1b" not in row["announce_error"], row
        assert row["state"] in ("downloading", "stalled", "waiting for peers"), row
    time.sleep(SETTLE)  # announcing on: a leak would show by now (none expected)
    assert_no_leak(sinkhole, mark, "taking hostile tracker replies")
    assert_node_answers(node_b)
    # the cookie came back to nobody: not to its own onion, not to the other onion
    cookies = [(o, h) for o, _, _, h in adversary.requests
               if "cookie" in {k.lower() for k in h}]
    assert cookies == []
    assert any(o == cookie_probe for o, *_ in adversary.requests), \
        "the reply's x-obt-trackers onion was never asked: the cookie check proved nothing"
    # nothing of the user's was lost: the completed download is still whole
    assert sha256_tree(out / "cookie" / src.name) == sha256_tree(src)
    for mode, tid in ids.items():
        proc = node_b.run("remove", tid, "--delete-data")
        assert proc.returncode == 0, proc.stderr


def _cookie_probe_app() -> web.Application:
    """An onion named as another tracker: it only records whether a cookie came along."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}",
                         _constant(bencodepy.encode({b"interval": 60, b"peers": []})))
    return app


def _constant(body: bytes):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body)

    return handler


def _wait_rows(node, ids: dict[str, str], ready, timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: r for r in node.json("list")}
        current = {mode: rows[tid] for mode, tid in ids.items()}
        if all(ready(row, mode) for mode, row in current.items()):
            return current
        if time.monotonic() > deadline:
            pytest.fail(f"no clear message within {timeout:.0f} s: {current}")
        time.sleep(1)


# -- a BitTorrent peer: hostile extension handshake, holepunch, bogus messages, bad pieces --
class HostilePeer:
    """Speaks BitTorrent to whoever dials its onion, as badly as it can."""

    def __init__(self, info_hash: bytes, num_pieces: int, holepunch_target: tuple[str, int],
                 alias: bytes = b""):
        self.info_hash, self.alias = info_hash, alias  # it is the share's onion: its alias
        self.num_pieces = num_pieces
        self.target = holepunch_target
        self.connections = 0
        self.requests = 0
        self.corrupt_sent = 0
        self.holepunch_sent = 0
        self.remote_extensions: dict = {}

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1
        try:
            await asyncio.wait_for(self._talk(reader, writer), 60)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def _talk(self, reader, writer):
        theirs = await reader.readexactly(68)
        named = theirs[28:48]
        assert named in (self.info_hash, self.alias)
        reserved = bytearray(8)
        reserved[5] |= 0x10
        writer.write(PROTOCOL + bytes(reserved) + named + secrets.token_bytes(20))
        ext = {b"m": {b"ut_holepunch": 4, b"ut_metadata": 3, b"ut_pex": 1, b"lt_donthave": 7},
               b"yourip": socket.inet_aton("198.51.100.40"), b"p": 6881,
               b"v": "\x1b[2J\x1b]0;pwned\x07evil".encode(), b"reqq": 2**31,
               b"ipv4": socket.inet_aton("198.51.100.41"), b"metadata_size": 2**40,
               b"x" * 200: b"y" * 4000}
        _send(writer, 20, b"\x00" + bencodepy.encode(ext))
        bits = bytearray((self.num_pieces + 7) // 8)
        for i in range(self.num_pieces):
            bits[i // 8] |= 0x80 >> (i % 8)
        _send(writer, 5, bytes(bits))
        _send(writer, 1)  # unchoke
        await writer.drain()
        # the rest only once the node talks: libtorrent drops a peer whose first bytes hold
        # an unknown message or an unrequested block before it says anything itself, and
        # then the holepunch and the garbage would prove nothing
        sent_holepunch = False
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            if length == 0:
                continue
            payload = await reader.readexactly(min(length, 1 << 20))
            msg = payload[0]
            if msg == 20 and payload[1] == 0:
                self.remote_extensions = bencodepy.decode(payload[2:])
            if not sent_holepunch and (msg == 20 or msg == 2):
                sent_holepunch = True
                self._holepunch(writer)
            if msg == 6:  # request: answer with garbage of the right length
                index, begin, size = struct.unpack("!III", payload[1:13])
                self.requests += 1
                _send(writer, 7, struct.pack("!II", index, begin) + secrets.token_bytes(size))
                self.corrupt_sent += 1
                await writer.drain()
                if self.corrupt_sent >= 40:
                    _send(writer, 99, b"\x00" * 50)  # an unknown message
                    _send(writer, 7, struct.pack("!II", 0, 0) + b"unrequested block")
                    writer.write(struct.pack("!I", 0x7FFFFFF0) + b"\x07")  # an absurd length
                    await writer.drain()
                    return

    def _holepunch(self, writer) -> None:
        """BEP 55: ask the node to connect to a loopback endpoint of our choosing."""
        host, port = self.target
        ids = self.remote_extensions.get(b"m", {}) if self.remote_extensions else {}
        ext_id = ids.get(b"ut_holepunch", 4) or 4
        for msg_type in (1, 0):  # connect, then rendezvous
            body = bytes([msg_type, 0]) + socket.inet_aton(host) + struct.pack("!H", port)
            _send(writer, 20, bytes([ext_id]) + body)
            self.holepunch_sent += 1


def _send(writer, msg_id: int, payload: bytes = b"") -> None:
    writer.write(struct.pack("!IB", len(payload) + 1, msg_id) + payload)


class Listener:
    """A loopback TCP listener that counts whoever connects (the holepunch target)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_a_hostile_peer_cannot_redirect_poison_or_crash_a_download(
        adversary, node_a, node_b, sinkhole, tmp_path_factory, tmp_path):
    src, info, body = share_on(node_a, tmp_path_factory.mktemp("peer-src"), "peer-share",
                               6 * 1024 * 1024)
    ti = lt.torrent_info(body)
    listener = Listener()
    token = secrets.token_urlsafe(24)
    peer = HostilePeer(ti.info_hashes().v1.to_bytes(), ti.num_pieces(), listener.address,
                       alias=share_alias(token))
    holder: dict[str, str] = {}
    replies = []

    async def announce(request):
        # the hostile peer alone until it had its say (or three announces went by: then
        # the assertions below say it never did), then the real seeders too, so the download
        # can finish; a short interval, so the node asks again soon
        replies.append(time.monotonic())
        peers = peer_dicts([holder["onion"]])
        if peer.holepunch_sent or len(replies) > 3:
            peers += peer_dicts(info["onions"])
        return web.Response(body=bencodepy.encode({b"interval": 5, b"peers": peers}))

    app = web.Application()
    app.router.add_get(f"/private/{token}", _constant(body))
    app.router.add_get(f"/private/{token}/announce", announce)
    holder["onion"] = adversary.onion(http=app, peer=peer)

    mark = sinkhole.mark()
    out = tmp_path / "out"
    try:
        proc = node_b.run("get", f"http://{holder['onion']}.onion/private/{token}",
                          "-o", str(out), "--json")
        assert proc.returncode == 0, proc.stderr + node_b.log()
        assert sha256_tree(out / src.name) == sha256_tree(src)
        assert peer.connections >= 1, "the hostile peer was never dialled: it proved nothing"
        assert peer.holepunch_sent >= 1, (peer.connections, peer.requests, node_b.log())
        assert peer.corrupt_sent >= 1, "the node never asked the hostile peer for a block"
        time.sleep(SETTLE / 2)  # a dial would come within milliseconds (none expected)
        assert listener.accepted == 0, "a ut_holepunch message made the engine dial"
    finally:
        listener.close()
    assert_no_leak(sinkhole, mark, "talking to a hostile peer")
    assert_node_answers(node_b)
    # B never advertised ut_holepunch, and told nothing constant about itself
    ext = peer.remote_extensions
    if ext:
        assert b"ut_holepunch" not in ext.get(b"m", {})
        assert not {b"yourip", b"p", b"v", b"ipv4", b"ipv6"} & set(ext)


class WithholdingPeer:
    """Has every piece, unchokes, takes requests and never sends a block: it keeps the line
    alive with a keep-alive every few seconds, so no byte counter ever calls it silent."""

    def __init__(self, info_hash: bytes, num_pieces: int, alias: bytes = b"") -> None:
        self.info_hash, self.alias = info_hash, alias  # it is the share's onion: its alias
        self.num_pieces = num_pieces
        self.connections = 0
        self.requests = 0
        self.ended_by_them = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1
        keep_alive = None
        try:
            theirs = await reader.readexactly(68)
            named = theirs[28:48]
            assert named in (self.info_hash, self.alias)
            writer.write(PROTOCOL + bytes(8) + named + secrets.token_bytes(20))
            bits = bytearray((self.num_pieces + 7) // 8)
            for i in range(self.num_pieces):
                bits[i // 8] |= 0x80 >> (i % 8)
            _send(writer, 5, bytes(bits))
            _send(writer, 1)  # unchoke
            await writer.drain()
            keep_alive = asyncio.ensure_future(self._keep_alive(writer))
            while True:
                (length,) = struct.unpack("!I", await reader.readexactly(4))
                payload = await reader.readexactly(min(length, 1 << 20)) if length else b""
                if payload[:1] == b"\x06":
                    self.requests += 1
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.ended_by_them += 1
        finally:
            if keep_alive is not None:
                keep_alive.cancel()
            writer.close()

    @staticmethod
    async def _keep_alive(writer) -> None:
        while True:
            await asyncio.sleep(4)
            writer.write(b"\x00\x00\x00\x00")
            await writer.drain()


def test_the_onions_a_shares_torrent_names_are_dialled_as_it_starts_and_nothing_else(
        adversary, real_share, node_b, sinkhole, tmp_path):
    """A download dials the share's other onions as its .torrent names them (the first
    tier of its trackers, with the URI's token), before any announce: here the tracker
    answers every announce with no peer at all, and the .torrent names the real seeder's
    onions, so the download can only complete through them. What a share names there it
    could name in an announce reply too; an IP address or another token's URL is dialled
    never (no packet leaves; `tests/unit/test_share_onions.py` has the rest)."""
    src, info, body = real_share
    seeders = [o.removesuffix(".onion") for o in info["onions"]]
    token = secrets.token_urlsafe(24)
    announces = []

    async def announce(request):
        announces.append(time.monotonic())
        return web.Response(body=bencodepy.encode({b"interval": 30, b"peers": []}))

    holder: dict[str, str] = {}

    async def torrent(request):
        tiers = [[announce_url(o, token) for o in [holder["onion"], *seeders]],
                 ["http://192.0.2.7/announce"]]
        return web.Response(body=with_trackers(body, tiers))

    app = web.Application()
    app.router.add_get(f"/private/{token}", torrent)
    app.router.add_get(f"/private/{token}/announce", announce)
    holder["onion"] = adversary.onion(http=app)  # it serves no peers itself

    mark = sinkhole.mark()
    out = tmp_path / "out"
    proc = node_b.run("get", f"http://{holder['onion']}.onion/private/{token}",
                      "-o", str(out), "--json", timeout=240)
    assert proc.returncode == 0, proc.stderr + node_b.log()
    assert sha256_tree(out / src.name) == sha256_tree(src)
    assert announces, "the node never announced: the test proved nothing about announces"
    peers = node_b.json("list", "--peers", info["infohash"])
    dialled = {p["onion"] for p in peers["paths"] if p["direction"] == "out" and p["down"]}
    assert dialled and dialled <= set(seeders), peers["paths"]
    assert_no_leak(sinkhole, mark, "a .torrent naming onions and an IP tracker")
    assert_node_answers(node_b)


def test_a_peer_that_keeps_the_line_alive_but_never_sends_a_block_is_dropped_and_redialled(
        adversary, node_a, node_b, sinkhole, tmp_path_factory, tmp_path):
    """Issue 12: a path that carries nothing we asked for is dead, even if keep-alives
    cross it. Without the owed-blocks watch the connection would stay up for good (libtorrent
    only snubs such a peer) and the download would wait on it with no word."""
    src, info, body = share_on(node_a, tmp_path_factory.mktemp("held-src"), "held-share",
                               1024 * 1024)
    ti = lt.torrent_info(body)
    token = secrets.token_urlsafe(24)
    peer = WithholdingPeer(ti.info_hashes().v1.to_bytes(), ti.num_pieces(),
                           alias=share_alias(token))
    holder: dict[str, str] = {}

    async def announce(request):  # only the withholding peer: nobody else to fall back on
        return web.Response(body=bencodepy.encode(
            {b"interval": 30, b"peers": peer_dicts([holder["onion"]])}))

    app = web.Application()
    app.router.add_get(f"/private/{token}", _constant(body))
    app.router.add_get(f"/private/{token}/announce", announce)
    holder["onion"] = adversary.onion(http=app, peer=peer)

    mark = sinkhole.mark()
    started = node_b.json("get", f"http://{holder['onion']}.onion/private/{token}",
                          "-o", str(tmp_path / "out"), "--no-wait")
    tid = started["id"]
    try:
        deadline = time.monotonic() + 120
        while peer.requests == 0:
            assert time.monotonic() < deadline, "node B never asked the peer for a block"
            time.sleep(0.5)
        asked = time.monotonic()
        # the 30 s window, the 2 s watch, a redial through Tor
        while peer.connections < 2:
            assert time.monotonic() - asked < 90, (
                "a connection that owed blocks and brought none for 90 s was kept: "
                f"{peer.connections} connection(s), {peer.ended_by_them} ended; "
                + node_b.run("list", "--peers", tid).stdout)
            time.sleep(0.5)
        assert peer.ended_by_them >= 1
        row = next(r for r in node_b.json("list") if r["id"] == tid)
        assert row["state"] != "complete" and row["done"] == 0
        assert "silent connection" in (row["reason"] or ""), row
        assert node_b.json("node", "status")["silent_closed"] >= 1
    finally:
        node_b.run("remove", tid, "--delete-data")
    assert_no_leak(sinkhole, mark, "a peer that withholds every block")
    assert_node_answers(node_b)


# -- a trusted node whose catalogue carries terminal escapes and huge fields ----------------
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m\u202eevil\u2066\x9b1m\x7f"


def test_a_trusted_node_with_a_hostile_catalogue_cannot_reach_the_terminal(
        adversary, node_b, sinkhole):
    token = secrets.token_urlsafe(24)
    holder: dict[str, str] = {}

    def item(name: str, **extra) -> dict:
        return {"name": name, "size": 1000, "infohash": secrets.token_hex(20),
                "uri": f"http://{holder['onion']}.onion/private/{secrets.token_urlsafe(24)}",
                "added": 1, "files": 1, **extra}

    async def node(request):
        return web.json_response({"onion": holder["onion"], "trusts": [],
                                  "catalogue": f"/public/{token}",
                                  "name": ESCAPES * 1000, "version": ESCAPES})

    async def catalogue(request):
        items = [item(f"hostilesong {ESCAPES} one"),
                 item("hostilesong " + "A" * 100_000),
                 item("hostilesong three", description=ESCAPES * 5_000),
                 item("hostilesong five", description=f"{ESCAPES} night " * 60),
                 item("hostilesong four", size="big"),
                 item(f"hostilesong{ESCAPES}" * 40)]
        return web.json_response({"items": items, "padding": "x" * 200_000})

    app = web.Application()
    app.router.add_get("/node", node)
    app.router.add_get(f"/public/{token}", catalogue)
    holder["onion"] = adversary.onion(http=app)

    mark = sinkhole.mark()
    added = node_b.run("trust", "add", holder["onion"])
    assert added.returncode == 0, added.stderr
    try:
        proc = node_b.run("search", "hostilesong")
        assert proc.returncode == 0, proc.stderr
        found = node_b.json("search", "hostilesong")
    finally:
        node_b.run("trust", "remove", holder["onion"])
    text = proc.stdout + proc.stderr
    for bad in ("\x1b", "\x07", "\u202e", "\u2066", "\x9b", "\x7f"):
        assert bad not in text, f"{bad!r} reached the terminal"
    assert "hostilesong" in proc.stdout, "no result was shown: the check proved nothing"
    assert max(len(line) for line in text.splitlines()) <= 400
    names = [r["name"] for r in found["results"]]
    assert names and all(len(n) <= 255 for n in names)
    assert not any(c in n for n in names for c in "\x1b\x07\u202e\u2066\x9b\x7f")
    described = [r["description"] for r in found["results"] if r["description"]]
    assert described and all(len(d) <= 1024 and "night" in d for d in described)  # cleaned
    assert not any(c in d for d in described for c in "\x1b\x07\u202e\u2066\x9b\x7f")
    assert_no_leak(sinkhole, mark, "searching a hostile catalogue")
    assert_node_answers(node_b)


# -- a stranger flooding the mirror sync endpoint -------------------------------------------
def _fake_onions(count: int) -> list[str]:
    from onionshare_bt.onion import onion_from_pubkey

    return [onion_from_pubkey(secrets.token_bytes(32)) for _ in range(count)]


def _observed(adversary, uri: str, infohash: str) -> dict:
    """What the tracker at **uri** gives an observer (no onion of its own: seeders only)."""
    observer = urllib.parse.urlencode({"info_hash": bytes.fromhex(infohash),
                                       "peer_id": secrets.token_bytes(20), "uploaded": 0,
                                       "downloaded": 0, "left": 1, "numwant": 200})
    status, _, body = adversary.request("GET", f"{uri}/announce?{observer}")
    assert status == 200, status
    return bencodepy.decode(body)


def test_a_sync_flood_from_a_stranger_is_refused_and_the_node_answers(
        adversary, node_a, node_b, sinkhole, tmp_path_factory, tmp_path):
    from onionshare_bt.mirror.core import encode_request

    src, info, _ = share_on(node_a, tmp_path_factory.mktemp("public-src"), "public-share",
                            256 * 1024)
    public_uri = node_a.json("publish", "--public", info["infohash"])["public_uri"]
    proc = node_b.run("get", info["uri"], "-o", str(tmp_path / "b"), "--json")
    assert proc.returncode == 0, proc.stderr
    real = next(r for r in node_b.json("list") if r["id"] == info["infohash"])["onions"]
    real = {o.removesuffix(".onion") for o in real}
    infohash = info["infohash"]
    # B completed, and said so at once (not an announce interval later): A's tracker gives
    # B's onions to an observer, who is given seeders only
    deadline = time.monotonic() + 30
    while not real <= {p[b"ip"].decode().removesuffix(".onion")
                       for p in _observed(adversary, info["uri"], infohash)[b"peers"]}:
        assert time.monotonic() < deadline, \
            "B's completed download is not listed as a seeder: " + node_b.log()
        time.sleep(0.5)
    me = adversary.onion(http=_cookie_probe_app())

    mark = sinkhole.mark()
    floods = {
        "5000 peers": [[infohash, o, 6881, -1, 0] for o in _fake_onions(5000)],
        "400 peers": [[infohash, o, 6881, 0, 0] for o in _fake_onions(400)],
        "stop the real peers": [[infohash, o, 6881, -1, 0] for o in sorted(real)],
    }
    answers = {}
    slowest = 0.0
    for name, peers in floods.items():
        body = encode_request(me, "", 0, 0, []).replace(
            b'"peers": []', b'"peers": ' + json.dumps(peers).encode())
        for headers in ({}, {"X-Obt-Mirror-Auth": "v1 " + "A" * 200}):
            status, _, _ = adversary.request("POST", f"{public_uri}/sync", body, headers)
            answers[(name, bool(headers))] = status
            started = time.monotonic()
            node_a.json("list", timeout=30)
            slowest = max(slowest, time.monotonic() - started)
    status, _, reply = adversary.request("POST", f"{public_uri}/sync",
                                         encode_request(me, "", 0, 0, []))
    for key, refused in answers.items():
        assert refused in (403, 413), (key, refused)
    assert status == 200 and json.loads(reply)["registered"] is False, reply
    assert slowest < 10, f"obt list took {slowest:.1f} s during the flood"

    # a stranger's "stopped" for a real peer's onion changes nothing either
    onion = next(iter(real))
    query = urllib.parse.urlencode({"info_hash": bytes.fromhex(infohash),
                                    "peer_id": secrets.token_bytes(20),
                                    "ip": f"{onion}.onion", "port": 6881, "uploaded": 0,
                                    "downloaded": 0, "left": 0, "event": "stopped"})
    status, _, _ = adversary.request("GET", f"{info['uri']}/announce?{query}")
    assert status == 200
    reply = _observed(adversary, info["uri"], infohash)
    listed = {p[b"ip"].decode().removesuffix(".onion") for p in reply[b"peers"]}
    assert real <= listed, "a stranger removed a real peer"
    assert listed <= real | {o.removesuffix(".onion") for o in info["onions"]}, \
        "a stranger's peers were listed"
    named = [t.decode() for t in reply.get(b"x-obt-trackers", [])]
    assert me not in " ".join(named), "a stranger was named as a mirror"
    assert_no_leak(sinkhole, mark, "a sync flood")
    assert_node_answers(node_a)
