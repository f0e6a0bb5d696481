"""What the servers of a broadcast say to each other, and the small web helpers the
broadcaster's and the listeners' servers share."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from ..httpserve import not_found, read_body

__all__ = ["BEAT", "MAX_CALL", "MAX_LOST", "Tasks", "error", "field", "json_body",
           "not_found_handler", "port_of"]

log = logging.getLogger(__name__)

#: seconds between a listener's heartbeats to the broadcaster
BEAT = 2.0
#: bytes of a join or heartbeat request or reply
MAX_CALL = 4096
#: servers one join may name as lost
MAX_LOST = 8


class Tasks:
    """The background tasks of the cast part (pumps, listening loops), cancelled at close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a cast task failed", exc_info=task.exception())

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def port_of(run: web.AppRunner | None) -> int:
    """The loopback port a server listens on."""
    assert run is not None
    return run.addresses[0][1]


async def not_found_handler(request: web.Request) -> web.Response:
    return not_found()


def error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def json_body(request: web.Request) -> object:
    raw = await read_body(request, MAX_CALL)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def field(body: object, name: str, kind: type):
    if not isinstance(body, dict) or not isinstance(body.get(name), kind) \
            or isinstance(body.get(name), bool) and kind is int:
        raise ValueError(name)
    return body[name]
