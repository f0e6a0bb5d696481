"""A tor process owned by this process, and its control connection through stem.

:class:`TorProcess` launches tor on a data dir, connects and authenticates a controller,
waits for bootstrap and stops tor again; :class:`~.client.TorClient` (the node's client
tor, its onion services) and :class:`~.relay.RelayTor` (the relay) are made of it.

stem is threaded: every controller call runs in ``asyncio.to_thread`` under a time
limit, and stem's listeners only hand events to the loop (``call_soon_threadsafe``).
stem exceptions become :class:`~onionshare_bt.errors.TorError` and its subclasses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onionshare_bt.errors import Timeout, TorBootstrapFailed, TorError
from onionshare_bt.tor.network import Network
from onionshare_bt.tor.stale import STALE_PID_FILE, reap_stale
from onionshare_bt.tor.stemlib import EventType, stem
from onionshare_bt.tor.torrc import (
    bootstrap_fields, client_torrc, find_tor, log_tail, parse_bootstrap, render,
)

__all__ = ["TorProcess"]

log = logging.getLogger(__name__)

#: seconds allowed for one controller command
CONTROL_TIMEOUT = 30.0
#: seconds allowed for tor to open its control port
LAUNCH_TIMEOUT = 30.0
#: seconds tor gets to exit on SIGTERM before SIGKILL (tor 0.4.9 sometimes deadlocks in
#: cpuworker_free_all() while exiting)
TERM_GRACE = 3.0
KILL_TIMEOUT = 5.0


class TorProcess:
    """A tor process owned by this process (async context manager).

    :param data_dir: tor's DataDirectory; created 0700
    :param network: the network to join (:meth:`Network.public` or a testnet's)
    :param tor_binary: path or name of tor; default ``$OBT_TOR``, else ``tor`` on PATH
    :param bootstrap_timeout: seconds :meth:`start` waits for bootstrap to reach 100 %
    :param owner_pid: tor exits when this process exits (default: this process)
    :raises TorMissing: from the constructor, if tor cannot be found
    """

    def __init__(self, data_dir: Path, network: Network, *, tor_binary: str | None = None,
                 bootstrap_timeout: float = 90.0, owner_pid: int | None = None,
                 extra_options: tuple[tuple[str, str], ...] = ()) -> None:
        self.extra_options = tuple(extra_options)
        self.data_dir = Path(data_dir)
        self.network = network
        self.tor_binary = find_tor(tor_binary)
        self.bootstrap_timeout = bootstrap_timeout
        self.owner_pid = owner_pid or os.getpid()
        #: tor's SOCKS listener, set by :meth:`start`
        self.socks_address: tuple[str, int] = ("127.0.0.1", 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fresh()

    def _fresh(self) -> None:
        """What one tor process has: no process yet, no controller, no status."""
        self._proc: subprocess.Popen | None = None
        self._controller: stem.control.Controller | None = None
        self._status = {"progress": 0, "summary": "not started", "tag": "", "warning": None}
        self._ready: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int:
        """The tor process id.

        :raises TorError: if tor was never started
        """
        if self._proc is None:
            raise TorError("tor is not running")
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        """tor's log file."""
        return self.data_dir / "tor.log"

    def is_alive(self) -> bool:
        """:returns: True while the tor process runs."""
        return self._proc is not None and self._proc.poll() is None

    async def __aenter__(self) -> TorClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- start ----------------------------------------------------------------------

    async def start(self) -> None:
        """Launch tor, connect the controller and wait for bootstrap to reach 100 %.

        :raises TorError: if tor cannot start or the controller cannot connect
        :raises TorBootstrapFailed: if bootstrap does not finish within the time limit
        """
        if self._proc is not None:
            raise TorError("this TorClient was already started")
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        try:
            port_file = self._prepare()
            self._launch()
            control = await self._wait_control_port(port_file)
            await self._connect(control)
            await self._wait_bootstrap()
        except BaseException:
            await self.close()
            raise
        self._started()
        log.info("tor %d bootstrapped; SOCKS at %s:%d", self.pid, *self.socks_address)

    def _started(self) -> None:
        """Called once tor has bootstrapped (:class:`~.client.TorClient` starts its work)."""

    def _prepare(self) -> Path:
        """Create the 0700 data dir, the torrc and the empty GeoIP file."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        (self.data_dir / "empty").write_bytes(b"")
        port_file = self.data_dir / "control_port"
        port_file.unlink(missing_ok=True)
        reap_stale(self.data_dir)
        (self.data_dir / "torrc").write_text(self._torrc(), encoding="utf-8")
        return port_file

    def _torrc(self) -> str:
        """The torrc text; the relay (:mod:`.relay`) builds its own."""
        base = client_torrc(self.data_dir, self.network, self.owner_pid)
        return base + render(self.extra_options) if self.extra_options else base

    def _launch(self) -> None:
        torrc, empty = self.data_dir / "torrc", self.data_dir / "empty"
        with open(self.log_path, "ab") as out:
            try:
                self._proc = subprocess.Popen(
                    [self.tor_binary, "-f", str(torrc), "--defaults-torrc", str(empty)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=self.data_dir, start_new_session=True,
                )
            except OSError as exc:
                raise TorError(f"cannot run {self.tor_binary}: {exc.strerror or exc}") from exc
        (self.data_dir / STALE_PID_FILE).write_text(str(self._proc.pid))
        log.debug("launched tor %d in %s", self._proc.pid, self.data_dir)

    async def _wait_control_port(self, port_file: Path) -> tuple[str, int]:
        """Wait for ``ControlPortWriteToFile``. No event announces a file, so poll it."""
        assert self._proc is not None
        deadline = asyncio.get_running_loop().time() + min(LAUNCH_TIMEOUT, self.bootstrap_timeout)
        while not port_file.exists():
            if self._proc.poll() is not None:
                raise TorError(f"tor exited with status {self._proc.returncode} at startup:\n"
                               f"{log_tail(self.log_path)}")
            if asyncio.get_running_loop().time() > deadline:
                raise TorBootstrapFailed("tor did not open its control port in time")
            await asyncio.sleep(0.05)
        text = port_file.read_text(encoding="ascii").strip()
        host, _, port = text.removeprefix("PORT=").rpartition(":")
        return host, int(port)

    async def _connect(self, control: tuple[str, int]) -> None:
        """Authenticate a controller, subscribe to events, learn the SOCKS port."""
        def connect() -> stem.control.Controller:
            controller = stem.control.Controller.from_port(control[0], control[1])
            try:
                controller.authenticate()
                if self.owner_pid == os.getpid():
                    # stem sends TAKEOWNERSHIP by itself when __OwningControllerProcess is
                    # our pid; then a dropped control connection would kill tor. Undo it.
                    reply = controller.msg("DROPOWNERSHIP")
                    if not reply.is_ok():
                        raise TorError(f"tor refused DROPOWNERSHIP: {reply}")
                    controller.set_conf("__OwningControllerProcess", str(self.owner_pid))
            except BaseException:
                controller.close()
                raise
            return controller

        self._controller = controller = await self._call(connect)
        controller.add_status_listener(self._on_state, spawn=False)
        await self._call(controller.add_event_listener, self._on_status_event,
                         EventType.STATUS_CLIENT)
        await self._listen(controller)
        socks = await self._call(controller.get_info, "net/listeners/socks")
        if socks.strip():  # a relay process has no SOCKS port
            host, _, port = socks.split()[0].strip('"').rpartition(":")
            self.socks_address = (host, int(port))

    async def _listen(self, controller: stem.control.Controller) -> None:
        """Subscribe to the further events a subclass needs (the client: ``HS_DESC``)."""

    async def _wait_bootstrap(self) -> None:
        assert self._ready is not None
        self._set_status(await self._fetch_status())
        try:
            async with asyncio.timeout(self.bootstrap_timeout):
                await asyncio.shield(self._ready)
        except TimeoutError as exc:
            status = self._status
            detail = f"; tor warned: {status['warning']}" if status.get("warning") else ""
            raise TorBootstrapFailed(
                f"tor did not bootstrap within {self.bootstrap_timeout:g} s; stuck at "
                f"{status['progress']}% ({status['summary']}){detail}") from exc

    # -- stem thread -> loop ----------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """From a stem thread: run **callback** on the loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback, *args)

    def _on_state(self, _controller: object, state: stem.control.State, _ts: float) -> None:
        if state == stem.control.State.CLOSED:
            self._post(self._lost_controller)

    def _on_status_event(self, event: Any) -> None:
        if event.action == "BOOTSTRAP":
            self._post(self._set_status, bootstrap_fields(dict(event.arguments)))

    # -- loop side --------------------------------------------------------------------

    def _set_status(self, status: dict) -> None:
        if status["progress"] >= self._status["progress"] or status.get("warning"):
            self._status = {**self._status, **status}
        if status["progress"] >= 100 and self._ready and not self._ready.done():
            self._ready.set_result(None)

    def _lost_controller(self) -> None:
        """The control connection closed without :meth:`close`: tor exited or crashed."""
        log.warning("tor %d closed its control connection; see %s", self.pid, self.log_path)
        if self._ready and not self._ready.done():
            self._ready.set_exception(TorBootstrapFailed(
                f"tor exited during bootstrap at {self._status['progress']}%:\n"
                f"{log_tail(self.log_path)}"))

    def _ctl(self) -> stem.control.Controller:
        if self._controller is None:
            raise TorError("tor is not running")
        return self._controller

    @staticmethod
    async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking stem call in a thread, bounded, translating its errors."""
        try:
            async with asyncio.timeout(CONTROL_TIMEOUT):
                return await asyncio.to_thread(fn, *args, **kwargs)
        except TimeoutError as exc:
            raise Timeout(f"tor did not answer a control command in {CONTROL_TIMEOUT:g} s") from exc
        except stem.SocketClosed as exc:
            raise TorError("lost the control connection to tor (did it exit?)") from exc
        except (stem.InvalidRequest, stem.InvalidArguments) as exc:
            raise TorError(f"tor refused the request: {exc}") from exc
        except (stem.ControllerError, stem.connection.AuthenticationFailure) as exc:
            raise TorError(f"tor controller error: {exc}") from exc

    async def _fetch_status(self) -> dict:
        return parse_bootstrap(await self._call(self._ctl().get_info, "status/bootstrap-phase"))

    # -- public API -------------------------------------------------------------------

    async def bootstrap_status(self) -> dict:
        """How far tor has bootstrapped.

        Once it reached 100 %, the answer comes from tor's status events without a
        control-port round trip: a node whose tor is busy (a burst of new onion services)
        still answers ``obt node status`` at once.

        :returns: ``{"progress": int, "summary": str, "tag": str, "warning": str | None}``
        :raises TorError: if tor is not running
        """
        if self._status["progress"] >= 100 and self._controller is not None:
            if not self.is_alive():
                raise TorError("tor is not running")
            return dict(self._status)
        return await self._fetch_status()

    async def relay_flags(self, fingerprint: str) -> list[str] | None:
        """The flags the current consensus gives a relay, or None if it is not listed.

        :param fingerprint: the relay's 40-hex-digit identity fingerprint
        """
        entry = await self._call(self._ctl().get_network_status, fingerprint, None)
        return sorted(entry.flags) if entry is not None else None

    async def close(self) -> None:
        """Close the controller and stop tor (SIGTERM, then SIGKILL after 3 s).

        Removes nothing from the data dir. Safe to call more than once.
        """
        controller, self._controller = self._controller, None
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        if controller is not None:
            try:
                async with asyncio.timeout(CONTROL_TIMEOUT):
                    await asyncio.to_thread(self._close_controller, controller)
            except TimeoutError:
                log.warning("stem did not close the control connection; stopping tor anyway")
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, TERM_GRACE)
            except subprocess.TimeoutExpired:
                log.info("tor %d hung while exiting; killing it", proc.pid)
                proc.kill()
                await asyncio.to_thread(proc.wait, KILL_TIMEOUT)

    def _close_controller(self, controller: stem.control.Controller) -> None:
        """Close the controller; stem joins its threads, so no event follows."""
        controller.remove_status_listener(self._on_state)
        controller.close()

