"""The node daemon: one asyncio process that owns every part's lifetime.

Parts start in order through an ``AsyncExitStack`` (store, tor, engine, bridges, tracker,
HTTP client, tasks, restored torrents, control socket) and stop in reverse, only what
started. A clean stop lets peer connections end before tor does: the node's tasks stop,
libtorrent hangs up on every peer, the bridges get :data:`DRAIN_TIMEOUT` to pass those ends
on as the ends of their Tor streams, resume data is saved, and only then do the bridges,
the engine and tor close. The CLI talks to the node over :mod:`.control`, whose requests
run the node's operations (:mod:`.ops`).

Liveness is the :class:`~.watchdog.Watchdog`'s, a part the node starts with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import time
from pathlib import Path

import psutil

from . import torrents
from .config import Config
from .cast.service import CastService
from .control import ControlServer
from .engine.session import Engine, Event
from .errors import NodeError, ObtError
from .liveness import LagMeter
from .multiplex.bridge import Bridges
from .relay.core import gate_closed, rate_cap
from .relay.driver import RatioSettings, Relay
from .tor.relay import RelaySettings
from .mirror.origin import Origin, Roster
from .mirror.service import MirrorService
from .ops.operations import Dispatch, Operations
from .release.service import ReleaseService, held_offer
from .trust.service import TrustService
from .store import Store
from .stream.server import StreamService
from .tasks import TaskRegistry
from .tor import socks
from .tor.client import TorClient
from .tor.network import Network
from .tracker.client import TrackerClient
from .tracker.server import TrackerServer
from .ui.server import UiServer
from .watchdog import Watchdog

log = logging.getLogger(__name__)

#: seconds a bridge keeps dialling a peer's onion; one attempt may hang on introduction
#: points that died with the peer's old tor, so each gets DIAL_ATTEMPT_TIMEOUT
DIAL_TIMEOUT = 90.0
DIAL_ATTEMPT_TIMEOUT = 30.0
RESUME_SAVE_INTERVAL = 30.0
TOR_CHECK_INTERVAL = 2.0
#: on a clean stop, seconds the bridges get to pass libtorrent's hang-ups on to Tor
DRAIN_TIMEOUT = 3.0
#: torrents restored at once at start-up (their onions are added, not awaited: tor uploads
#: their descriptors afterwards, and `obt node status` counts them published)
RESTORE_CONCURRENCY = 16
LAG_INTERVAL = 0.1
LAG_WINDOW = 60.0
LEDGER_INTERVAL = 1.0
TOR_RESTART_ATTEMPTS = 3


class Node:
    """The running node. Use as ``async with Node(config) as node: await node.wait()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.swarm: torrents.Swarm | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._resume_waiters: dict[str, asyncio.Future] = {}
        self.tor_restarts = 0
        self.lag = LagMeter(LAG_WINDOW)
        #: ids of downloads waiting for relay credit (the ledger loop keeps it)
        self.gated: set[str] = set()
        self.watchdog: Watchdog | None = None
        self.relay = None
        self.trust: TrustService | None = None
        self.origin: Origin | None = None
        self.mirrors: MirrorService | None = None
        self.releases: ReleaseService | None = None
        self.stream: StreamService | None = None
        self.casts: CastService | None = None
        #: every operation the node offers (the control socket's, the web UI's)
        self.ops: Operations | None = None
        #: why the node stopped on its own (tor could not be restarted), if it did
        self.failure: ObtError | None = None

    # -- lifetime ---------------------------------------------------------------------
    async def __aenter__(self) -> Node:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        cfg = self.config
        cfg.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.umask(0o077)
        self._stack.enter_context(_lock(cfg.home))
        store = Store(cfg.db_path)
        self._stack.callback(store.close)
        self._network = Network.load(cfg.network_file) if cfg.network_file else Network.public()
        self.relay = _make_relay(cfg, self._network, store)
        await self.relay.prepare()
        tor, _ = await asyncio.gather(self._new_tor(), self._start_relay())
        self._stack.push_async_callback(tor.close)
        engine = Engine(self._on_event, socks=tor.socks_address)  # bridged: Tor as backstop
        await engine.start()
        self._stack.push_async_callback(engine.close)
        engine.limit_upload(cfg.upload_rate)
        bridges = Bridges(self._dial, engine.listen_port, info_hashes=engine.info_hashes)
        self._stack.push_async_callback(bridges.close)
        roster = Roster(store)  # the mirrors registered here, named by the tracker
        tracker = TrackerServer(interval=cfg.announce_interval, on_announce=self._on_announce,
                                trackers=roster.trackers)
        store.peers.ttl, store.peers.cap = tracker.peers.ttl, tracker.peers.max_peers
        await tracker.start()
        self._stack.push_async_callback(tracker.close)
        http = TrackerClient(tor)  # it follows tor's SOCKS address across restarts
        await http.start()
        self._stack.push_async_callback(http.close)
        tasks = TaskRegistry()
        self.swarm = torrents.Swarm(cfg, store, tor, engine, bridges, tracker, http, tasks)
        # torn down in reverse: tasks stop, peers are hung up on, resume data is saved;
        # then the HTTP client, tracker, bridges, engine and tor close (pushed above)
        self._stack.push_async_callback(self._save_all_resume)
        self._stack.push_async_callback(self._quiesce)
        self._stack.push_async_callback(tasks.close)
        self.origin = Origin(store, tracker, roster)
        await self._restore()
        # live broadcasts and listenings: made for this lifetime, gone with it
        self.casts = CastService(tor, http)
        self._stack.push_async_callback(self.casts.close)
        self.trust = TrustService(cfg, store, tor, http, self.swarm, self.origin,
                                  release_offer=functools.partial(held_offer, store),
                                  live_items=self.casts.public_items)
        await self.trust.start()
        self._stack.push_async_callback(self.trust.close)
        self.releases = ReleaseService(cfg, store, self.swarm, http, tasks, self.trust)
        await self.releases.start()
        self.mirrors = MirrorService(cfg, store, tor, http, tasks)
        self._stack.push_async_callback(self.mirrors.close)
        await self.mirrors.start()
        # obt play: files served on 127.0.0.1 while they download; closed before the engine
        self.stream = StreamService(engine)
        await self.stream.start()
        self._stack.push_async_callback(self.stream.close)
        tasks.spawn("resume-saver", self._resume_saver())
        tasks.spawn("tor-watchdog", self._tor_watchdog())
        self.watchdog = Watchdog(self.swarm, cfg.stall_timeout, self.gated)
        tasks.spawn("stall-watchdog", self.watchdog.run())
        tasks.spawn("ledger", self._ledger_loop())
        tasks.spawn("loop-lag", self._lag_monitor())
        self.ops = Operations(
            config=cfg, swarm=self.swarm, relay=self.relay, stream=self.stream,
            origin=self.origin, trust=self.trust, mirrors=self.mirrors, releases=self.releases,
            casts=self.casts, gated=self.gated, stalled=self.watchdog.stalled, reasons=self.watchdog.reasons,
            lifetime=self,
        )
        self.ui = UiServer(self.ops, log_path=cfg.log_path, tor=tor)
        await self.ui.start()  # the web UI on 127.0.0.1; obt ui hands out links
        self._stack.push_async_callback(self.ui.close)
        control = ControlServer(cfg.socket_path, Dispatch(self.ops.runners, self.ui.runners).call)
        await control.start()
        self._stack.push_async_callback(control.close)
        cfg.pid_path.write_text(str(os.getpid()))
        self._stack.callback(lambda: cfg.pid_path.unlink(missing_ok=True))

    async def _start_relay(self) -> None:
        await self.relay.start()
        self._stack.push_async_callback(self.relay.close)

    async def _new_tor(self) -> TorClient:
        cfg = self.config
        options = tuple(cfg.tor_options)
        if self.relay.fingerprint:  # our own relay never carries our own traffic
            options += (("ExcludeNodes", f"${self.relay.fingerprint}"),)
        tor = TorClient(
            cfg.tor_dir, self._network, tor_binary=cfg.tor_binary,
            bootstrap_timeout=cfg.bootstrap_timeout, owner_pid=os.getpid(),
            extra_options=options,
        )
        await tor.start()
        return tor

    async def _tor_watchdog(self) -> None:
        """Restart a tor that died, republish every onion, carry on; or stop loudly."""
        failures = 0
        while True:
            await asyncio.sleep(TOR_CHECK_INTERVAL)
            if self.swarm.tor.is_alive():
                failures = 0
                continue
            log.error("tor (pid %s) died; restarting it", self.swarm.tor.pid)
            try:
                await self._restart_tor()
                log.warning("tor restarted; %d onion services republished",
                            len(self.swarm.onion_ports))
                self.tor_restarts += 1
            except ObtError as exc:
                failures += 1
                log.error("restarting tor failed (%d): %s", failures, exc.message)
                if failures >= TOR_RESTART_ATTEMPTS:
                    log.critical("tor cannot be restarted; the node stops")
                    self.failure = exc
                    self.stop()
                    return

    async def _restart_tor(self) -> None:
        """tor again, in place (every part holds the same client), then every onion."""
        swarm = self.swarm
        await swarm.tor.restart()
        swarm.engine.set_proxy(swarm.tor.socks_address)
        await swarm.http.close()  # its pooled connections went to the tor before
        await swarm.http.start()
        await swarm.republish_all()
        await self.trust.republish()
        await self.mirrors.republish()
        await self.ui.republish()
        await self.casts.republish()

    async def _dial(self, onion: str, port: int, torrent_id: str, lane: int = 0,
                    isolation: str | None = None):
        """Dial a peer's onion for one torrent, on circuits of that torrent's own (and, for
        a further lane to the same onion, of that lane's own), or of ``isolation``."""
        loop = asyncio.get_running_loop()
        tor = self.swarm.tor
        if isolation is None:
            isolation = f"peer:{torrent_id}" + (f":{lane}" if lane else "")
        return await socks.open_connection(
            tor.socks_address, f"{onion}.onion", port,
            timeout=DIAL_ATTEMPT_TIMEOUT, retry_until=loop.time() + DIAL_TIMEOUT,
            isolation=isolation, watch=tor,  # stale onion state is purged
        )

    async def _restore(self) -> None:
        """Bring back every torrent, :data:`RESTORE_CONCURRENCY` at a time. Their onions
        are added to tor without waiting for an upload: tor publishes their descriptors
        afterwards (:mod:`onionshare_bt.tor.uploads`)."""
        gate = asyncio.Semaphore(RESTORE_CONCURRENCY)

        async def restore(row) -> None:
            async with gate:
                try:
                    if row.role == "share":
                        await self.swarm.restore_share(row)
                    else:
                        await self.swarm.restore_download(row)
                except ObtError as exc:
                    log.error("could not restore %s: %s", row.name, exc.message)
                    self.swarm.store.torrents.update(row.id, state="error", error=exc.message)

        async with asyncio.TaskGroup() as group:
            for row in self.swarm.store.torrents.all():
                group.create_task(restore(row))

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    def _on_announce(self, torrent_id: str, announce) -> None:
        left = None if announce.event == "stopped" else announce.left
        self.swarm.store.peers.record(torrent_id, announce.onion, announce.port, left)
        self.origin.announced(torrent_id, announce.onion, announce.port, left)

    # -- engine events ------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        store = self.swarm.store
        row = store.torrents.get(event.torrent_id)
        if row is None:
            return
        if event.kind == "resume":
            store.torrents.update(row.id, resume=event.data)
            waiter = self._resume_waiters.pop(row.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif event.kind == "finished" and row.role == "download" and row.state == "downloading":
            store.torrents.update(row.id, state="moving")
            self.swarm.engine.move(row.id, Path(row.target))
        elif event.kind == "moved" and row.role == "download":
            staging = Path(row.save_path)
            store.torrents.update(
                row.id, state="complete", save_path=row.target, completed=time.time()
            )
            with contextlib.suppress(OSError):
                staging.rmdir()
            self.swarm.engine.save_resume(row.id)
            self.swarm.announce_completed(row)
            if self.releases is not None:
                self.releases.completed(row.id)
        elif event.kind in ("move_failed", "file_error", "error"):
            message = event.message
            if row.state == "error" and row.error and NO_SPACE in row.error:
                return  # the first, real cause stays; what follows is its consequence
            if NO_SPACE not in message and _disk_full(Path(row.save_path)):
                # pieces cut short by a full disk fail their hash checks first at times
                message = f"{NO_SPACE} in {row.save_path} ({(message or '').strip()})"
            log.error("%s: %s", row.name, message)
            store.torrents.update(row.id, state="error", error=message)
            if event.kind != "move_failed":
                self.swarm.engine.pause(row.id)

    async def _ledger_loop(self) -> None:
        """Sample the relay into the ledger; close or open the download gate.

        The rate cap keeps the downloads from passing the allowance before the next sample
        (:func:`~.relay.core.rate_cap`); the gate (libtorrent's upload mode) stops a
        download once the allowance is used up. A closed gate is set again at every sample:
        nothing (a torrent added to the engine again) may leave it open unseen.
        """
        while True:
            await self.relay.sample()
            engine, store = self.swarm.engine, self.swarm.store
            downloads = [r for r in store.torrents.all("download") if engine.has(r.id)]
            status = {r.id: engine.status(r.id) for r in downloads}
            self.relay.count_downloads({**{i: st.session_down for i, st in status.items()},
                                        **self.casts.received()})
            allowance = self.relay.allowance()
            engine.limit_download(_lower_cap(rate_cap(allowance.remaining, LEDGER_INTERVAL),
                                             self.config.download_rate))
            for r in downloads:
                st, was = status[r.id], r.id in self.gated
                gate = r.state == "downloading" and gate_closed(
                    was, allowance, st.total_wanted - st.total_done)
                if gate or was:
                    engine.gate(r.id, gate)
                if gate != was:
                    (self.gated.add if gate else self.gated.discard)(r.id)
                    log.warning("%s: %s (%d of %d bytes used)", r.name,
                                "waiting for relay credit" if gate
                                else "relay credit available again; downloading",
                                allowance.used, allowance.total)
            self.gated.intersection_update(status)
            await asyncio.sleep(LEDGER_INTERVAL)

    async def _resume_saver(self) -> None:
        while True:
            await asyncio.sleep(RESUME_SAVE_INTERVAL)
            for row in self.swarm.store.torrents.all("download"):
                if row.state == "downloading" and self.swarm.engine.has(row.id):
                    self.swarm.engine.save_resume(row.id)

    async def _quiesce(self) -> None:
        """Hang up on every peer while tor still runs, so that the ends reach the peers.

        libtorrent closes its peer connections; each bridge sees that and closes its Tor
        stream, and tor sends the stream's end on. The bridges get :data:`DRAIN_TIMEOUT`;
        :meth:`Bridges.close` cuts whatever is left (a peer that reads nothing).
        """
        swarm = self.swarm
        for row in swarm.store.torrents.all():
            if swarm.engine.has(row.id):
                swarm.engine.pause(row.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT
        while _connections(swarm.bridges) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        left = _connections(swarm.bridges)
        if left:
            log.info("%d bridge connection(s) still open after %.0f s; cutting them",
                     left, DRAIN_TIMEOUT)

    async def _lag_monitor(self) -> None:
        """Measure how late the event loop wakes a sleeper (a stalled loop shows here)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            now = loop.time()
            self.lag.record(now, max(0.0, now - started - LAG_INTERVAL))

    def health(self) -> dict:
        """Vital signs for ``obt node status``: the event loop's worst lag (since start and
        over the last :data:`LAG_WINDOW`), what the process holds, and the liveness count."""
        now = asyncio.get_running_loop().time()
        proc = psutil.Process()
        with proc.oneshot():
            held = {"fds": proc.num_fds(), "rss": proc.memory_info().rss,
                    "threads": proc.num_threads()}
        paths = self.swarm.bridges.counters()
        held.update(tasks=len(asyncio.all_tasks()), bridge_paths=len(paths),
                    bridge_connections=sum(p.active for p in paths))
        return {
            "loop_lag_max_ms": round(self.lag.max * 1000, 1),
            "loop_lag_recent_ms": round(self.lag.recent(now) * 1000, 1),
            "resources": held,
            "silent_closed": self.watchdog.silent_closed if self.watchdog else 0,
        }

    async def _save_all_resume(self) -> None:
        loop = asyncio.get_running_loop()
        for row in self.swarm.store.torrents.all():
            if self.swarm.engine.has(row.id):
                self._resume_waiters[row.id] = loop.create_future()
                self.swarm.engine.save_resume(row.id)
        if self._resume_waiters:
            await asyncio.wait(list(self._resume_waiters.values()), timeout=10)

NO_SPACE = "No space left on device"


def _lower_cap(*caps: int) -> int:
    """The tightest of several rate caps, where 0 means none."""
    return min((c for c in caps if c > 0), default=0)


def _connections(bridges) -> int:
    return sum(p.active for p in bridges.counters())


def _disk_full(path: Path) -> bool:
    """Less than 1 MiB free where ``path`` (or its nearest existing parent) lives."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1024 * 1024


@contextlib.contextmanager
def _lock(home: Path):
    """Hold ``home/node.lock`` so that only one node runs per home."""
    fd = os.open(home / "node.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise NodeError(f"a node is already running in {home}") from exc
    try:
        yield
    finally:
        os.close(fd)


def _make_relay(cfg: Config, network: Network, store: Store) -> Relay:
    settings = RelaySettings(
        nickname=cfg.relay_nickname, or_port=cfg.relay_port, bandwidth_rate=cfg.relay_rate,
        bandwidth_burst=cfg.relay_burst, contact=cfg.relay_contact,
    )
    return Relay(
        cfg.relay_dir, network, store, settings, RatioSettings(cfg.free_base, cfg.ratio),
        enabled=cfg.relay, tor_binary=cfg.tor_binary, bootstrap_timeout=cfg.bootstrap_timeout,
    )
