"""What makes a download's first byte come sooner, with real libtorrent sessions and
bridges (the dial connects to the seeder's inbound listener through a loopback tap that
records what the downloader's side sends, instead of Tor).

libtorrent dials a peer it is given (``connect``) only at its once-a-second round of
connection attempts. Two things take that wait off the first byte: a new download is added
with the share's own endpoint to dial (libtorrent dials it the moment the torrent starts:
a new download's empty folder is not checked first), and the bridge sends our handshake on
the stream dialled while the .torrent came, so the seeder's answer is under way before
libtorrent dials at all. What must hold: the handshake the engine predicts is libtorrent's
own but for the peer id (for a hybrid and a v1-only torrent); the seeder gets one handshake
only (libtorrent's is dropped); the download completes, every piece checked, on the stream
dialled ahead; a handshake that is not libtorrent's costs a new dial, never a broken
connection; and the endpoint a download is added with is the only thing it dials.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import libtorrent as lt
import pytest

from onionshare_bt.engine.metainfo import parse
from onionshare_bt.errors import TorrentError
from onionshare_bt.engine.session import Engine
from onionshare_bt.engine.settings import PEER_FINGERPRINT, handshake
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.multiplex.core import HANDSHAKE, PROTOCOL, share_alias

from .test_bridge_lanes import pair
from .test_peerwire_probe import fake_onion, listen_port, started, wait_for


def v1_only_torrent(folder, size=300_000):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.bin").write_bytes(secrets.token_bytes(size))
    creator = lt.create_torrent(lt.list_files(str(folder / "v1.bin")),
                                flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(creator, str(folder))
    entry = creator.generate()
    entry.pop(b"creation date", None)
    entry.pop(b"created by", None)
    return parse(lt.bencode(entry))


async def libtorrents_handshake(tmp_path, meta) -> bytes:
    """The 68 bytes libtorrent sends first when it dials a peer of ``meta``."""
    (engine,) = await started(Engine())
    got = asyncio.get_running_loop().create_future()

    async def on_connect(reader, writer):
        if not got.done():
            got.set_result(await reader.readexactly(HANDSHAKE))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        (tmp_path / "hs").mkdir(exist_ok=True)
        engine.add(meta, tmp_path / "hs")
        engine.connect(meta.id, ("127.0.0.1", server.sockets[0].getsockname()[1]))
        return await asyncio.wait_for(got, 10)
    finally:
        server.close()
        await engine.close()


async def test_the_predicted_handshake_is_libtorrents_own_but_for_the_peer_id(tmp_path):
    from .test_peerwire_probe import make_torrent

    for meta in (make_torrent(tmp_path / "hybrid", "h.bin", 300_000),
                 v1_only_torrent(tmp_path / "v1")):
        real = await libtorrents_handshake(tmp_path, meta)
        ours = handshake(bytes.fromhex(meta.id), has_v2=len(meta.info_hashes) > 1)
        assert len(ours) == HANDSHAKE and ours[:48] == real[:48], (meta.info_hashes, real, ours)
        assert ours[48:56] == real[48:56] == PEER_FINGERPRINT.encode()
        assert ours[48:] != handshake(bytes.fromhex(meta.id), True)[48:]  # fresh each time


class Tap:
    """A loopback TCP hop between the downloader's bridge and the seeder's inbound listener
    that keeps every byte the downloader's side sent, and when the first came."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = bytearray()
        self.first_at: float | None = None
        self.dials = 0
        self.asked: list[tuple[str, int]] = []  # (torrent_id, lane) of each dial
        self.server: asyncio.Server | None = None

    async def start(self) -> Tap:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def dial(self, onion, p, torrent_id, lane=0):
        self.dials += 1
        self.asked.append((torrent_id, lane))
        return await asyncio.open_connection("127.0.0.1",
                                             self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader, writer) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(self._copy(reader, up_w, record=True),
                             self._copy(up_r, writer, record=False))

    async def _copy(self, reader, writer, record: bool) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    if self.first_at is None:
                        self.first_at = asyncio.get_running_loop().time()
                    self.sent += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self.server.close()


