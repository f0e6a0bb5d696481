"""Starting and stopping the node process.

``obt node start`` (and ``obt share``/``obt get`` when no node runs) spawns
``python -m onionshare_bt node start --foreground --ready-fd N`` in a new session, with its
output appended to ``<home>/node.log``. The child writes one JSON line to fd N when it is
ready (or why it failed), so the parent never guesses from timing.
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

from . import control
from .config import Config
from .errors import NodeError, NodeNotRunning, ObtError, Timeout, from_dict

START_MARGIN = 60.0
STOP_TIMEOUT = 30.0


def run_foreground(config: Config, ready_fd: int | None) -> None:
    """Run the node in this process until SIGTERM/SIGINT or ``obt node stop``."""
    asyncio.run(_serve(config, ready_fd))


async def _serve(config: Config, ready_fd: int | None) -> None:
    from .node import Node

    try:
        async with Node(config) as node:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, node.stop)
            _report(ready_fd, {"ok": True, "pid": os.getpid()})
            await node.wait()
        if node.exit_code:
            raise SystemExit(node.exit_code)
    except ObtError as exc:
        _report(ready_fd, {"ok": False, "error": exc.to_dict()})
        raise
    except BaseException as exc:
        _report(ready_fd, {"ok": False, "error": NodeError(f"node failed: {exc!r}").to_dict()})
        raise


def _report(fd: int | None, message: dict) -> None:
    if fd is None:
        return
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)
    except OSError:
        pass  # the parent went away or we already reported: nothing to tell


def start_background(config: Config) -> dict:
    """Spawn a node and wait until it is ready.

    :returns: ``{"pid": N, "started": True}``
    :raises ObtError: the error the node reported, or Timeout
    """
    config.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "onionshare_bt", "node", "start", "--foreground",
           "--ready-fd", str(write_fd)]
    if not config.relay:
        cmd.append("--no-relay")
    env = {**os.environ, **config.env()}
    with open(config.log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, pass_fds=(write_fd,), start_new_session=True, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
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


async def ensure_running(config: Config) -> bool:
    """Start a node in the background unless one answers; True if we started it."""
    try:
        await control.call(config.socket_path, "status", timeout=10)
        return False
    except NodeNotRunning:
        pass
    await asyncio.to_thread(start_background, config)
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
