"""Named background tasks with one owner, cancelled together at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger(__name__)


class TaskRegistry:
    """Start tasks by name; a name runs at most once at a time."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task] = {}

    def spawn(self, name: str, coro: Coroutine) -> asyncio.Task:
        self.cancel_nowait(name)
        task = asyncio.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._done(name, t))
        return task

    def _done(self, name: str, task: asyncio.Task) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", name, exc_info=task.exception())

    def cancel_nowait(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()

    async def cancel(self, prefix: str, timeout: float = 5.0) -> None:
        """Cancel every task whose name starts with ``prefix`` and wait for them."""
        tasks = [t for n, t in self._tasks.items() if n.startswith(prefix)]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def names(self) -> list[str]:
        """The names of the tasks running now, sorted."""
        return sorted(self._tasks)

    async def close(self, timeout: float = 5.0) -> None:
        await self.cancel("", timeout)
