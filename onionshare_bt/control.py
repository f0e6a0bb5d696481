"""The node's control API: JSON over a Unix socket (mode 0600, same Unix user only).

One request per connection: the client writes one JSON object ``{"op": str, "args":
{...}}`` and a newline, the node answers one line, ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"kind", "message", "hint"}}``, and closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import NodeError, NodeNotRunning, ObtError, Timeout, UsageError, from_dict

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024
Handler = Callable[[str, dict], Awaitable[object]]


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serve ``handler(op, args)`` on a Unix socket at ``path``."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self.path.exists():
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            reply = await self._answer(reader, writer)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, reader, writer) -> dict:
        if _peer_uid(writer) not in (os.getuid(), None):
            return _error(NodeError("permission denied: another user's request"))
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            request = json.loads(line)
            op, args = request["op"], request.get("args", {})
            if not isinstance(op, str) or not isinstance(args, dict):
                raise TypeError("op must be a string and args an object")
        except (ValueError, KeyError, TypeError, TimeoutError, asyncio.LimitOverrunError) as exc:
            return _error(UsageError(f"malformed control request: {exc}"))
        try:
            return {"ok": True, "result": await self._handler(op, args)}
        except ObtError as exc:
            return _error(exc)
        except Exception as exc:  # report, never crash the node on one request
            log.exception("control op %s failed", op)
            return _error(NodeError(f"internal error in {op}: {exc}"))


def _error(exc: ObtError) -> dict:
    return {"ok": False, "error": exc.to_dict()}


async def call(path: Path, op: str, args: dict | None = None, timeout: float = 30.0):
    """Send one request to the node at ``path`` and return its result.

    :raises NodeNotRunning: nothing listens there
    :raises Timeout: no answer in ``timeout`` seconds
    :raises ObtError: the node's error, rebuilt with its kind
    """
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=64 * MAX_REQUEST)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NodeNotRunning() from exc
    try:
        writer.write(json.dumps({"op": op, "args": args or {}}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError as exc:
        raise Timeout(f"the node did not answer {op!r} within {timeout:.0f} s") from exc
    except (ConnectionError, OSError) as exc:
        raise NodeError(f"lost the connection to the node: {exc}") from exc
    finally:
        writer.close()
    if not line:
        raise NodeError("the node closed the connection without answering")
    reply = json.loads(line)
    if reply.get("ok"):
        return reply.get("result")
    raise from_dict(reply.get("error") or {})
