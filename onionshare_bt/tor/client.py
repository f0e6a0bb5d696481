"""The node's own client tor: launch it, control it through stem, host onion services.

::

    async with TorClient(data_dir, Network.load(path)) as tor:
        address, key = await tor.add_onion({80: ("127.0.0.1", 8080)})
        reader, writer = await socks.open_connection(tor.socks_address, peer, 80)

stem is threaded: every controller call runs in ``asyncio.to_thread`` under a time
limit, and stem's listeners only hand events to the loop (``call_soon_threadsafe``).
stem exceptions become :class:`~onionshare_bt.errors.TorError` and its subclasses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from onionshare_bt.errors import Timeout, TorBootstrapFailed, TorError
from onionshare_bt.tor.stemlib import EventType, stem
from onionshare_bt.tor.network import Network
from onionshare_bt.onion import parse_onion
from onionshare_bt.tor.torrc import (
    bootstrap_fields, client_torrc, find_tor, log_tail, parse_bootstrap, render,
)
from onionshare_bt.tor.publication import Publication
from onionshare_bt.tor.publisher import Publisher
from onionshare_bt.tor.reach import Reach
from onionshare_bt.tor.rescue import Rescue
from onionshare_bt.tor.stale import STALE_PID_FILE, reap_stale

__all__ = ["TorClient"]

log = logging.getLogger(__name__)

#: seconds allowed for one controller command
CONTROL_TIMEOUT = 30.0
#: seconds allowed for tor to open its control port
LAUNCH_TIMEOUT = 30.0
#: seconds tor gets to exit on SIGTERM before SIGKILL (tor 0.4.9 sometimes deadlocks in
#: cpuworker_free_all() while exiting)
TERM_GRACE = 3.0
KILL_TIMEOUT = 5.0
_KEY_TYPE = "ED25519-V3"


def _split_key(key: str) -> tuple[str, str]:
    """Split ``"ED25519-V3:<base64>"`` without ever echoing the key."""
    key_type, sep, content = key.partition(":")
    if not sep or key_type != _KEY_TYPE or not content:
        raise TorError(f"not an onion service key (expected {_KEY_TYPE}:<base64>)")
    return key_type, content


class TorClient:
    """A client tor process owned by this process (async context manager).

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
        """What one tor process has: no process yet, nothing published, nothing queued."""
        self._proc: subprocess.Popen | None = None
        self._controller: stem.control.Controller | None = None
        self._status = {"progress": 0, "summary": "not started", "tag": "", "warning": None}
        self._ready: asyncio.Future[None] | None = None
        self._publication = Publication()
        self._reach = Reach()
        # the publisher removes a service it gives another try without taking it back
        self._publisher = Publisher(self._add_stored, self._delete, self.wait_published,
                                    self._publication.uploaded_once)
        self._rescue = Rescue(self._publication.lost, self._publisher.busy,
                              self._publisher.renew)

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
        self._rescue.start()
        log.info("tor %d bootstrapped; SOCKS at %s:%d", self.pid, *self.socks_address)

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
        await self._call(controller.add_event_listener, self._on_hs_desc, EventType.HS_DESC)
        socks = await self._call(controller.get_info, "net/listeners/socks")
        if socks.strip():  # a relay process has no SOCKS port
            host, _, port = socks.split()[0].strip('"').rpartition(":")
            self.socks_address = (host, int(port))

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

    def _on_hs_desc(self, event: Any) -> None:
        action, address = event.action, str(event.address)
        hsdir = str(event.directory_fingerprint or event.directory or "")
        if action == stem.HSDescAction.UPLOAD:
            self._post(self._publication.started, address, hsdir,
                       str(event.descriptor_id or ""))
        elif action == stem.HSDescAction.UPLOADED:
            self._post(self._publication.stored, address, hsdir)
        elif action == stem.HSDescAction.FAILED:
            self._post(self._publication.failed, address, hsdir, str(event.reason or ""))

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
        self._publication.fail_all("tor exited while publishing")

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

    async def add_onion(self, ports: dict[int, tuple[str, int]], key: str | None = None, *,
                        await_publication: bool = True,
                        timeout: float = 60.0,
                        client_auth: str | None = None) -> tuple[str, str]:
        """Publish an ephemeral v3 onion service (``ADD_ONION``).

        :param ports: virtual port -> local ``(host, port)`` it forwards to
        :param key: a key returned by an earlier call, to recreate the same address;
          None creates a new one
        :param await_publication: wait until a first descriptor upload succeeded
        :param timeout: seconds to wait for that upload
        :param client_auth: a client's x25519 public key (base32, see :mod:`.clientauth`):
          only a client holding its private half can reach the service
        :returns: ``(address without .onion, key)``; keep the key secret (0600)
        :raises TorError: if tor refuses (e.g. a malformed key or the service exists)
        :raises Timeout: if no descriptor was uploaded in time (the service is removed)
        """
        key_type, content = _split_key(key) if key is not None else ("NEW", _KEY_TYPE)
        targets = {int(v): f"{host}:{int(port)}" for v, (host, port) in ports.items()}
        response = await self._call(
            self._ctl().create_ephemeral_hidden_service,
            targets, key_type=key_type, key_content=content, await_publication=False,
            client_auth_v3=client_auth)
        address = str(response.service_id)
        if key is None:
            key = f"{response.private_key_type}:{response.private_key}"
        if client_auth is None:
            self._rescue.hosted(address, ports, key)
        if await_publication:
            try:
                await self._publication.wait_first_upload(address, timeout)
            except BaseException:
                await self.remove_onion(address)
                raise
        return address, key

    def restore_onion(self, address: str, ports: dict[int, tuple[str, int]], key: str) -> None:
        """Publish a stored onion service again, in turn (see :mod:`.publisher`): at most a
        few are being published at once, so a burst of them does not wedge tor.

        :param address: its address (known from its key), with or without ``.onion``
        :param ports: as for :meth:`add_onion`
        :param key: the key :meth:`add_onion` returned for it
        :raises BadOnionAddress: if **address** is not a v3 address
        """
        address = parse_onion(address)
        self._rescue.hosted(address, ports, key)
        self._publisher.put(address, ports, key)

    async def _add_stored(self, ports: dict[int, tuple[str, int]], key: str) -> None:
        try:
            await self.add_onion(ports, key, await_publication=False)
        except TorError as exc:  # an earlier ADD_ONION tor answered too late: it has it
            if "collision" not in str(exc).lower():
                raise

    @property
    def renewed(self) -> int:
        """Onion services this tor has published afresh (:mod:`.rescue`) since it started."""
        return self._rescue.renewed

    def renew(self, address: str) -> None:
        """Publish a hosted onion service afresh, in turn (:mod:`.publisher`): removed and
        added again, so tor builds and uploads new descriptors at once. :mod:`.rescue`
        does this by itself for a service a descriptor of which reached no HSDir.

        :raises BadOnionAddress: if **address** is not a v3 address
        :raises TorError: if this tor does not host it (or it has client authorization)
        """
        if not self._rescue.renew(parse_onion(address)):
            raise TorError("this tor hosts no such onion service (without client "
                           "authorization)")

    async def wait_published(self, address: str, timeout: float) -> bool:
        """Wait until tor has published **address** (:mod:`.uploads`).

        :returns: True if it is published, False if **timeout** seconds passed first
        :raises TorError: if tor exits meanwhile
        """
        return await self._publication.wait_published(address, timeout)

    def publication(self, addresses: Iterable[str]) -> dict[str, int]:
        """How many of **addresses** (without ``.onion``) this tor has ``published`` since
        it started (:mod:`.uploads`), or has ``uploading``, ``unstored`` or ``queued``
        (:mod:`.publisher`): until published, a client may get a pre-restart descriptor."""
        return self._publication.counts(addresses, self._publisher.queued)

    async def relay_flags(self, fingerprint: str) -> list[str] | None:
        """The flags the current consensus gives a relay, or None if it is not listed.

        :param fingerprint: the relay's 40-hex-digit identity fingerprint
        """
        entry = await self._call(self._ctl().get_network_status, fingerprint, None)
        return sorted(entry.flags) if entry is not None else None

    async def remove_onion(self, address: str) -> None:
        """Stop an onion service this tor hosts (no error if it is already gone).

        :param address: its address, with or without ``.onion``
        :raises BadOnionAddress: if **address** is not a v3 address
        :raises TorError: if tor is not running
        """
        service_id = parse_onion(address)
        self._rescue.dropped(service_id)
        if self._publisher.withdraw(service_id):
            self._publication.forget(service_id)
            return  # tor never had it, or it is removed as soon as it has it
        await self._delete(service_id)

    async def _delete(self, service_id: str) -> None:
        self._publication.forget(service_id)
        if self.is_alive() and not await self._call(
                self._ctl().remove_ephemeral_hidden_service, service_id):
            log.debug("onion service was already gone")

    # -- as a client: stale onion state (see :mod:`.reach`) --------------------------------
    def reached(self, onion: str) -> None:
        """A stream to ``onion`` opened through this tor."""
        self._reach.reached(onion)

    async def failed(self, onion: str) -> None:
        """A stream to ``onion`` failed: its service may have restarted, and tor may hold
        stale state about it; have tor forget it when :class:`.reach.Reach` says so."""
        why = self._reach.failed(onion)
        if why is None:
            return
        log.warning("%s….onion, %s, did not answer; asking tor to forget cached onion "
                    "descriptors (NEWNYM)", onion[:12], why)
        try:
            await self.new_circuit()
        except TorError as exc:
            log.warning("NEWNYM failed: %s", exc.message)

    async def new_circuit(self) -> None:
        """Ask for fresh circuits (``NEWNYM``); it also forgets cached onion descriptors
        and failed directory lookups. Tor rate-limits it to once per 10 s.

        :raises TorError: if tor is not running
        """
        await self._call(self._ctl().signal, stem.Signal.NEWNYM)

    async def restart(self) -> None:
        """Stop tor if it still runs and start it again on the same data dir, this object
        kept (its SOCKS address may change). The onion services it hosted are gone: the
        caller adds them again; whoever waited for one to be published is told.

        :raises TorError: as :meth:`start`
        """
        await self.close()
        self._publication.fail_all("tor restarted while publishing")
        self._fresh()
        await self.start()

    async def close(self) -> None:
        """Close the controller and stop tor (SIGTERM, then SIGKILL after 3 s).

        Removes nothing from the data dir. Safe to call more than once.
        """
        await self._rescue.close()
        await self._publisher.close()
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

