"""The bridges under load from the network: endpoint caps, handshake checks, waiting peers."""

from __future__ import annotations

import asyncio
import os

import pytest

from onionshare_bt.engine.session import Engine
from onionshare_bt.errors import NodeError, ObtError
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.multiplex.core import MAX_ENDPOINTS_PER_TORRENT, MAX_PENDING_PER_LISTENER

from .test_peerwire_probe import fake_onion, listen_port, make_torrent, started, wait_for


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def never_dial(onion, port, torrent_id, lane=0):
    raise AssertionError("nothing should be dialled")


async def test_two_thousand_announced_onions_stay_under_the_caps():
    bridges = Bridges(never_dial, 0)
    before = open_fds()
    torrents = [f"{i:040x}" for i in range(40)]
    seen_hosts: set[str] = set()
    try:
        for n in range(2000):  # a hostile tracker's replies: one torrent gets most of them
            torrent = torrents[0] if n < 1200 else torrents[n % 40]
            host, _ = await bridges.outbound(torrent, fake_onion(), 6881)
            assert host not in seen_hosts  # an address is never reused for another onion
            seen_hosts.add(host)
            if n == 1199:  # one torrent's flood only ever replaces its own endpoints
                usage = bridges.usage()
                assert usage["outbound_per_torrent_max"] == MAX_ENDPOINTS_PER_TORRENT
                assert usage["outbound_endpoints"] == MAX_ENDPOINTS_PER_TORRENT
                assert usage["outbound_evicted"] == 1200 - MAX_ENDPOINTS_PER_TORRENT
        usage = bridges.usage()
        assert usage["outbound_cap"] <= 512 and usage["outbound_endpoints"] == usage["outbound_cap"]
        assert usage["outbound_per_torrent_cap"] == MAX_ENDPOINTS_PER_TORRENT
        assert usage["outbound_per_torrent_max"] <= MAX_ENDPOINTS_PER_TORRENT
        assert usage["outbound_evicted"] == 2000 - usage["outbound_endpoints"]
        assert usage["outbound_refused"] == 0
        assert len(bridges.counters()) == usage["outbound_endpoints"]
        assert open_fds() - before <= usage["outbound_endpoints"] + 8
    finally:
        await bridges.close()


async def test_a_torrent_whose_endpoints_are_all_busy_refuses_more():
    bridges = Bridges(never_dial, 0)
    torrent = "ab" * 20
    held = []
    try:
        for _ in range(MAX_ENDPOINTS_PER_TORRENT):
            host, port = await bridges.outbound(torrent, fake_onion(), 6881)
            held.append(await asyncio.open_connection(host, port))  # waits for a handshake
        await wait_for(lambda: all(p.connections for p in bridges.counters(torrent)), 10)
        with pytest.raises(NodeError) as caught:
            await bridges.outbound(torrent, fake_onion(), 6881)
        assert isinstance(caught.value, ObtError) and "busy" in caught.value.message
        assert bridges.usage()["outbound_refused"] == 1
        await bridges.outbound("cd" * 20, fake_onion(), 6881)  # other torrents still have room
    finally:
        for _, writer in held:
            writer.close()
        await bridges.close()


@pytest.mark.parametrize("exact", [True, False], ids=["engine-hashes", "fallback"])
async def test_outbound_endpoint_refuses_libtorrent_handshake_for_another_torrent(tmp_path, exact):
    """libtorrent dialling torrent A's endpoint for torrent B reaches nothing.

    ``fallback``: bridges made without the engine's hashes (older callers) still refuse a
    hash they know belongs to another torrent of theirs.
    """
    (engine,) = await started(Engine(bridged=True))
    dialled = []

    async def dial(onion, port, torrent_id, lane=0):
        dialled.append(torrent_id)
        raise OSError("test: no dialling")

    bridges = Bridges(dial, engine.listen_port,
                      info_hashes=engine.info_hashes if exact else None)
    try:
        a = make_torrent(tmp_path / "a", "a.bin", 100_000)
        b = make_torrent(tmp_path / "b", "b.bin", 100_000)
        for meta in (a, b):
            (tmp_path / f"dest-{meta.id}").mkdir()
            engine.add(meta, tmp_path / f"dest-{meta.id}")
        endpoint = await bridges.outbound(a.id, fake_onion(), 6881)
        await bridges.outbound(b.id, fake_onion(), 6881)
        engine.connect(b.id, endpoint)  # what a holepunch to another torrent's endpoint does
        await wait_for(lambda: bridges.usage()["wrong_torrent"] == 1, 20)
        (path,) = bridges.counters(a.id)
        assert path.failures == 1 and "another torrent" in path.last_error
        assert dialled == []
        engine.connect(a.id, endpoint)  # its own torrent goes through to the dial
        await wait_for(lambda: dialled == [a.id], 20)
    finally:
        await bridges.close()
        await engine.close()


