"""The node's liveness watchdog and its stop sequence, with recording fakes for its parts.

The watchdog closes silent bridge paths and says why a download is not moving; a clean stop
cancels the node's tasks, hangs up on every peer and waits (boundedly) for the bridges to
pass that on, saves resume data, and only then closes the bridges, the engine and tor, each
part exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace

import pytest

from onionshare_bt import node as node_mod
from onionshare_bt import torrents
from onionshare_bt.config import Config
from onionshare_bt.engine.alerts import Event
from onionshare_bt.node import Node
from onionshare_bt.store import TorrentRow
from onionshare_bt.torrents.announce import start_announcing
from onionshare_bt.watchdog import Watchdog


def _row(tid: str, role: str = "download", state: str = "downloading") -> TorrentRow:
    return TorrentRow(id=tid, role=role, name=f"name-{tid[:4]}", save_path="/nowhere",
                      target="/nowhere", torrent=b"", token="t", uri="u", state=state,
                      error=None, resume=None, added=0.0, completed=None)


@dataclasses.dataclass
class FakePath:
    torrent_id: str
    direction: str
    onion: str
    endpoint: str
    down: int = 0
    active: int = 0


class FakeStore:
    def __init__(self, rows, log=None):
        self.rows = {r.id: r for r in rows}
        self.log = log if log is not None else []
        self.peers = SimpleNamespace(ttl=None, cap=None)
        self.torrents = SimpleNamespace(all=self.all, get=self.get, update=self.update)
        self.onions = SimpleNamespace(of=lambda tid: [], all=lambda: [])

    def all(self, role=None):
        return [r for r in self.rows.values() if role in (None, r.role)]

    def get(self, tid):
        return self.rows.get(tid)

    def update(self, tid, **changes):
        self.log.append(f"store.update:{tid}:{','.join(sorted(changes))}")

    def close(self):
        self.log.append("store.close")


class FakeEngine:
    def __init__(self, statuses, log=None):
        self.statuses = statuses  # tid -> (total_done, connected)
        self.log = log if log is not None else []
        self.connected_to = []
        self.peer_list = {}  # tid -> [Peer-like]

    def peers(self, tid):
        return self.peer_list.get(tid, [])

    def has(self, tid):
        return tid in self.statuses

    def status(self, tid):
        done, connected = self.statuses[tid]
        return SimpleNamespace(total_done=done, connected=connected)

    def connect(self, tid, endpoint):
        self.connected_to.append((tid, endpoint))


class FakeBridges:
    def __init__(self, paths, log=None):
        self.paths = paths
        self.log = log if log is not None else []

    def counters(self, torrent_id=None):
        return [p for p in self.paths if torrent_id in (None, p.torrent_id)]

    async def close_connections(self, path):
        closed, path.active = path.active, 0
        self.log.append(f"bridges.close_connections:{path.endpoint}")
        return closed


class FakeTasks:
    def __init__(self):
        self.spawned = []

    def spawn(self, name, coro):
        coro.close()
        self.spawned.append(name)


def _parts(rows, statuses, paths):
    """A swarm's parts as the watchdog uses them; announcing again runs the real code."""
    swarm = SimpleNamespace(store=FakeStore(rows), engine=FakeEngine(statuses),
                            bridges=FakeBridges(paths), tasks=FakeTasks(), peer_ids={},
                            config=Config(home=None, max_paths=0))
    swarm.start_announcing = lambda row: start_announcing(swarm, row)
    return swarm


def _watched_node(tmp_path, rows, statuses, paths, stall_timeout=120.0):
    node = Node(Config(home=tmp_path, stall_timeout=stall_timeout))
    node.swarm = _parts(rows, statuses, paths)
    node.casts = SimpleNamespace(received=dict)  # no broadcast listened to
    return node


def _watchdog(rows, statuses, paths, stall_timeout=120.0, gated=None) -> Watchdog:
    return Watchdog(_parts(rows, statuses, paths), stall_timeout,
                    set() if gated is None else gated)


