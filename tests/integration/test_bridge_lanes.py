"""Lanes (more than one path to the same onion, each with its own endpoint and its own
dial) and the dial made ahead of a download, with real libtorrent sessions and bridges.

The dial function connects straight to the seeder's inbound listener instead of through
Tor, and records what it was asked: the node turns ``torrent_id`` and ``lane`` into the
SOCKS isolation of the stream (onionshare_bt.node.Node._dial), so a distinct pair is a
distinct circuit.
"""

from __future__ import annotations

import asyncio

from onionshare_bt.engine.session import Engine
from onionshare_bt.multiplex.bridge import Bridges

from .test_peerwire_probe import fake_onion, listen_port, make_torrent, started, wait_for


async def pair(tmp_path, size=4_000_000):
    seeder, leecher = await started(Engine(bridged=True), Engine(bridged=True))
    meta = make_torrent(tmp_path / "src", "f.bin", size)
    seeder.add(meta, tmp_path / "src", seed=True)
    (tmp_path / "dest").mkdir()
    leecher.add(meta, tmp_path / "dest")
    seed_bridges = Bridges(None, seeder.listen_port)
    port = listen_port(await seed_bridges.inbound(meta.id, meta.info_hashes))
    return seeder, leecher, meta, seed_bridges, port


async def test_two_lanes_to_one_onion_are_two_paths_and_a_dropped_one_is_gone(tmp_path):
    seeder, leecher, meta, seed_bridges, port = await pair(tmp_path)
    asked = []

    async def dial(onion, p, torrent_id, lane=0):
        asked.append((torrent_id, lane))
        return await asyncio.open_connection("127.0.0.1", port)

    bridges = Bridges(dial, leecher.listen_port, info_hashes=leecher.info_hashes)
    onion = fake_onion()
    try:
        leecher.session.apply_settings({"download_rate_limit": 500_000})
        first = await bridges.outbound(meta.id, onion, 6881)
        second = await bridges.outbound(meta.id, onion, 6881, lane=1)
        assert first != second and first[0] != second[0]  # two loopback endpoints
        assert await bridges.outbound(meta.id, onion, 6881, lane=1) == second  # the same path
        for endpoint in (first, second):
            leecher.connect(meta.id, endpoint)
        await wait_for(lambda: all(p.down > 0 for p in bridges.counters(meta.id)), 20)
        assert sorted(asked) == [(meta.id, 0), (meta.id, 1)]
        assert sorted(p.lane for p in bridges.counters(meta.id)) == [0, 1]
        assert leecher.status(meta.id).peers == 2  # the seeder admits both

        (lane1,) = [p for p in bridges.counters(meta.id) if p.lane == 1]
        await bridges.drop(lane1)
        assert [p.lane for p in bridges.counters(meta.id)] == [0]
        await wait_for(lambda: leecher.status(meta.id).peers == 1, 20)
        try:  # its endpoint no longer listens
            await asyncio.open_connection(*second)
            raise AssertionError("a dropped lane's endpoint still accepts connections")
        except OSError:
            pass
        leecher.session.apply_settings({"download_rate_limit": 0})
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
    finally:
        await bridges.close()
        await seed_bridges.close()
        await leecher.close()
        await seeder.close()


async def test_the_first_path_takes_the_stream_dialled_ahead(tmp_path):
    seeder, leecher, meta, seed_bridges, port = await pair(tmp_path)
    asked, opened = [], []

    async def dial(onion, p, torrent_id, lane=0):
        asked.append(torrent_id)
        opened.append(await asyncio.open_connection("127.0.0.1", port))
        return opened[-1]

    bridges = Bridges(dial, leecher.listen_port, info_hashes=leecher.info_hashes)
    onion = fake_onion()
    try:
        bridges.ahead.dial(onion, 6881)  # before the torrent is known
        await wait_for(lambda: len(opened) == 1, 10)
        (ahead,) = asked
        assert ahead.startswith("ahead-") and ahead != meta.id  # circuits of its own
        leecher.connect(meta.id, await bridges.outbound(meta.id, onion, 6881))
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert asked == [ahead]  # no second dial: the path used the stream dialled ahead
    finally:
        await bridges.close()
        await seed_bridges.close()
        await leecher.close()
        await seeder.close()


async def test_a_stream_dialled_ahead_and_never_taken_is_closed(tmp_path):
    accepted = []

    async def on_connect(reader, writer):
        accepted.append(reader)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def dial(onion, p, torrent_id, lane=0):
        return await asyncio.open_connection("127.0.0.1", port)

    bridges = Bridges(dial, 0)
    try:
        bridges.ahead.dial(fake_onion(), 6881)
        await wait_for(lambda: accepted, 10)
        bridges.ahead.forget("nobody", 6881)  # another key: nothing happens
        await bridges.close()  # what the node does when it stops
        assert await asyncio.wait_for(accepted[0].read(), 10) == b""  # the stream ended
    finally:
        server.close()
