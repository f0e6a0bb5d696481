"""The ratio gate's rate limit limits: peers behind the bridges come from loopback, which
libtorrent would put in its unlimited local peer class."""

from __future__ import annotations

import asyncio
import secrets

from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine

LIMIT = 1_000_000


async def _fetched_under_limit(tmp_path, limit: int, seconds: float) -> int:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(secrets.token_bytes(24 << 20))
    meta = await asyncio.to_thread(create, tmp_path / "src" / "f.bin")
    seeder, leecher = Engine(bridged=False), Engine(bridged=False)
    await seeder.start()
    await leecher.start()
    try:
        seeder.add(meta, tmp_path / "src", seed=True)
        (tmp_path / "out").mkdir()
        leecher.add(meta, tmp_path / "out")
        leecher.limit_download(limit)
        leecher.connect(meta.id, ("127.0.0.1", seeder.listen_port))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while leecher.status(meta.id).total_done == 0:  # first, the transfer starts
            assert loop.time() < deadline, "no byte arrived at all"
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)  # the rate over this window is what is measured
        return leecher.status(meta.id).total_done
    finally:
        await seeder.close()
        await leecher.close()


async def test_download_rate_limit_holds_for_loopback_peers(tmp_path):
    done = await _fetched_under_limit(tmp_path, LIMIT, 4.0)
    # 4 s at 1 MB/s plus a burst; unlimited, loopback moves the whole 24 MiB in that time
    assert done <= 7 * LIMIT, f"{done / 1e6:.1f} MB in 4 s under a 1 MB/s limit"
