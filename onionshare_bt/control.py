"""The node's control API: JSON over a Unix socket (mode 0600, same Unix user only).

One request per connection: the client writes one JSON object ``{"op": str, "args":
{...}}`` and a newline, the node answers one line, ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"kind", "message", "hint"}}``, and closes.

Hostile or broken requests get a ``usage`` error, never silence and never a crash: a body
that is not a JSON object (or nests too deep to decode), a missing or odd ``op``, ``args``
that are not an object, a line over :data:`MAX_REQUEST` bytes, or nothing at all within
``read_timeout``. A connection from another Unix user (``SO_PEERCRED``) is refused without
its request being parsed; the socket's 0600 mode already stops such users from connecting.

The handler is :meth:`onionshare_bt.ops.Operations.call`: the operation names and their
typed arguments are the table in :mod:`onionshare_bt.ops.requests`, which checks the
arguments (a ``usage`` error "bad arguments for <op>") before the operation runs; whatever
else an operation raises that is not an :class:`~onionshare_bt.errors.ObtError` is reported
as an internal error, and the node goes on. A client sends a request with :func:`send`
(typed) or :func:`call` (by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import NodeError, NodeNotRunning, ObtError, Timeout, UsageError, from_dict
from .ops.requests import Request

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024
#: seconds a client may take to send its request line
READ_TIMEOUT = 30.0
#: longest operation name accepted
MAX_OP = 64
#: pending connections the kernel queues; asyncio's client turns a full queue into "Connection
#: lost" (a non-blocking AF_UNIX connect() fails with EAGAIN), so leave room for bursts
BACKLOG = 1024
#: bytes of an oversized request read and dropped, so that its sender can read our error
MAX_DISCARD = 64 * MAX_REQUEST
Handler = Callable[[str, dict], Awaitable[object]]


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serve ``handler(op, args)`` on a Unix socket at ``path``.

    :param handler: runs one request; raises :class:`UsageError` for arguments the op
        cannot take (see :meth:`onionshare_bt.ops.Operations.call`)
    :param read_timeout: seconds a client may take to send its request
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.path = path
        self._handler = handler
        self._read_timeout = read_timeout
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST, backlog=BACKLOG
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
            writer.write(_encode(reply))
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, reader, writer) -> dict:
        if _peer_uid(writer) not in (os.getuid(), None):
            await self._discard_line(reader)  # never parsed; read so the refusal gets through
            return _error(NodeError("permission denied: another user's request"))
        try:
            op, args = _parse(await self._read(reader))
        except UsageError as exc:
            return _error(exc)
        try:
            return {"ok": True, "result": await self._handler(op, args)}
        except ObtError as exc:
            return _error(exc)
        except Exception as exc:  # report, never crash the node on one request
            log.exception("control op %s failed", op)
            return _error(NodeError(f"internal error in {op}: {exc}"))

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readline(), self._read_timeout)
        except TimeoutError as exc:
            raise UsageError(f"no request within {self._read_timeout:g} s") from exc
        except ValueError as exc:  # readline() turns LimitOverrunError into ValueError
            await self._discard_line(reader)
            raise UsageError(f"control request larger than {MAX_REQUEST} bytes") from exc

    async def _discard_line(self, reader: asyncio.StreamReader) -> None:
        """Drop the rest of a request line we refuse (bounded in bytes and time).

        A sender still writing when we close would see its connection reset before it reads
        our answer; reading its line to the end lets it read the error instead.
        """
        dropped = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._read_timeout):
                while dropped < MAX_DISCARD:
                    chunk = await reader.read(64 * 1024)
                    if not chunk or b"\n" in chunk:
                        return
                    dropped += len(chunk)


def _parse(line: bytes) -> tuple[str, dict]:
    """Split one request line into ``(op, args)``.

    :raises UsageError: not a JSON object with a short name ``op`` and an object ``args``
    """
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(f"malformed control request: not JSON ({_clip(exc)})") from exc
    if not isinstance(request, dict):
        raise UsageError("malformed control request: not a JSON object")
    op, args = request.get("op"), request.get("args", {})
    if not isinstance(op, str) or not op.isidentifier() or len(op) > MAX_OP:
        raise UsageError("malformed control request: op must be an operation name")
    if not isinstance(args, dict):
        raise UsageError("malformed control request: args must be a JSON object")
    return op, args


def _encode(reply: dict) -> bytes:
    try:
        return json.dumps(reply).encode() + b"\n"
    except (TypeError, ValueError, RecursionError):
        log.exception("control reply is not JSON")
        failed = _error(NodeError("internal error: the reply is not JSON"))
        return json.dumps(failed).encode() + b"\n"


def _error(exc: ObtError) -> dict:
    return {"ok": False, "error": exc.to_dict()}


def _clip(exc: BaseException, size: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= size else text[:size] + "…"


async def send(path: Path, request: Request, timeout: float = 30.0):
    """Send ``request`` to the node at ``path`` and return its result (see :func:`call`)."""
    return await call(path, request.op, request.args(), timeout)


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