@contextlib.asynccontextmanager
async def tapped(tmp_path, meta=None, seed_from=None, alias=None):
    """A seeder and a downloader, the downloader's bridges dialling through a :class:`Tap`;
    everything closed afterwards. Without ``meta``, :func:`pair`'s one-file torrent (the
    downloader has it added, no peer yet); with it, ``meta`` seeded from ``seed_from`` and
    not added to the downloader. With ``alias``, the seeder answers to it (a share's)."""
    if meta is None:
        seeder, leecher, meta, seed_bridges, port = await pair(tmp_path)
    else:
        seeder, leecher = await started(Engine(bridged=True), Engine(bridged=True))
        seeder.add(meta, seed_from, seed=True)
        seed_bridges = Bridges(None, seeder.listen_port)
        port = listen_port(await seed_bridges.inbound(meta.id, meta.info_hashes))
    if alias is not None:
        seed_bridges.answer_to(meta.id, alias, meta.info_hashes[0])
    tap = await Tap(port).start()
    bridges = Bridges(tap.dial, leecher.listen_port, info_hashes=leecher.info_hashes)
    try:
        yield leecher, meta, bridges, tap
    finally:
        tap.close()
        await bridges.close()
        await seed_bridges.close()
        await leecher.close()
        await seeder.close()


async def test_the_handshake_goes_ahead_and_libtorrents_own_is_dropped(tmp_path):
    async with tapped(tmp_path) as (leecher, meta, bridges, tap):
        onion = fake_onion()
        bridges.ahead.dial(onion, 6881)
        bridges.ahead.handshake(onion, 6881,
                                handshake(bytes.fromhex(meta.id), has_v2=True))
        await wait_for(lambda: len(tap.sent) >= HANDSHAKE, 10)
        asked_at = asyncio.get_running_loop().time()
        assert tap.first_at < asked_at  # before libtorrent was even given the endpoint
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 1  # the stream dialled ahead carried the download
        assert tap.sent[:len(PROTOCOL)] == PROTOCOL
        # one handshake: what follows it is length-prefixed messages, not a second one
        assert PROTOCOL not in bytes(tap.sent[HANDSHAKE:])
        (path,) = bridges.counters(meta.id)
        assert path.down > meta.size and path.failures == 0


async def test_a_handshake_naming_the_share_by_its_alias_goes_before_the_torrent_is_known(
        tmp_path):
    """A download names the share by the alias of its URI's token while the .torrent is
    still on its way; the share answers to it, and libtorrent, which names the info-hash,
    reads the share's handshake naming the info-hash: one dial, one handshake each way."""
    alias = share_alias("the-token")
    async with tapped(tmp_path, alias=alias) as (leecher, meta, bridges, tap):
        onion = fake_onion()
        bridges.ahead.dial(onion, 6881)
        bridges.ahead.handshake(onion, 6881, handshake(alias, has_v2=True))
        await wait_for(lambda: len(tap.sent) >= HANDSHAKE, 10)
        assert bytes(tap.sent[28:48]) == alias  # the info-hash is not known yet
        bridges.ahead.name(onion, 6881, handshake(bytes.fromhex(meta.id), has_v2=True))
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 1 and PROTOCOL not in bytes(tap.sent[HANDSHAKE:])
        (path,) = bridges.counters(meta.id)
        assert path.down > meta.size and path.failures == 0
        assert bridges.usage()["dialled_ahead"] == 1


async def test_a_share_that_does_not_answer_to_the_alias_costs_a_new_dial(tmp_path):
    """An obt from before aliases closes a stream whose handshake it does not know: the
    path dials again with libtorrent's handshake, and the download goes on."""
    async with tapped(tmp_path) as (leecher, meta, bridges, tap):  # no alias answered
        onion = fake_onion()
        bridges.ahead.dial(onion, 6881)
        bridges.ahead.handshake(onion, 6881, handshake(share_alias("t"), has_v2=True))
        bridges.ahead.name(onion, 6881, handshake(bytes.fromhex(meta.id), has_v2=True))
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 2
        (path,) = bridges.counters(meta.id)
        assert path.down > meta.size


