"""Pausing and resuming a download, with recording fakes for the node's parts.

The requests carry one id and refuse anything else; only a download in progress is paused
(a share, a finished one, one being moved into place, a failed one, and one that holds every
piece already are refused) and only a paused one resumed; a pause stops libtorrent, stores
"paused" and ends the announce loop with a stopped announce; a resume undoes that and
announces at once; a node restoring a paused download adds it paused and does not announce;
the watchdog never judges a paused download, nor does the ratio gate close on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest

from onionshare_bt import node as node_mod
from onionshare_bt import torrents
from onionshare_bt.config import Config
from onionshare_bt.errors import UsageError
from onionshare_bt.ops import requests as rq
from onionshare_bt.relay.core import Allowance

from .test_liveness_node import FakePath, _row, _watched_node, _watchdog

TID = "ab" * 20


@pytest.mark.parametrize("op, cls", [("pause", rq.Pause), ("resume", rq.Resume)])
def test_the_requests_take_one_string_id(op, cls):
    assert rq.parse(op, {"id": "ab12"}) == cls(id="ab12")
    assert cls(id="ab12").args() == {"id": "ab12"}
    with pytest.raises(UsageError, match=f"bad arguments for {op}: id must be a string"):
        rq.parse(op, {"id": 12})
    with pytest.raises(UsageError, match=f"bad arguments for {op}"):
        rq.parse(op, {})
    with pytest.raises(UsageError, match=f"bad arguments for {op}"):
        rq.parse(op, {"id": "ab", "delete_data": True})


class Recorder:
    """The parts :func:`torrents.pause` and :func:`torrents.resume` use, recording calls."""

    def __init__(self, row, done=10, wanted=100):
        self.log: list[str] = []
        self.row = row
        self.done, self.wanted = done, wanted
        self.store = SimpleNamespace(torrents=SimpleNamespace(update=self._update,
                                                              get=lambda tid: self.row))
        self.engine = SimpleNamespace(
            status=lambda tid: SimpleNamespace(total_done=self.done, total_wanted=self.wanted),
            pause=lambda tid: self.log.append(f"engine.pause:{tid}"),
            resume=lambda tid: self.log.append(f"engine.resume:{tid}"),
            save_resume=lambda tid: self.log.append(f"engine.save_resume:{tid}"),
            add=self._add,
        )
        self.tasks = SimpleNamespace(spawn=self._spawn)
        self.peer_ids: dict = {}
        self.config = Config(home=None)  # max_paths as shipped: paths grow
        self.spawned: list[tuple[str, str]] = []

    def _update(self, tid, **changes):
        self.log.append(f"store.update:{tid}:{changes}")
        self.row = dataclasses.replace(self.row, **changes)

    def _spawn(self, name, coro):
        self.spawned.append((name, coro.__qualname__))
        coro.close()

    def _add(self, meta, path, *, resume=None, paused=False):
        self.log.append(f"engine.add:{meta.id}:paused={paused}")


def test_pause_stops_the_engine_stores_paused_and_announces_stopped():
    parts = Recorder(_row(TID))
    row = torrents.pause(parts, parts.row)
    assert row.state == "paused" and parts.row.state == "paused"
    assert parts.log == [f"engine.pause:{TID}", f"store.update:{TID}:{{'state': 'paused'}}",
                         f"engine.save_resume:{TID}"]
    # the announce loop's task is replaced by one stopped announce (same task name)
    assert parts.spawned == [(f"announce:{TID}", "announce_stopped")]


def test_resume_restarts_the_engine_and_announces_again_at_once():
    parts = Recorder(_row(TID, state="paused"))
    row = torrents.resume(parts, parts.row)
    assert row.state == "downloading" and parts.row.state == "downloading"
    assert parts.log == [f"store.update:{TID}:{{'state': 'downloading'}}",
                         f"engine.resume:{TID}"]
    assert parts.spawned == [(f"announce:{TID}", "_announce_loop"), (f"paths:{TID}", "_grow")]


@pytest.mark.parametrize("role, state, message", [
    ("share", "seeding", "is a share; only a download is paused"),
    ("download", "complete", "is complete; only a download in progress is paused"),
    ("download", "moving", "is moving; only a download in progress is paused"),
    ("download", "error", "is error; only a download in progress is paused"),
    ("download", "paused", "is paused; only a download in progress is paused"),
])
def test_only_a_download_in_progress_is_paused(role, state, message):
    parts = Recorder(_row(TID, role=role, state=state))
    with pytest.raises(UsageError, match=message):
        torrents.pause(parts, parts.row)
    assert parts.log == [] and parts.spawned == []


def test_a_download_holding_every_piece_is_not_paused():
    """Its finished event is on its way: paused, it would never be moved into place."""
    parts = Recorder(_row(TID), done=100, wanted=100)
    with pytest.raises(UsageError, match="has every piece already"):
        torrents.pause(parts, parts.row)
    assert parts.log == []


@pytest.mark.parametrize("role, state", [("download", "downloading"),
                                         ("download", "complete"), ("share", "seeding")])
def test_only_a_paused_download_is_resumed(role, state):
    parts = Recorder(_row(TID, role=role, state=state))
    with pytest.raises(UsageError, match=f"is {state}, not paused"):
        torrents.resume(parts, parts.row)
    assert parts.log == [] and parts.spawned == []


@pytest.mark.parametrize("state, paused, announced", [
    ("paused", True, []), ("downloading", False, [(f"announce:{TID}", "_announce_loop"),
                                (f"paths:{TID}", "_grow")])])
async def test_a_restored_download_keeps_its_pause_and_announces_only_when_not_paused(
        state, paused, announced):
    parts = Recorder(_row(TID, state=state))
    parts.meta = lambda row: SimpleNamespace(id=row.id)
    parts.store.onions = SimpleNamespace(of=lambda tid: [])
    await torrents.restore_download(parts, parts.row)
    assert parts.log == [f"engine.add:{TID}:paused={paused}"]
    assert parts.spawned == announced


async def test_the_watchdog_never_calls_a_paused_download_stalled():
    """No progress and no peer for far past the stall timeout: no verdict, no reason, no
    announce, no dial, and no path of it closed for owing blocks."""
    path = FakePath(TID, "out", "a" * 56, "127.64.0.1:1000", down=500, active=0)
    dog = _watchdog([_row(TID)], {TID: (1000, 0)}, [path], stall_timeout=8.0)
    await dog.watch_once(0.0)
    await dog.watch_once(10.0)
    assert TID in dog.stalled  # the same download, not paused, is stalled
    dog.swarm.tasks.spawned.clear()
    dog.swarm.engine.connected_to.clear()
    dog.swarm.store.rows[TID] = _row(TID, state="paused")
    for t in range(12, 200, 2):
        await dog.watch_once(float(t))
    assert dog.stalled == set() and dog.reasons == {}
    assert dog.swarm.tasks.spawned == [] and dog.swarm.engine.connected_to == []
    assert dog.swarm.bridges.log == []


async def test_the_ratio_gate_never_closes_on_a_paused_download(tmp_path, monkeypatch):
    """With the allowance used up, a download in progress is gated and a paused one is not
    (a gated one that gets paused has its gate opened and leaves the gated set)."""
    rows = [_row("a" * 40), _row("b" * 40, state="paused"), _row("c" * 40, state="paused")]
    node = _watched_node(tmp_path, rows, {r.id: (0, 0) for r in rows}, [])
    gates: list[tuple[str, bool]] = []
    node.swarm.engine.status = lambda tid: SimpleNamespace(session_down=0, total_wanted=100,
                                                           total_done=0)
    node.swarm.engine.gate = lambda tid, closed: gates.append((tid, closed))
    node.swarm.engine.limit_download = lambda rate: None
    node.gated.add("c" * 40)  # gated before it was paused

    samples = []

    async def sample():  # the second round's sample ends the loop
        samples.append(1)
        if len(samples) > 1:
            raise asyncio.CancelledError

    node.relay = SimpleNamespace(sample=sample, count_downloads=lambda downs: None,
                                 allowance=lambda: Allowance(free_base=100, ratio=0.0,
                                                             relayed=0, used=100))
    monkeypatch.setattr(node_mod, "LEDGER_INTERVAL", 0)
    with pytest.raises(asyncio.CancelledError):
        await node._ledger_loop()
    assert node.gated == {"a" * 40}
    assert sorted(gates) == [("a" * 40, True), ("c" * 40, False)]
