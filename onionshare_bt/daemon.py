"""Starting and stopping the node process.

``obt node start`` (and ``obt share``/``obt get`` when no node runs) spawns
``python -m onionshare_bt node start --foreground --ready-fd N`` in a new session, with its
output appended to ``<home>/node.log`` (0600: it names files and onions). The child writes
one JSON line to fd N when it is ready (or why it failed), so the parent never guesses from
timing.

Before a node first runs a relay on the public Tor network, however it is started, the
caller's ``say`` is given the relay's trade-off (:data:`RELAY_NOTICE`) once per home; a marker
file in the home records that it was shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from . import control
from .config import Config
from .errors import NodeError, NodeNotRunning, ObtError, Timeout, from_dict

START_MARGIN = 60.0
STOP_TIMEOUT = 30.0

#: what running a relay exposes, said once per home before the first relay starts
RELAY_NOTICE = """\
this node also runs a Tor middle relay (never an exit); it earns the download allowance.
  - The relay's public IP address is listed in the Tor consensus, which anyone can read.
  - Your ISP, and anyone watching this connection, can see that this machine is a relay.
  - The relay's uptime is public, and it matches the times this node's onions answer,
    which can help link your shares to this IP address.
  To run without it: 'obt node stop', then 'obt node start --no-relay', or put
  'relay = false' in {config_file}; downloads are then limited to the free base allowance.
  This is shown once; see RELAY in obt(1)."""

Say = Callable[[str], None]


def relay_notice(config: Config) -> str | None:
    """The relay's trade-off, if this node would run a relay on the public Tor network and
    it has not been shown for this home yet; otherwise None.

    A private test network has no consensus anyone else reads: nothing to say there.
    """
    if not config.relay or config.network_file is not None:
        return None
    if config.relay_notice_path.exists():
        return None
    return RELAY_NOTICE.format(config_file=config.home / "config.toml")


def tell_relay_notice(config: Config, say: Say | None) -> bool:
    """Give ``say`` the relay notice if it is due, and record that it was shown.

    :returns: True if it was shown now
    """
    text = relay_notice(config)
    if text is None or say is None:
        return False
    say(text)
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(config.relay_notice_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(f"shown {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return True


def run_foreground(config: Config, ready_fd: int | None, say: Say | None = None) -> None:
    """Run the node in this process until SIGTERM/SIGINT or ``obt node stop``.

    :param say: where the relay notice goes, if it is due (see :func:`tell_relay_notice`)
    """
    tell_relay_notice(config, say)
    asyncio.run(_serve(config, ready_fd))


async def _serve(config: Config, ready_fd: int | None) -> None:
    from .node import Node

    try:
        async with Node(config) as node:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, node.stop)
            _report(ready_fd, {"ok": True, "pid": os.getpid()})
            ready_fd = None  # told, and closed: its number may be reused from here on
            await node.wait()
    except ObtError as exc:
        _report(ready_fd, {"ok": False, "error": exc.to_dict()})
        raise
    except BaseException as exc:
        _report(ready_fd, {"ok": False, "error": NodeError(f"node failed: {exc!r}").to_dict()})
        raise
    if node.failure is not None:  # the node stopped itself: its error sets the exit status
        raise node.failure


def _report(fd: int | None, message: dict) -> None:
    if fd is None:
        return
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)
    except OSError:
        pass  # the parent went away or we already reported: nothing to tell


def start_background(config: Config, say: Say | None = None, debug: bool = False) -> dict:
    """Spawn a node and wait until it is ready.

    :param say: where the relay notice goes, if it is due (before the node is spawned)
    :param debug: the node logs at debug level (``obt --debug node start``) into node.log
    :returns: ``{"pid": N, "started": True}``
    :raises ObtError: the error the node reported, or Timeout
    """
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    tell_relay_notice(config, say)
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "onionshare_bt", *(["--debug"] if debug else []),
           "node", "start", "--foreground", "--ready-fd", str(write_fd)]
    if not config.relay:
        cmd.append("--no-relay")
    env = {**os.environ, **config.env()}
    log = open_log(config)
    try:
        proc = subprocess.Popen(
            cmd, pass_fds=(write_fd,), start_new_session=True, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    finally:
        os.close(log)
        os.close(write_fd)
    try:
        reply = _read_ready(read_fd, config.bootstrap_timeout + START_MARGIN)
    finally:
        os.close(read_fd)
    if reply is None:
        if proc.poll() is None:
            proc.terminate()
        raise Timeout(f"the node did not start in time; see {config.log_path}")
    if not reply.get("ok"):
        proc.wait(timeout=STOP_TIMEOUT)
        raise from_dict(reply.get("error") or {})
    return {"pid": reply["pid"], "started": True}


def open_log(config: Config) -> int:
    """Open ``node.log`` for appending, mode 0600 (one an older obt made 0644 is fixed).

    :returns: the file descriptor; the caller closes it
    """
    fd = os.open(config.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def _read_ready(fd: int, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return {"ok": False, "error": {"kind": "node", "message": "the node exited at start"}}
        buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


async def ensure_running(config: Config, say: Say | None = None) -> bool:
    """Start a node in the background unless one answers; True if we started it.

    :param say: where the relay notice goes, if it is due (see :func:`tell_relay_notice`)
    """
    try:
        await control.call(config.socket_path, "status", timeout=10)
        return False
    except NodeNotRunning:
        pass
    await asyncio.to_thread(start_background, config, say)
    return True


async def stop(config: Config) -> dict:
    """Ask the node to stop and wait until its process is gone."""
    try:
        reply = await control.call(config.socket_path, "stop", timeout=10)
    except NodeNotRunning:
        return {"was_running": False}
    pid = int(reply["pid"])
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > deadline:
            raise Timeout(f"the node (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)
    return {"was_running": True, "pid": pid}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