async def test_the_watchdog_closes_a_silent_path_and_the_download_says_why():
    dead = FakePath("d" * 40, "out", "a" * 56, "127.64.0.1:1000", down=500, active=1)
    alive = FakePath("d" * 40, "out", "b" * 56, "127.64.0.2:1000", down=700, active=1)
    dog = _watchdog([_row("d" * 40)], {"d" * 40: (1000, 2)}, [dead, alive])
    await dog.watch_once(0.0)
    for t in range(2, 30, 2):
        alive.down += 4  # a keep-alive now and then
        await dog.watch_once(float(t))
    assert dog.swarm.bridges.log == [] and dog.silent_closed == 0
    alive.down += 4
    dog.swarm.engine.statuses["d" * 40] = (1000, 1)  # libtorrent saw that one go
    await dog.watch_once(30.0)
    assert dog.swarm.bridges.log == ["bridges.close_connections:127.64.0.1:1000"]
    assert dog.silent_closed == 1
    assert dog.reasons["d" * 40] == ("no data from any peer for 30 s; 1 peer lost; "
                                      "1 silent connection closed")
    assert "d" * 40 not in dog.stalled


def _peer(endpoint: str, payload: int, requests: int, incoming: bool = False):
    host, port = endpoint.rsplit(":", 1)
    return SimpleNamespace(host=host, port=int(port), payload_down=payload, requests=requests,
                           incoming=incoming)


async def test_a_peer_that_sends_keep_alives_but_never_the_blocks_asked_for_is_closed():
    """Keep-alives keep a path from being silent; a connection that owes blocks and
    brings none for the window is closed all the same. One that brings payload, and one we
    ask nothing of (it chokes us), stay."""
    tid = "c" * 40
    stuck = FakePath(tid, "out", "a" * 56, "127.64.0.1:1000", down=500, active=1)
    slow = FakePath(tid, "out", "b" * 56, "127.64.0.2:1000", down=700, active=1)
    choking = FakePath(tid, "out", "c" * 56, "127.64.0.3:1000", down=900, active=1)
    dog = _watchdog([_row(tid)], {tid: (1000, 3)}, [stuck, slow, choking])
    peers = {"stuck": _peer(stuck.endpoint, 5000, 40), "slow": _peer(slow.endpoint, 5000, 40),
             "choking": _peer(choking.endpoint, 5000, 0)}
    dog.swarm.engine.peer_list[tid] = list(peers.values())
    for t in range(0, 30, 2):
        for path in (stuck, slow, choking):
            path.down += 4  # keep-alives on every path: none is silent
        peers["slow"].payload_down += 16384 * (t % 4 == 0)  # a block now and then
        await dog.watch_once(float(t))
    assert dog.swarm.bridges.log == []
    for path in (stuck, slow, choking):
        path.down += 4
    await dog.watch_once(30.0)
    assert dog.swarm.bridges.log == ["bridges.close_connections:127.64.0.1:1000"]
    assert dog.silent_closed == 1
    assert "1 silent connection closed" in dog.reasons[tid]


async def test_owed_blocks_are_not_judged_for_a_gated_download_or_an_incoming_peer():
    tid = "9" * 40
    path = FakePath(tid, "out", "a" * 56, "127.64.0.1:1000", down=500, active=1)
    dog = _watchdog([_row(tid)], {tid: (1000, 1)}, [path])
    dog.swarm.engine.peer_list[tid] = [_peer(path.endpoint, 0, 40, incoming=True)]
    for t in range(0, 64, 2):
        path.down += 4
        await dog.watch_once(float(t))
    assert dog.swarm.bridges.log == []  # incoming: not one of our paths' endpoints
    dog.swarm.engine.peer_list[tid] = [_peer(path.endpoint, 0, 40)]
    dog.gated.add(tid)  # waiting for relay credit: libtorrent asks for nothing that counts
    for t in range(64, 128, 2):
        path.down += 4
        await dog.watch_once(float(t))
    assert dog.swarm.bridges.log == []


async def test_losing_the_last_peer_shows_at_the_next_look_and_announces_again():
    tid = "e" * 40
    path = FakePath(tid, "out", "a" * 56, "127.64.0.9:1000", down=10, active=1)
    dog = _watchdog([_row(tid)], {tid: (1000, 2)}, [path])
    await dog.watch_once(0.0)
    dog.swarm.engine.statuses[tid] = (1000, 0)
    path.active = 0
    await dog.watch_once(2.0)
    assert dog.reasons[tid] == "2 peers lost; no peer connected"
    assert dog.swarm.tasks.spawned == [f"announce:{tid}"]  # an announce at once
    assert dog.swarm.engine.connected_to == [(tid, ("127.64.0.9", 1000))]
    await dog.watch_once(4.0)
    assert dog.swarm.tasks.spawned == [f"announce:{tid}"]  # not at every look


