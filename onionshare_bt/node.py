"""The node daemon: one asyncio process that owns every part's lifetime.

Parts start in order through an ``AsyncExitStack`` (store, tor, engine, bridges, tracker,
HTTP client, tasks, restored torrents, control socket) and stop in reverse, only what
started. The CLI talks to the node over :mod:`.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from . import __version__, torrents
from .config import Config
from .control import ControlServer, ops_validator
from .engine.metainfo import parse
from .engine.session import Engine, Event
from .errors import NodeError, ObtError, TorError, UsageError
from .multiplex.bridge import Bridges
from .relay.core import rate_cap
from .relay.driver import RatioSettings, Relay
from .tor.relay import RelaySettings
from .trust.service import TrustService
from .uri import parse_uri
from .store import Store
from .tasks import TaskRegistry
from .tor import socks
from .tor.client import TorClient
from .tor.network import Network
from .tracker.client import TrackerClient
from .tracker.server import TrackerServer

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 90.0
RESUME_SAVE_INTERVAL = 30.0
TOR_CHECK_INTERVAL = 2.0
STALL_CHECK_INTERVAL = 5.0
LEDGER_INTERVAL = 1.0
TOR_RESTART_ATTEMPTS = 3


class Node:
    """The running node. Use as ``async with Node(config) as node: await node.wait()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.parts: torrents.Parts | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._resume_waiters: dict[str, asyncio.Future] = {}
        self.tor_restarts = 0
        self.stalled: set[str] = set()
        self.gated: set[str] = set()
        self.relay = None
        self.trust: TrustService | None = None
        self.exit_code = 0

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
        self._stack.push_async_callback(lambda: self.parts.tor.close() if self.parts else tor.close())
        engine = Engine(self._on_event)
        await engine.start()
        self._stack.push_async_callback(engine.close)
        bridges = Bridges(self._dial, lambda: engine.listen_port)
        self._stack.push_async_callback(bridges.close)
        tracker = TrackerServer(interval=cfg.announce_interval, on_announce=self._on_announce)
        await tracker.start()
        self._stack.push_async_callback(tracker.close)
        http = TrackerClient(tor.socks_address)
        await http.start()
        self._stack.push_async_callback(lambda: self.parts.http.close())
        tasks = TaskRegistry()
        self._stack.push_async_callback(tasks.close)
        self.parts = torrents.Parts(cfg, store, tor, engine, bridges, tracker, http, tasks)
        self._stack.push_async_callback(self._save_all_resume)
        await self._restore()
        self.trust = TrustService(self.parts)
        await self.trust.start()
        self._stack.push_async_callback(self.trust.close)
        tasks.spawn("resume-saver", self._resume_saver())
        tasks.spawn("tor-watchdog", self._tor_watchdog())
        tasks.spawn("stall-watchdog", self._stall_watchdog())
        tasks.spawn("ledger", self._ledger_loop())
        control = ControlServer(
            cfg.socket_path, self.handle, validate=ops_validator(self)
        )
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
            if self.parts.tor.is_alive():
                failures = 0
                continue
            log.error("tor (pid %s) died; restarting it", self.parts.tor.pid)
            try:
                await self._restart_tor()
                log.warning("tor restarted; %d onion services republished",
                            len(self.parts.onion_ports))
                self.tor_restarts += 1
            except ObtError as exc:
                failures += 1
                log.error("restarting tor failed (%d): %s", failures, exc.message)
                if failures >= TOR_RESTART_ATTEMPTS:
                    log.critical("tor cannot be restarted; the node stops")
                    self.exit_code = int(exc.exit_code)
                    self.stop()
                    return

    async def _restart_tor(self) -> None:
        parts = self.parts
        await parts.tor.close()
        parts.tor = await self._new_tor()
        await parts.http.close()
        parts.http = TrackerClient(parts.tor.socks_address)
        await parts.http.start()
        await torrents.republish_all(parts)
        await self.trust.republish()

    async def _dial(self, onion: str, port: int):
        loop = asyncio.get_running_loop()
        return await socks.open_connection(
            self.parts.tor.socks_address, f"{onion}.onion", port,
            timeout=DIAL_TIMEOUT, retry_until=loop.time() + DIAL_TIMEOUT,
        )

    async def _restore(self) -> None:
        for row in self.parts.store.torrents():
            try:
                if row.role == "share":
                    await torrents.restore_share(self.parts, row)
                else:
                    await torrents.restore_download(self.parts, row)
            except ObtError as exc:
                log.error("could not restore %s: %s", row.name, exc.message)
                self.parts.store.update_torrent(row.id, state="error", error=exc.message)

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    def _on_announce(self, torrent_id: str, announce) -> None:
        left = None if announce.event == "stopped" else announce.left
        self.parts.store.record_peer(torrent_id, announce.onion, announce.port, left)

    # -- engine events ------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        store = self.parts.store
        row = store.torrent(event.torrent_id)
        if row is None:
            return
        if event.kind == "resume":
            store.update_torrent(row.id, resume=event.data)
            waiter = self._resume_waiters.pop(row.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif event.kind == "finished" and row.role == "download" and row.state == "downloading":
            store.update_torrent(row.id, state="moving")
            self.parts.engine.move(row.id, Path(row.target))
        elif event.kind == "moved" and row.role == "download":
            staging = Path(row.save_path)
            store.update_torrent(
                row.id, state="complete", save_path=row.target, completed=time.time()
            )
            with contextlib.suppress(OSError):
                staging.rmdir()
            self.parts.engine.save_resume(row.id)
        elif event.kind in ("move_failed", "file_error", "error"):
            log.error("%s: %s", row.name, event.message)
            store.update_torrent(row.id, state="error", error=event.message)
            if event.kind != "move_failed":
                self.parts.engine.pause(row.id)

    async def _ledger_loop(self) -> None:
        """Sample the relay into the ledger; close or open the download gate."""
        while True:
            await self.relay.sample()
            engine, store = self.parts.engine, self.parts.store
            downloads = [r for r in store.torrents("download") if engine.has(r.id)]
            self.relay.count_downloads({r.id: engine.status(r.id).session_down for r in downloads})
            allowance = self.relay.allowance()
            exhausted = allowance.exhausted
            engine.limit_download(rate_cap(allowance.remaining, LEDGER_INTERVAL))
            for r in downloads:
                gate = exhausted and r.state == "downloading"
                if gate != (r.id in self.gated):
                    engine.gate(r.id, gate)
                    (self.gated.add if gate else self.gated.discard)(r.id)
                    log.warning("%s: %s", r.name, "waiting for relay credit" if gate
                                else "relay credit available again; downloading")
            await asyncio.sleep(LEDGER_INTERVAL)

    async def _stall_watchdog(self) -> None:
        """Call a download that made no progress for ``stall_timeout`` stalled; reconnect it."""
        progress: dict[str, tuple[int, float]] = {}
        while True:
            await asyncio.sleep(STALL_CHECK_INTERVAL)
            now = time.monotonic()
            for row in self.parts.store.torrents("download"):
                if (row.state != "downloading" or not self.parts.engine.has(row.id)
                        or row.id in self.gated):
                    progress.pop(row.id, None)
                    self.stalled.discard(row.id)
                    continue
                done = self.parts.engine.status(row.id).total_done
                last = progress.get(row.id)
                if last is None or last[0] != done:
                    progress[row.id] = (done, now)
                    self.stalled.discard(row.id)
                elif now - last[1] > self.config.stall_timeout:
                    log.warning("%s stalled at %d bytes; reconnecting", row.name, done)
                    self.stalled.add(row.id)
                    progress[row.id] = (done, now)
                    self._reconnect(row)

    def _reconnect(self, row) -> None:
        for path in self.parts.bridges.counters(row.id):
            if path.direction == "out":
                host, port = path.endpoint.rsplit(":", 1)
                self.parts.engine.connect(row.id, (host, int(port)))
        torrents.start_announcing(self.parts, row)  # announces again at once

    async def _resume_saver(self) -> None:
        while True:
            await asyncio.sleep(RESUME_SAVE_INTERVAL)
            for row in self.parts.store.torrents("download"):
                if row.state == "downloading" and self.parts.engine.has(row.id):
                    self.parts.engine.save_resume(row.id)

    async def _save_all_resume(self) -> None:
        loop = asyncio.get_running_loop()
        for row in self.parts.store.torrents():
            if self.parts.engine.has(row.id):
                self._resume_waiters[row.id] = loop.create_future()
                self.parts.engine.save_resume(row.id)
        if self._resume_waiters:
            await asyncio.wait(list(self._resume_waiters.values()), timeout=10)

    # -- control API --------------------------------------------------------------------
    async def handle(self, op: str, args: dict):
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise UsageError(f"unknown control operation {op!r}")
        return await handler(**args)

    async def op_share(self, path: str, onions: int | None = None) -> dict:
        return await torrents.share(self.parts, path, onions)

    async def op_get(self, uri: str, target: str, timeout: float | None = None) -> dict:
        return await torrents.get(self.parts, uri, target, timeout)

    async def op_torrent(self, id: str) -> dict:
        row = self._find(id)
        return self._describe(row)

    async def op_list(self) -> list[dict]:
        return [self._describe(row) for row in self.parts.store.torrents()]

    async def op_peers(self, id: str) -> dict:
        row = self._find(id)
        engine = self.parts.engine
        peers = engine.peers(row.id) if engine.has(row.id) else []
        return {
            "id": row.id,
            "paths": [p.as_dict() for p in self.parts.bridges.counters(row.id)],
            "engine_peers": [p.__dict__ for p in peers],
        }

    async def op_unshare(self, id: str, onion: str | None = None) -> dict:
        row = self._find(id)
        if row.role != "share":
            raise UsageError(f"{row.name!r} is a download; use 'obt remove' for it")
        if onion:
            return await torrents.withdraw_onion(self.parts, row, onion)
        return await torrents.remove(self.parts, row, delete_data=False)

    async def op_remove(self, id: str, delete_data: bool = False) -> dict:
        return await torrents.remove(self.parts, self._find(id), delete_data)

    async def op_status(self) -> dict:
        tor = self.parts.tor
        try:
            boot = await tor.bootstrap_status()
        except TorError as exc:  # tor died; the watchdog is restarting it
            boot = {"progress": 0, "summary": f"tor is down: {exc.message}", "tag": "down"}
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.time() - self.started, 1),
            "home": str(self.config.home),
            "network": str(self.config.network_file or "tor"),
            "tor": {"pid": tor.pid, "bootstrap": boot, "socks": list(tor.socks_address),
                    "restarts": self.tor_restarts},
            "engine": {"listen_port": self.parts.engine.listen_port},
            "onions": len(self.parts.store.onions()),
            "torrents": len(self.parts.store.torrents()),
        }

    async def op_relay_status(self) -> dict:
        relay = self.relay
        info = {
            "enabled": relay.enabled, "fingerprint": relay.fingerprint or None,
            "nickname": relay.settings.nickname if relay.enabled else None,
            "relayed_today": relay.relayed_today(), "relayed_total": relay.ledger.relayed,
            "rate_limit": relay.settings.bandwidth_rate if relay.enabled else None,
            "burst_limit": relay.settings.bandwidth_burst if relay.enabled else None,
            "in_consensus": False, "flags": [], "restarts": relay.restarts,
            "pid": None, "or_address": None,
        }
        if relay.tor is not None and relay.tor.is_alive():
            flags = await self.parts.tor.relay_flags(relay.fingerprint)
            info.update(in_consensus=flags is not None, flags=flags or [], pid=relay.tor.pid,
                        or_address=await relay.tor.or_address())
        return info

    async def op_ratio(self) -> dict:
        return {**self.relay.allowance().as_dict(), "relay": self.relay.enabled,
                "gated": sorted(self.gated)}

    # -- identity, catalogue, trust ----------------------------------------------------
    async def op_node_id(self) -> dict:
        return {"onion": f"{self.trust.onion}.onion", "public_uri": self.trust.public_uri}

    async def op_publish(self, id: str, public: bool) -> dict:
        return self.trust.publish(self._find(id), public)

    async def op_published(self) -> dict:
        return {"public_uri": self.trust.public_uri, "items": self.trust.catalogue()}

    async def op_catalogue(self, uri: str) -> dict:
        parsed = parse_uri(uri)
        if parsed.kind != "public":
            raise UsageError("that is not a public catalogue URI (…/public/<token>)")
        items = await self.trust.remote_catalogue(parsed.onion, parsed.token)
        return {"node": f"{parsed.onion}.onion", "items": items}

    async def op_trust(self, action: str, onion: str | None = None,
                       depth: int | None = None) -> dict | list:
        trust = self.trust
        if action == "add":
            return trust.add(onion or "")
        if action == "remove":
            return trust.remove(onion or "")
        if action == "depth":
            return {"depth": trust.depth(depth)}
        if action == "list":
            return {"depth": trust.depth(), "trusted": [f"{o}.onion" for o in
                                                        self.parts.store.trusted()]}
        if action == "graph":
            return await trust.graph()
        raise UsageError(f"unknown trust action {action!r}")

    async def op_search(self, terms: list) -> dict:
        if not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise UsageError("search needs at least one term")
        return await self.trust.search([t.strip() for t in terms])

    async def op_stop(self) -> dict:
        asyncio.get_running_loop().call_soon(self.stop)
        return {"stopping": True, "pid": os.getpid()}

    def _find(self, ident: str):
        rows = [r for r in self.parts.store.torrents() if r.id.startswith(ident.lower())]
        if not ident or len(rows) != 1:
            raise UsageError(f"no single torrent matches id {ident!r}", hint="See: obt list")
        return rows[0]

    def _describe(self, row) -> dict:
        meta = parse(row.torrent)
        out = {
            "id": row.id, "role": row.role, "name": row.name, "state": row.state,
            "size": meta.size, "uri": row.uri, "path": row.save_path, "error": row.error,
        }
        if self.parts.engine.has(row.id):
            st = self.parts.engine.status(row.id)
            out.update(
                progress=st.progress, done=st.total_done, wanted=st.total_wanted,
                rate_down=st.rate_down, rate_up=st.rate_up, peers=st.connected,
                payload_down=st.payload_down, payload_up=st.payload_up,
            )
            if row.state == "downloading" and row.id in self.gated:
                out["state"] = "waiting for relay credit"
            elif row.state == "downloading" and row.id in self.stalled:
                out["state"] = "stalled"
            elif row.state == "downloading" and st.connected == 0:
                out["state"] = "waiting for peers"
        out["announce_error"] = self.parts.announce_errors.get(row.id)
        return out


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