async def test_a_share_whose_handshake_names_another_torrent_than_the_alias_is_cut(tmp_path):
    """A hostile share answers the alias with a handshake for some other torrent: our
    libtorrent never reads it (it would take it for its own torrent's peer), the
    connection is cut and the path says why."""
    from .test_bridge_lanes import pair as make_pair

    seeder, leecher, meta, seed_bridges, _port = await make_pair(tmp_path)
    heard = asyncio.get_running_loop().create_future()

    async def hostile(reader, writer):
        theirs = await reader.readexactly(HANDSHAKE)
        if not heard.done():
            heard.set_result(theirs)
        writer.write(theirs[:28] + b"\x07" * 20 + secrets.token_bytes(20))
        await writer.drain()
        await reader.read()  # whatever comes next: never answered
        writer.close()

    server = await asyncio.start_server(hostile, "127.0.0.1", 0)
    dials = []

    async def dial(onion, p, torrent_id, lane=0, isolation=None):
        dials.append(torrent_id)
        return await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])

    bridges = Bridges(dial, leecher.listen_port, info_hashes=leecher.info_hashes)
    try:
        onion, alias = fake_onion(), share_alias("u")
        bridges.ahead.dial(onion, 6881)
        bridges.ahead.handshake(onion, 6881, handshake(alias, has_v2=True))
        assert (await asyncio.wait_for(heard, 10))[28:48] == alias
        bridges.ahead.name(onion, 6881, handshake(bytes.fromhex(meta.id), has_v2=True))
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        (path,) = bridges.counters(meta.id)
        await wait_for(lambda: path.last_error, 10)
        assert path.last_error == "the share's handshake names another torrent"
        assert bridges.usage()["wrong_torrent"] == 1 and path.down == 0
        status = leecher.status(meta.id)
        assert status.connected == 0 and status.payload_down == 0
    finally:
        server.close()
        await bridges.close()
        await seed_bridges.close()
        await leecher.close()
        await seeder.close()


async def test_a_peer_an_announce_names_is_dialled_ahead_on_its_paths_own_circuits(tmp_path):
    """A peer named by an announce: its path's stream is dialled, with the path's own
    isolation (torrent, lane 0), and our handshake sent on it, before libtorrent dials;
    libtorrent's connection then takes that stream. Once a path has dialled, never again."""
    async with tapped(tmp_path) as (leecher, meta, bridges, tap):
        onion = fake_onion()
        ours = handshake(bytes.fromhex(meta.id), has_v2=True)
        assert not bridges.dial_ahead(meta.id, onion, 6881, ours)  # no such path yet
        endpoint = await bridges.outbound(meta.id, onion, 6881)
        assert bridges.dial_ahead(meta.id, onion, 6881, ours)
        assert not bridges.dial_ahead(meta.id, onion, 6881, ours)  # one stream per path
        await wait_for(lambda: len(tap.sent) >= HANDSHAKE, 10)
        assert tap.asked == [(meta.id, 0)]  # the circuits the path's own dial would use
        leecher.connect(meta.id, endpoint)
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 1 and PROTOCOL not in bytes(tap.sent[HANDSHAKE:])
        (path,) = bridges.counters(meta.id)
        assert path.connections == 1 and path.failures == 0 and path.down > meta.size
        assert not bridges.dial_ahead(meta.id, onion, 6881, ours)  # it has dialled