async def test_stalled_after_the_stall_timeout_and_cleared_by_progress():
    tid = "f" * 40
    dog = _watchdog([_row(tid)], {tid: (1000, 1)}, [], stall_timeout=8.0)
    await dog.watch_once(0.0)
    await dog.watch_once(8.0)
    assert tid in dog.stalled and dog.reasons[tid] == "no data from any peer for 8 s"
    dog.swarm.engine.statuses[tid] = (2000, 1)
    await dog.watch_once(10.0)
    assert tid not in dog.stalled and tid not in dog.reasons


async def test_downloads_not_downloading_or_gated_have_no_reason():
    rows = [_row("a" * 40, state="complete"), _row("b" * 40), _row("c" * 40, role="share",
                                                                    state="seeding")]
    statuses = {r.id: (0, 0) for r in rows}
    dog = _watchdog(rows, statuses, [])
    dog.gated.add("b" * 40)
    await dog.watch_once(0.0)
    await dog.watch_once(50.0)
    assert dog.reasons == {} and dog.stalled == set()


async def test_a_silent_share_path_is_closed_too():
    """A seeder's inbound path whose downloaders all went silent (kill -9, SIGSTOP)."""
    sid = "c" * 40
    path = FakePath(sid, "in", "c" * 56, "127.0.0.1:4000", down=99, active=2)
    dog = _watchdog([_row(sid, role="share", state="seeding")],
                         {sid: (10, 0)}, [path])
    for t in range(0, 32, 2):
        await dog.watch_once(float(t))
    assert dog.swarm.bridges.log == ["bridges.close_connections:127.0.0.1:4000"]
    assert dog.silent_closed == 2


# -- the stop sequence -----------------------------------------------------------------
class Parts:
    """Recording fakes for every part Node._start builds; ``log`` gets each call."""

    def __init__(self, rows):
        self.log: list[str] = []
        self.rows = rows
        self.active = 0  # open bridge connections
        self.restoring = self.restoring_max = 0

    def install(self, monkeypatch, node_ref):
        rec = self

        class Store(FakeStore):
            def __init__(self, path):
                super().__init__(rec.rows, rec.log)

        class Relay:
            fingerprint = ""

            async def prepare(self):
                pass

            async def start(self):
                rec.log.append("relay.start")

            async def close(self):
                rec.log.append("relay.close")

            async def sample(self):
                await asyncio.Event().wait()  # the ledger loop waits here until cancelled

        class Tor:
            socks_address = ("127.0.0.1", 9)
            pid = 1

            def is_alive(self):
                return True

            async def close(self):
                rec.log.append("tor.close")

        class Engine:
            listen_port = 6881

            def __init__(self, on_event, socks=None):
                self.on_event = on_event

            async def start(self):
                rec.log.append("engine.start")

            def limit_upload(self, rate):
                pass

            async def close(self):
                rec.log.append("engine.close")

            def info_hashes(self, tid):
                return ()

            def has(self, tid):
                return tid in rec.rows_by_id

            def pause(self, tid):
                rec.log.append(f"engine.pause:{tid[:4]}")
                # libtorrent hangs up; the bridges see it a little later
                asyncio.get_running_loop().call_later(0.2, rec.hang_up)

            def save_resume(self, tid):
                asyncio.get_running_loop().call_soon(
                    self.on_event, Event("resume", tid, data=b"resume"))

        class Bridges:
            def __init__(self, dial, engine_port, info_hashes=None):
                pass

            def counters(self, torrent_id=None):
                return [SimpleNamespace(active=rec.active, torrent_id="x", endpoint="e",
                                        down=0, direction="in", onion="")]

            async def close(self):
                rec.log.append(f"bridges.close(active={rec.active})")

        class Closing:
            name = "?"

            def __init__(self, *args, **kwargs):
                self.peers = SimpleNamespace(ttl=1, max_peers=2)

            async def start(self):
                rec.log.append(f"{self.name}.start")

            async def close(self):
                rec.log.append(f"{self.name}.close")

            def offer(self):
                return None

        def closing(name):
            return type(name, (Closing,), {"name": name})

        async def restore(swarm, row):
            rec.restoring += 1
            rec.restoring_max = max(rec.restoring_max, rec.restoring)
            await asyncio.sleep(0.05)  # a restore takes a while: the overlap is what is counted
            rec.restoring -= 1
            rec.log.append(f"restore:{row.id[:4]}")

        async def new_tor(self):
            rec.log.append("tor.start")
            return Tor()

        monkeypatch.setattr(node_mod, "Store", Store)
        monkeypatch.setattr(node_mod, "_make_relay", lambda cfg, network, store: Relay())
        monkeypatch.setattr(Node, "_new_tor", new_tor)
        monkeypatch.setattr(node_mod, "Engine", Engine)
        monkeypatch.setattr(node_mod, "Bridges", Bridges)
        for name, attr in (("tracker", "TrackerServer"), ("http", "TrackerClient"),
                           ("trust", "TrustService"), ("releases", "ReleaseService"),
                           ("mirrors", "MirrorService"), ("control", "ControlServer")):
            monkeypatch.setattr(node_mod, attr, closing(name))
        monkeypatch.setattr(node_mod, "Origin", lambda store, tracker, roster: SimpleNamespace())
        monkeypatch.setattr(torrents.Swarm, "restore_share", restore)
        monkeypatch.setattr(torrents.Swarm, "restore_download", restore)

    @property
    def rows_by_id(self):
        return {r.id for r in self.rows}

    def hang_up(self):
        if self.active:
            self.active = 0
            self.log.append("bridges.drained")


