"""A download that completes tells its trackers at once.

Without it a completed download stays listed as a leecher until its next announce (a whole
interval away while peers are connected): an observer (a release not verified yet) is given
seeders only and would not be given it. The node's "moved" event (the download is in place)
starts the announce loop again with a ``completed`` announce, ``left`` 0; the paths are not
grown again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

from onionshare_bt import torrents
from onionshare_bt.config import Config
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tasks import TaskRegistry
from onionshare_bt.tracker.core import Reply

from .test_liveness_node import _row as _bare_row

TID = "cd" * 20
ONION = onion_from_pubkey(b"o" * 32)
SOURCE = f"http://{onion_from_pubkey(b's' * 32)}.onion/private/{'t' * 32}"


def _row(tid, **kw):
    return dataclasses.replace(_bare_row(tid, **kw), uri=SOURCE)


class Trackers:
    """The share's tracker: records every announce's parameters."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.arrived = asyncio.Event()

    async def announce(self, tracker, params, timeout):
        self.sent.append(params)
        self.arrived.set()
        return Reply(interval=600, peers=())


def swarm_for(row, done: int, wanted: int, trackers: Trackers):
    return SimpleNamespace(
        config=Config(home=None), tasks=TaskRegistry(), http=trackers, peer_ids={},
        announce_errors={}, growth={},
        store=SimpleNamespace(
            torrents=SimpleNamespace(get=lambda tid: row),
            trackers=SimpleNamespace(of=lambda tid: []),
            onions=SimpleNamespace(of=lambda tid: [SimpleNamespace(address=ONION)])),
        engine=SimpleNamespace(status=lambda tid: SimpleNamespace(
            payload_up=5, payload_down=wanted, total_wanted=wanted, total_done=done,
            connected=1)))


async def first_announce(swarm, trackers: Trackers) -> dict:
    await asyncio.wait_for(trackers.arrived.wait(), 5)
    return trackers.sent[0]


async def test_a_completed_download_announces_completed_at_once_and_as_a_seeder():
    trackers = Trackers()
    row = _row(TID, state="complete")
    swarm = swarm_for(row, done=100, wanted=100, trackers=trackers)
    swarm.peer_ids[TID] = b"p" * 20
    try:
        torrents.announce_completed(swarm, row)
        sent = await first_announce(swarm, trackers)
        assert sent["event"] == "completed" and sent["left"] == 0
        assert sent["ip"] == f"{ONION}.onion" and sent["peer_id"] == b"p" * 20
        assert swarm.tasks.names() == [f"announce:{TID}"], "paths grown again for a seed"
        # the next announce is a plain one, an interval away: one announce so far
        await asyncio.sleep(0.2)
        assert len(trackers.sent) == 1
    finally:
        await swarm.tasks.cancel("")


async def test_the_completed_announce_replaces_the_loop_of_the_download():
    """The loop that announced ``started`` (and waits its interval) gives way to it."""
    trackers = Trackers()
    row = _row(TID)
    swarm = swarm_for(row, done=10, wanted=100, trackers=trackers)
    swarm.config = Config(home=None, max_paths=1)
    try:
        torrents.start_announcing(swarm, row)
        assert (await first_announce(swarm, trackers))["event"] == "started"
        trackers.arrived.clear()
        torrents.announce_completed(swarm, row)
        await asyncio.wait_for(trackers.arrived.wait(), 5)
        assert [p.get("event") for p in trackers.sent] == ["started", "completed"]
        assert swarm.tasks.names() == [f"announce:{TID}"]
    finally:
        await swarm.tasks.cancel("")