async def test_a_handshake_that_is_not_libtorrents_costs_a_new_dial(tmp_path):
    async with tapped(tmp_path) as (leecher, meta, bridges, tap):
        onion = fake_onion()
        wrong = bytearray(handshake(bytes.fromhex(meta.id), has_v2=True))
        wrong[len(PROTOCOL) + 7] = 0  # other reserved bits than libtorrent's
        bridges.ahead.dial(onion, 6881)
        bridges.ahead.handshake(onion, 6881, bytes(wrong))
        await wait_for(lambda: len(tap.sent) >= HANDSHAKE, 10)
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 2  # the stream with the wrong handshake closed, a new one dialled


async def test_a_new_download_dials_the_endpoint_it_is_added_with(tmp_path):
    async with tapped(tmp_path) as (leecher, meta, bridges, tap):
        leecher.remove(meta.id)  # pair() added it without an endpoint
        dest = tmp_path / "fresh"
        dest.mkdir()
        endpoint = await bridges.outbound(meta.id, fake_onion(), 6881)
        leecher.add(meta, dest, dial=(endpoint,))  # and no connect()
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert tap.dials == 1
        # nothing taken on trust: every piece came and was checked
        assert (dest / "f.bin").read_bytes() == (tmp_path / "src" / "f.bin").read_bytes()
        assert leecher.status(meta.id).payload_down >= meta.size


async def test_only_a_new_download_dials_as_it_is_added_and_only_a_bridge(tmp_path):
    from .test_peerwire_probe import make_torrent

    (engine,) = await started(Engine(bridged=True))
    meta = make_torrent(tmp_path / "src", "f.bin", 100_000)
    try:
        with pytest.raises(TorrentError, match="only a new download"):
            engine.add(meta, tmp_path / "src", seed=True, dial=(("127.64.0.9", 4000),))
        with pytest.raises(TorrentError, match="outside"):
            engine.add(meta, tmp_path, dial=(("127.0.0.1", 4000),))  # not a bridge endpoint
        with pytest.raises(TorrentError, match="outside"):
            engine.add(meta, tmp_path, dial=(("192.0.2.7", 6881),))
        assert not engine.has(meta.id)
    finally:
        await engine.close()


async def test_the_stream_dialled_ahead_rides_the_circuits_it_is_given(tmp_path):
    """A download dials the share's onion on the isolation of its .torrent fetch from that
    onion (one rendezvous for both); without one, on an isolation of its own."""
    asked = []

    async def dial(onion, p, torrent_id, lane=0, isolation=None):
        asked.append((torrent_id, isolation))
        raise OSError("no peer here")

    bridges = Bridges(dial, 0)
    try:
        bridges.ahead.dial(fake_onion(), 6881, isolation="fetch-key")
        bridges.ahead.dial(fake_onion(), 6881)
        await wait_for(lambda: len(asked) == 2, 10)
        assert asked[0] == ("", "fetch-key")
        assert asked[1][0].startswith("ahead-") and asked[1][1] is None
    finally:
        await bridges.close()


async def test_a_download_added_to_dial_at_once_has_its_empty_files_too(tmp_path):
    """libtorrent creates empty files when it checks a torrent's files, which a download
    added with an endpoint to dial skips: the engine makes them."""
    src = tmp_path / "src" / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "data.bin").write_bytes(secrets.token_bytes(700_000))
    (src / "empty.txt").write_bytes(b"")
    (src / "sub" / "zero.bin").write_bytes(b"")
    creator = lt.create_torrent(lt.list_files(str(src)))
    lt.set_piece_hashes(creator, str(src.parent))
    entry = creator.generate()
    entry.pop(b"creation date", None)
    meta = parse(lt.bencode(entry))
    async with tapped(tmp_path, meta, src.parent) as (leecher, meta, bridges, tap):
        dest = tmp_path / "dest"
        dest.mkdir()
        leecher.add(meta, dest, dial=(await bridges.outbound(meta.id, fake_onion(), 6881),))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        assert got == ["tree/data.bin", "tree/empty.txt", "tree/sub/zero.bin"]
        assert (dest / "tree" / "data.bin").read_bytes() == (src / "data.bin").read_bytes()
