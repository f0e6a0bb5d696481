"""A private Tor network on 127.0.0.1: 3 directory authorities and a few non-exit relays.

``up()`` starts the tor processes detached (their own sessions, so they outlive the
caller), records them in ``<root>/state.json`` and returns once every authority serves a
consensus that lists every relay as Running and HSDir; ``<root>/network.json`` then tells
clients (:meth:`Network.load`) how to join. ``down()`` stops exactly the recorded
processes. Timings and settings follow ``shared/TESTNET.md``; keys come from a cache
(:mod:`~onionshare_bt.testnet.keys`).

Opt-in latency (``latency_ms``, for benchmarks): one more detached process,
:mod:`~onionshare_bt.testnet.delay`, puts a delaying proxy in front of every router's
ORPort, so every tor-to-tor link gets ``latency_ms`` more each way.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from onionshare_bt.errors import TorBootstrapFailed, TorError, UsageError
from onionshare_bt.testnet import layout
from onionshare_bt.testnet.layout import Node
from onionshare_bt.testnet.keys import default_cache, ensure_keys, install_keys
from onionshare_bt.testnet.watch import wait_until_usable
from onionshare_bt.tor.torrc import find_tor

__all__ = ["Testnet"]

log = logging.getLogger(__name__)

#: seconds tor gets to exit on SIGTERM; tor 0.4.9 sometimes deadlocks in
#: cpuworker_free_all() while exiting, so stragglers are then SIGKILLed
TERM_GRACE = 3.0
KILL_TIMEOUT = 5.0
_STATE_VERSION = 1
_DELAY_MODULE = "onionshare_bt.testnet.delay"
#: our own tor children, so that any Testnet in this process can reap them
_CHILDREN: dict[int, subprocess.Popen] = {}


class Testnet:
    """A private test network rooted at **root**.

    :param root: its directory: ``state.json``, ``network.json``, ``nodes/<nick>/``
    :param base_port: first of the ``9 + 2 * relays`` consecutive ports it uses on 127.0.0.1
    :param relays: non-exit relays besides the 3 authorities
    :param tor_binary: path or name of tor; default ``$OBT_TOR``, else ``tor`` on PATH
      (looked up by :meth:`up`, so ``status`` and ``down`` work without tor)
    :param key_cache: where identity keys are cached (default :func:`default_cache`)
    :param latency_ms: added one-way latency per tor-to-tor link, through delaying proxies
      on ``len(routers)`` more ports after the usual ones; 0 (the default) adds none
    :param voting_interval: seconds between consensuses (a time period lasts 24 of them);
      :data:`~.layout.LONG_VOTING_INTERVAL` for nodes that live longer than a period
    :raises UsageError: if the ports, relay count, latency or interval are out of range
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, root: Path, *, base_port: int = 17000, relays: int = 4,
                 tor_binary: str | None = None, key_cache: Path | None = None,
                 latency_ms: float = 0.0,
                 voting_interval: int = layout.VOTING_INTERVAL) -> None:
        if not 1 <= relays <= 20:
            raise UsageError(f"a test network takes 1 to 20 relays, not {relays}")
        if not 0 <= latency_ms <= 1000:
            raise UsageError(f"latency must be 0 to 1000 ms, not {latency_ms:g}")
        if not 10 <= voting_interval <= 300:
            raise UsageError(f"the voting interval must be 10 to 300 s, not {voting_interval}")
        ports = layout.port_count(relays) + (layout.AUTHORITIES + relays if latency_ms else 0)
        if not 1024 <= base_port <= 65536 - ports:
            raise UsageError(f"base port {base_port} is out of range")
        self.root = Path(root).expanduser().resolve()
        self.base_port = base_port
        self.relays = relays
        self.latency_ms = latency_ms
        self.voting_interval = voting_interval
        self._tor_binary = tor_binary
        self.key_cache = Path(key_cache) if key_cache else default_cache()
        self.state_file = self.root / "state.json"
        self.network_file = self.root / "network.json"

    # -- public API -------------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> Path:
        """Start the network, or find it already running, and wait until it is usable.

        :param timeout: seconds allowed for the whole bring-up
        :returns: the network file (``<root>/network.json``)
        :raises TorMissing: if tor (or, on the first run, tor-gencert) cannot be found
        :raises TorBootstrapFailed: if it is not usable in time (what started is stopped)
        :raises TorError: if a port is taken or a process cannot start
        """
        tor = find_tor(self._tor_binary)
        state = self._read_state()
        if state is not None:
            if state.get("ready") and self._all_alive(state) and self.network_file.exists():
                return self.network_file
            self.down()
        started = time.monotonic()
        deadline = started + timeout
        nodes = layout.plan(self.root, self.base_port, self.relays)
        if self.latency_ms:
            nodes = layout.with_delay(nodes, self.base_port, self.relays)
        _check_ports_free([port for node in nodes for port in node.ports])
        authorities = self._prepare(nodes, tor)
        procs: dict[str, subprocess.Popen] = {}
        try:
            if self.latency_ms:
                procs["delay"] = self._spawn_delay(nodes)
            for node in nodes:
                procs[node.nickname] = self._spawn(node, tor)
            self._write_state(nodes, procs, ready=False)
            self._await_usable(nodes, procs, deadline, timeout)
        except BaseException:
            self._stop([p.pid for p in procs.values()])
            self.state_file.unlink(missing_ok=True)
            raise
        network = dataclasses.replace(
            layout.network_for(f"testnet-{self.base_port}", authorities),
            bandwidth_file=str(self.root / "nodes" / "bandwidths"),
        )
        _write_atomic(self.network_file, network.to_json())
        self._write_state(nodes, procs, ready=True, took=time.monotonic() - started)
        log.info("test network up in %.1f s", time.monotonic() - started)
        return self.network_file

    def down(self) -> None:
        """Stop the processes recorded in ``state.json`` (SIGTERM, then SIGKILL).

        Only processes whose command line is tor's and names this root are signalled.
        Removes ``state.json`` and ``network.json``; keeps the node directories.

        :raises TorError: if a process survives SIGKILL
        """
        state = self._read_state()
        if state is None:
            return
        pids = [p["pid"] for p in state.get("processes", []) if isinstance(p.get("pid"), int)]
        survivors = self._stop(pids)
        if survivors:
            raise TorError(f"tor processes {survivors} did not exit")
        self.network_file.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)

    def status(self) -> dict:
        """Describe the network.

        :returns: ``{"up": bool, "network_file": str, "processes": [{"role", "nickname",
          "pid", "alive", "or_port", "dir_port"}, ...]}``
        """
        state = self._read_state() or {}
        processes = [
            {"role": p.get("role"), "nickname": p.get("nickname"), "pid": p.get("pid"),
             "alive": self._is_ours(p.get("pid")), "or_port": p.get("or_port"),
             "dir_port": p.get("dir_port")}
            for p in state.get("processes", [])
        ]
        up = bool(state.get("ready")) and bool(processes) and all(p["alive"] for p in processes)
        return {"up": up, "network_file": str(self.network_file), "processes": processes}

    # -- bring-up ---------------------------------------------------------------------

    def _prepare(self, nodes: list[Node], tor: str) -> list[str]:
        """Fresh node dirs with cached keys, torrcs and the bandwidth file.

        :returns: the ``DirAuthority`` values
        """
        keys = ensure_keys(nodes, self.key_cache, tor)
        if (self.root / "nodes").exists():  # a previous run's state would confuse tor
            shutil.rmtree(self.root / "nodes")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for node in nodes:
            install_keys(node, keys[node.nickname])
        authorities = [layout.dir_authority_line(n, keys[n.nickname].v3ident or "",
                                                 keys[n.nickname].fingerprint)
                       for n in nodes if n.is_authority]
        empty = self.root / "nodes" / "empty"
        empty.write_bytes(b"")
        now = time.time()
        bandwidths = self.root / "nodes" / "bandwidths"
        bandwidths.write_text(layout.bandwidth_file(
            (k.fingerprint for k in keys.values()), int(now)), encoding="ascii")
        offset = layout.voting_offset(now, self.voting_interval)
        for node in nodes:
            text = (layout.authority_torrc(node, authorities, offset=offset,
                                           bandwidths=bandwidths, empty=empty,
                                           interval=self.voting_interval)
                    if node.is_authority else layout.relay_torrc(node, authorities, empty=empty))
            (node.data_dir / "torrc").write_text(text, encoding="utf-8")
        return authorities

    def _spawn(self, node: Node, tor: str) -> subprocess.Popen:
        empty = self.root / "nodes" / "empty"
        with open(node.data_dir / "stdout.log", "ab") as out:
            try:
                proc = subprocess.Popen(
                    [tor, "-f", str(node.data_dir / "torrc"),
                     "--defaults-torrc", str(empty)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=node.data_dir, start_new_session=True)
            except OSError as exc:
                raise TorError(f"cannot run {tor}: {exc.strerror or exc}") from exc
        _CHILDREN[proc.pid] = proc
        return proc

    def _spawn_delay(self, nodes: list[Node]) -> subprocess.Popen:
        """Start the delaying proxies (one detached process) in front of every ORPort."""
        pairs = [f"{n.proxy_port}={n.or_port}" for n in nodes]
        cmd = [sys.executable, "-m", _DELAY_MODULE, "--delay-ms", f"{self.latency_ms:g}",
               "--tag", f"{self.root}/nodes/", *pairs]
        with open(self.root / "nodes" / "delay.log", "ab") as out:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise TorError(f"cannot start the delaying proxies: {exc}") from exc
        _CHILDREN[proc.pid] = proc
        return proc

    def _await_usable(self, nodes: list[Node], procs: dict[str, subprocess.Popen],
                      deadline: float, timeout: float) -> None:
        """Block until the authorities serve a full consensus and the relays have it."""
        try:
            wait_until_usable(nodes, procs, deadline)
        except TorBootstrapFailed as exc:
            raise TorBootstrapFailed(
                f"the test network was not usable within {timeout:g} s; {exc.message}",
                hint=f"See the logs in {self.root / 'nodes'}/*/tor.log.") from exc

    # -- processes --------------------------------------------------------------------

    def _is_ours(self, pid: object) -> bool:
        """True if **pid** is a live tor whose command line names this root."""
        if not isinstance(pid, int) or pid <= 0:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            return False
        if stat.rpartition(")")[2].split()[0] == "Z":
            return False
        name = os.path.basename(argv[0].decode(errors="replace"))
        mine = f"{self.root}/nodes/".encode()
        ours = any(mine in arg for arg in argv[1:])
        if _DELAY_MODULE.encode() in argv[1:]:
            return ours  # our delaying proxies (a python process)
        return name.startswith("tor") and ours

    def _all_alive(self, state: dict) -> bool:
        procs = state.get("processes", [])
        return bool(procs) and all(self._is_ours(p.get("pid")) for p in procs)

    def _stop(self, pids: list[int]) -> list[int]:
        """SIGTERM our tor processes among **pids**, wait, SIGKILL stragglers, reap.

        :returns: pids still alive afterwards
        """
        fds: dict[int, int] = {}
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            if pid in _CHILDREN or self._is_ours(pid):  # checked after pinning the pid
                fds[pid] = fd
            else:
                os.close(fd)
        try:
            left = _signal_and_wait(fds, signal.SIGTERM, TERM_GRACE)
            if left:
                log.info("tor processes %s hung while exiting; killing them", left)
                left = _signal_and_wait({p: fds[p] for p in left}, signal.SIGKILL, KILL_TIMEOUT)
        finally:
            for fd in fds.values():
                os.close(fd)
        for pid in pids:
            child = _CHILDREN.pop(pid, None)
            if child is not None and pid not in left:
                child.wait(timeout=KILL_TIMEOUT)
        return left

    # -- state ------------------------------------------------------------------------

    def _read_state(self) -> dict | None:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise TorError(f"cannot read {self.state_file}: {exc}") from exc
        return state if isinstance(state, dict) else None

    def _write_state(self, nodes: list[Node], procs: dict[str, subprocess.Popen], *,
                     ready: bool, took: float | None = None) -> None:
        processes = layout.describe(nodes, {n: p.pid for n, p in procs.items()})
        if "delay" in procs:
            processes.append({"role": "delay", "nickname": "delay", "pid": procs["delay"].pid,
                              "or_port": None, "dir_port": None, "control_port": None,
                              "data_dir": str(self.root / "nodes")})
        state = {
            "version": _STATE_VERSION, "ready": ready, "base_port": self.base_port,
            "relays": self.relays, "network_file": str(self.network_file),
            "started_at": time.time(), "up_seconds": took, "latency_ms": self.latency_ms,
            "processes": processes,
        }
        _write_atomic(self.state_file, json.dumps(state, indent=2) + "\n")


def _signal_and_wait(fds: dict[int, int], signum: int, timeout: float) -> list[int]:
    """Signal each process through its pidfd and wait (bounded) for all to exit.

    :returns: the pids that had not exited by the deadline
    """
    for fd in fds.values():
        try:
            signal.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            continue  # already exited; its pidfd is readable
    deadline = time.monotonic() + timeout
    waiting = dict(fds)
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select(list(waiting.values()), [], [], remaining)
        waiting = {pid: fd for pid, fd in waiting.items() if fd not in ready}
    return sorted(waiting)


def _check_ports_free(ports: list[int]) -> None:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tor does
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise TorError(f"port {port} on 127.0.0.1 is in use",
                               hint="Pick another base port for the test network.") from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