async def test_a_clean_stop_hangs_up_on_peers_before_tor_goes_each_part_once(
        tmp_path, monkeypatch):
    rows = [_row(f"{i:02x}" * 20, role="share" if i % 2 else "download") for i in range(40)]
    parts = Parts(rows)
    parts.install(monkeypatch, Node)
    async with Node(Config(home=tmp_path, relay=False)) as node:
        assert parts.restoring_max == node_mod.RESTORE_CONCURRENCY  # restored side by side
        assert sorted(x for x in parts.log if x.startswith("restore:")) == sorted(
            f"restore:{r.id[:4]}" for r in rows)
        parts.active = 3  # peers connected through the bridges
        del parts.log[:]
        started = time.monotonic()
    took = time.monotonic() - started
    log = parts.log
    pauses = [x for x in log if x.startswith("engine.pause:")]
    assert len(pauses) == len(rows)
    resumes = [x for x in log if x.startswith("store.update:") and x.endswith(":resume")]
    assert len(resumes) == len(rows)
    order = [x for x in log if not x.startswith(("engine.pause:", "store.update:"))]
    assert order == [
        "control.close", "mirrors.close", "trust.close",  # nothing new comes in
        "bridges.drained",  # libtorrent hung up on every peer; the bridges passed it on
        "http.close", "tracker.close",
        "bridges.close(active=0)", "engine.close", "tor.close",  # tor goes last of all
        "relay.close", "store.close",
    ]
    assert log.index(pauses[-1]) < log.index("bridges.drained") < log.index(resumes[0])
    assert took < node_mod.DRAIN_TIMEOUT


async def test_the_drain_is_bounded_when_a_peer_never_lets_go(tmp_path, monkeypatch):
    parts = Parts([_row("ab" * 20)])
    parts.install(monkeypatch, Node)
    monkeypatch.setattr(Parts, "hang_up", lambda self: None)  # a stuck connection
    monkeypatch.setattr(node_mod, "DRAIN_TIMEOUT", 0.5)
    async with Node(Config(home=tmp_path, relay=False)):
        parts.active = 1
        started = time.monotonic()
    assert 0.5 <= time.monotonic() - started < 3.0
    assert "bridges.close(active=1)" in parts.log  # cut by Bridges.close
    assert parts.log.index("bridges.close(active=1)") < parts.log.index("tor.close")


async def test_a_failed_start_tears_down_only_what_started(tmp_path, monkeypatch):
    parts = Parts([])
    parts.install(monkeypatch, Node)

    async def broken(self):
        raise RuntimeError("the trust service did not start")

    monkeypatch.setattr(node_mod.TrustService, "start", broken)
    with pytest.raises(RuntimeError):
        async with Node(Config(home=tmp_path, relay=False)):
            pass
    closes = [x for x in parts.log if x.endswith(".close") or x.startswith("bridges.close")]
    assert closes == ["http.close", "tracker.close", "bridges.close(active=0)",
                      "engine.close", "tor.close", "relay.close", "store.close"]
    assert "mirrors.close" not in parts.log and "control.close" not in parts.log