async def test_inbound_listener_caps_connections_waiting_for_a_handshake(tmp_path):
    bridges = Bridges(None, 0)
    path = await bridges.inbound("t", (b"\x01" * 20,))
    port = listen_port(path)
    conns = []
    try:
        for _ in range(MAX_PENDING_PER_LISTENER):
            conns.append(await asyncio.open_connection("127.0.0.1", port))
        await wait_for(lambda: bridges.usage()["pending_handshakes"] == MAX_PENDING_PER_LISTENER,
                       10)
        extra = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        for reader, _ in extra:  # closed at once, nothing read
            assert await asyncio.wait_for(reader.read(), 10) == b""
        usage = bridges.usage()
        assert usage["pending_refused"] == 5
        assert usage["pending_handshakes"] == MAX_PENDING_PER_LISTENER
        conns.extend(extra)
    finally:
        for _, writer in conns:
            writer.close()
        await bridges.close()


async def test_reconnection_after_a_v2_upgrade_passes_the_handshake_check(tmp_path):
    """A hybrid torrent's peer upgraded to v2 is redialled with the truncated v2 hash."""
    seeder, leecher = await started(Engine(bridged=True), Engine(bridged=True))
    meta = make_torrent(tmp_path / "src", "f.bin", 2_000_000)
    seeder.add(meta, tmp_path / "src", seed=True)
    (tmp_path / "dest").mkdir()
    leecher.add(meta, tmp_path / "dest")
    seed_bridges = Bridges(None, seeder.listen_port)
    port = listen_port(await seed_bridges.inbound(meta.id, meta.info_hashes))
    streams = []

    async def dial(onion, p, torrent_id, lane=0):
        streams.append(await asyncio.open_connection("127.0.0.1", port))
        return streams[-1]

    bridges = Bridges(dial, leecher.listen_port, info_hashes=leecher.info_hashes)
    try:
        leecher.session.apply_settings({"download_rate_limit": 400_000,
                                        "ignore_limits_on_local_network": False})
        endpoint = await bridges.outbound(meta.id, fake_onion(), 6881)
        leecher.connect(meta.id, endpoint)
        await wait_for(lambda: leecher.status(meta.id).total_done > 0, 20)
        streams[0][1].close()  # the circuit breaks
        await wait_for(lambda: leecher.status(meta.id).peers == 0, 20)
        leecher.connect(meta.id, endpoint)
        leecher.session.apply_settings({"download_rate_limit": 0})
        await wait_for(lambda: leecher.status(meta.id).progress >= 1.0, 60)
        assert len(streams) == 2 and bridges.usage()["wrong_torrent"] == 0
    finally:
        await bridges.close()
        await seed_bridges.close()
        for engine in (seeder, leecher):
            await engine.close()


async def test_concurrent_announces_of_one_onion_share_one_endpoint():
    bridges = Bridges(never_dial, 0)
    onion = fake_onion()
    try:
        got = await asyncio.gather(*(bridges.outbound("ef" * 20, onion, 6881) for _ in range(8)))
        assert len(set(got)) == 1 and len(bridges.counters()) == 1
        assert bridges.usage()["outbound_endpoints"] == 1
    finally:
        await bridges.close()
