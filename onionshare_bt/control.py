"""The node's control API: JSON over a Unix socket (mode 0600, same Unix user only).

One request per connection: the client writes one JSON object ``{"op": str, "args":
{...}}`` and a newline, the node answers one line, ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"kind", "message", "hint"}}``, and closes.

Hostile or broken requests get a ``usage`` error, never silence and never a crash: a body
that is not a JSON object (or nests too deep to decode), a missing or odd ``op``, ``args``
that are not an object, a line over :data:`MAX_REQUEST` bytes, or nothing at all within
``read_timeout``. A connection from another Unix user (``SO_PEERCRED``) is refused without
its request being parsed; the socket's 0600 mode already stops such users from connecting.

Bad arguments: ``handler(**args)`` inside the node raises ``TypeError`` for a missing or
unexpected argument, and so does any bug deeper down; after the fact the two look alike.
So the server can be given a ``validate(op, args)`` that checks the arguments before the
call; :func:`ops_validator` builds one that binds them to the op's signature
(``inspect.signature``) and checks JSON types against its annotations. Everything it
refuses is a ``usage`` error "bad arguments for <op>"; a ``TypeError`` raised inside the op
stays an internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
import struct
import types
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import NodeError, NodeNotRunning, ObtError, Timeout, UsageError, from_dict

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024
#: seconds a client may take to send its request line
READ_TIMEOUT = 30.0
MAX_OP = 64
#: pending connections the kernel queues; asyncio's client turns a full queue into "Connection
#: lost" (a non-blocking AF_UNIX connect() fails with EAGAIN), so leave room for bursts
BACKLOG = 1024
#: bytes of an oversized request read and dropped, so that its sender can read our error
MAX_DISCARD = 64 * MAX_REQUEST
Handler = Callable[[str, dict], Awaitable[object]]
#: ``validate(op, args)`` raises :class:`UsageError` for arguments the op cannot take
Validator = Callable[[str, dict], None]


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serve ``handler(op, args)`` on a Unix socket at ``path``.

    :param validate: called with ``(op, args)`` before ``handler``; raises
        :class:`UsageError` for arguments the op cannot take (see :func:`ops_validator`)
    :param read_timeout: seconds a client may take to send its request
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        validate: Validator | None = None,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.path = path
        self._handler = handler
        self._validate = validate
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
            if self._validate is not None:
                self._validate(op, args)
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


# -- argument checks ---------------------------------------------------------------------
def ops_validator(target: object, prefix: str = "op_") -> Validator:
    """A ``validate`` for a handler that runs ``target.<prefix><op>(**args)``.

    Ops ``target`` does not have pass through, for the handler to report.
    """

    def validate(op: str, args: dict) -> None:
        method = getattr(target, prefix + op, None)
        if callable(method):
            check_args(method, op, args)

    return validate


def check_args(func: Callable, op: str, args: dict) -> None:
    """Check that ``func(**args)`` binds and each value has its annotated JSON type.

    Only annotations made of ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict`` and
    ``None`` (alone or in a union) are checked; ``bool`` is not an ``int`` here, an ``int``
    is a ``float``.

    :raises UsageError: "bad arguments for <op>: ..."
    """
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        bound = signature.bind(**args)
    except TypeError as exc:
        raise UsageError(f"bad arguments for {op}: {_clip(exc)}") from None
    hints = _hints(func)
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        accepted = _json_types(hints.get(name))
        if accepted and not _is_a(value, accepted):
            names = " or ".join(_JSON_NAMES[t] for t in accepted)
            raise UsageError(
                f"bad arguments for {op}: {name} must be {names}, "
                f"not {_JSON_NAMES.get(type(value), type(value).__name__)}"
            )


_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _hints(func: Callable) -> dict:
    try:
        return typing.get_type_hints(func)
    except (NameError, TypeError, AttributeError):
        return {}


def _json_types(hint: object) -> tuple[type, ...] | None:
    if hint is None:
        return None
    is_union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if is_union else (hint,)
    options = tuple(typing.get_origin(o) or o for o in options)
    return options if all(o in _JSON_NAMES for o in options) else None


def _is_a(value: object, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in accepted
    if isinstance(value, int) and float in accepted:
        return True
    return isinstance(value, accepted)


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
