"""Waiting for a fresh test network to become usable, driven by events.

Two phases, as measured in ``shared/TESTNET.md``:

1. every authority serves a consensus listing every node as Running, Valid and HSDir
   (``NEWCONSENSUS`` events on the authorities' controllers);
2. the relays are SIGHUPed (which resets the download back-off they built up while no
   consensus existed) and each bootstraps to 100 % (``STATUS_CLIENT`` events), so they
   can serve microdescriptors: a client asking a relay too early gets a 404 and backs
   off for ~10 s.

The waiting thread ``select()``s on one pidfd per tor process and on a pipe the stem
listeners write to, so it wakes exactly when something happens.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from typing import Any

from onionshare_bt.errors import TorBootstrapFailed
from onionshare_bt.tor.stemlib import EventType, stem
from onionshare_bt.testnet.layout import Node
from onionshare_bt.tor.torrc import log_tail

__all__ = ["REQUIRED_FLAGS", "wait_until_usable"]

#: flags every node needs in the consensus for onion services to work
REQUIRED_FLAGS = frozenset({"Running", "Valid", "HSDir"})
_CONNECT_RETRY = 0.05
_PROGRESS = re.compile(r"PROGRESS=(\d+)")


class _Watch:
    """What the nodes reported so far; stem listeners record and wake the waiter."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.usable: dict[str, set[str]] = {}
        self.progress: dict[str, int] = {}
        self._lock = threading.Lock()
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)

    def _wake(self) -> None:
        os.write(self._wake_w, b"!")

    def consensus(self, node: str, entries: Iterable[Any]) -> None:
        """Record a node's consensus (from stem's event thread)."""
        usable = {e.nickname for e in entries if REQUIRED_FLAGS <= set(e.flags)}
        with self._lock:
            self.usable[node] = usable
        self._wake()

    def bootstrap(self, node: str, progress: int) -> None:
        """Record a node's bootstrap progress (from stem's event thread)."""
        with self._lock:
            self.progress[node] = max(progress, self.progress.get(node, 0))
        self._wake()

    def lacking(self, authorities: list[str]) -> dict[str, set[str]]:
        """authority -> nodes its consensus still lacks (empty once all are usable)."""
        with self._lock:
            gaps = {a: self.expected - self.usable.get(a, set()) for a in authorities}
        return {a: gap for a, gap in gaps.items() if gap}

    def unbootstrapped(self, relays: list[str]) -> dict[str, int]:
        """relay -> its progress, for relays below 100 %."""
        with self._lock:
            return {r: self.progress.get(r, 0) for r in relays if self.progress.get(r, 0) < 100}

    def close(self) -> None:
        os.close(self.wake_r)
        os.close(self._wake_w)


def _connect(node: Node, proc: subprocess.Popen, deadline: float) -> stem.control.Controller:
    """Connect and authenticate to a tor that may still be opening its ControlPort."""
    while True:
        try:
            controller = stem.control.Controller.from_port("127.0.0.1", node.control_port)
            break
        except stem.SocketError as exc:
            if proc.poll() is not None:
                raise _exited(node) from exc
            if time.monotonic() > deadline:
                raise TorBootstrapFailed(f"{node.nickname} never opened its control port") from exc
            time.sleep(_CONNECT_RETRY)  # no event announces a listening port
    try:
        controller.authenticate()
    except (stem.ControllerError, stem.connection.AuthenticationFailure) as exc:
        controller.close()
        raise TorBootstrapFailed(f"cannot control {node.nickname}: {exc}") from exc
    return controller


def _attach(node: Node, proc: subprocess.Popen, watch: _Watch,
            deadline: float) -> stem.control.Controller:
    """Subscribe to what tells us this node is ready, then read its current state."""
    controller = _connect(node, proc, deadline)
    nick = node.nickname
    try:
        if node.is_authority:
            controller.add_event_listener(lambda e: watch.consensus(nick, e.desc),
                                          EventType.NEWCONSENSUS)
            watch.consensus(nick, controller.get_network_statuses([]))
        else:
            controller.add_event_listener(
                lambda e: e.action == "BOOTSTRAP" and watch.bootstrap(
                    nick, int(e.arguments.get("PROGRESS", "0"))), EventType.STATUS_CLIENT)
            phase = _PROGRESS.search(controller.get_info("status/bootstrap-phase", ""))
            watch.bootstrap(nick, int(phase.group(1)) if phase else 0)
    except stem.ControllerError as exc:
        controller.close()
        raise TorBootstrapFailed(f"cannot watch {nick}: {exc}") from exc
    return controller


def _exited(node: Node) -> TorBootstrapFailed:
    tail = log_tail(node.data_dir / "tor.log") or log_tail(node.data_dir / "stdout.log")
    return TorBootstrapFailed(f"{node.nickname} exited during bring-up:\n{tail}")


def _pending(nodes: list[Node], watch: _Watch, hupped: bool) -> str | None:
    """What the network still waits for, or None when it is usable."""
    gaps = watch.lacking([n.nickname for n in nodes if n.is_authority])
    if gaps:
        return "; ".join(f"{a} has no consensus yet" if g == watch.expected
                         else f"{a}'s consensus lacks {', '.join(sorted(g))}"
                         for a, g in sorted(gaps.items()))
    if not hupped:
        return "relays not yet told about the consensus"
    slow = watch.unbootstrapped([n.nickname for n in nodes if not n.is_authority])
    if slow:
        return "; ".join(f"{r} bootstrapped {p}%" for r, p in sorted(slow.items()))
    return None


def _select_loop(nodes: list[Node], procs: dict[str, subprocess.Popen],
                 pidfds: dict[int, Node], watch: _Watch, deadline: float) -> None:
    hupped = False
    while (pending := _pending(nodes, watch, hupped)) is not None:
        if not watch.lacking([n.nickname for n in nodes if n.is_authority]) and not hupped:
            for node in nodes:
                if not node.is_authority:
                    procs[node.nickname].send_signal(signal.SIGHUP)
            hupped = True
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TorBootstrapFailed(f"still waiting: {pending}")
        ready, _, _ = select.select([watch.wake_r, *pidfds], [], [], remaining)
        for fd in ready:
            if fd == watch.wake_r:
                os.read(watch.wake_r, 4096)
            else:
                raise _exited(pidfds[fd])


def wait_until_usable(nodes: list[Node], procs: dict[str, subprocess.Popen],
                      deadline: float) -> None:
    """Block until the authorities agree on a full consensus and every relay has it.

    :param nodes: the network's nodes
    :param procs: nickname -> the node's tor process (relays get SIGHUP)
    :param deadline: ``time.monotonic()`` limit
    :raises TorBootstrapFailed: if a tor exits or the deadline passes, naming what lacks
    """
    watch = _Watch({n.nickname for n in nodes})
    pidfds = {os.pidfd_open(procs[n.nickname].pid): n for n in nodes}
    controllers: list[stem.control.Controller] = []
    try:
        for node in nodes:
            controllers.append(_attach(node, procs[node.nickname], watch, deadline))
        _select_loop(nodes, procs, pidfds, watch, deadline)
    finally:
        for controller in controllers:
            controller.close()
        for fd in pidfds:
            os.close(fd)
        watch.close()
