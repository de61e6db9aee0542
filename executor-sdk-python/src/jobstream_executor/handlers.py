"""Registered handlers and their init/destroy lifecycle.

`init` runs before a handler's first run on this executor (runs starting meanwhile wait
for it; if it fails, that run fails and the next run tries again). `destroy` runs once the
handler has had no run in progress for `handler_idle_destroy_ms` (0: never while the
executor runs) and when the executor stops; a run after an idle destroy initializes the
handler again. A handler that ignores its abort is in progress until it returns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from .errors import InvalidHandlerError

HANDLER_NAME_PATTERN = re.compile(r"^\S{1,255}$")

Hook = Callable[[], Union[None, Awaitable[None]]]


async def call_maybe_async(function: Callable[..., Any], *args: Any) -> Any:
    """Awaits an async function on the loop; runs a plain one in a thread of its own."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await asyncio.to_thread(function, *args)
    if inspect.isawaitable(result):
        return await result
    return result


class _Entry:
    def __init__(self, name: str, function: Callable[..., Any], init: Optional[Hook], destroy: Optional[Hook]):
        self.name = name
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function)
        self.init = init
        self.destroy = destroy
        self.initializing: Optional[asyncio.Future] = None
        self.initialized = False
        self.in_use = 0
        self.idle_timer: Optional[asyncio.TimerHandle] = None
        self.destroying: Optional[asyncio.Task] = None


class HandlerRegistry:
    def __init__(self, idle_destroy_ms: int, logger: logging.Logger):
        self._handlers: Dict[str, _Entry] = {}
        self._idle_destroy_ms = idle_destroy_ms
        self._logger = logger

    def add(self, name: str, function: Callable[..., Any], init: Optional[Hook], destroy: Optional[Hook]) -> None:
        problems: List[str] = []
        if not isinstance(name, str) or not HANDLER_NAME_PATTERN.match(name):
            problems.append("name must be a non-empty string without whitespace, at most 255 characters")
        elif name in self._handlers:
            problems.append(f'a handler named "{name}" is already registered')
        if not callable(function):
            problems.append("handler must be callable (a function or an async def)")
        if init is not None and not callable(init):
            problems.append("init must be callable")
        if destroy is not None and not callable(destroy):
            problems.append("destroy must be callable")
        if problems:
            raise InvalidHandlerError("invalid handler registration: " + "; ".join(problems))
        self._handlers[name] = _Entry(name, function, init, destroy)

    def has(self, name: str) -> bool:
        return name in self._handlers

    def names(self) -> List[str]:
        return list(self._handlers)

    def get(self, name: str) -> _Entry:
        return self._handlers[name]

    def acquire(self, name: str) -> None:
        entry = self._handlers[name]
        entry.in_use += 1
        if entry.idle_timer is not None:
            entry.idle_timer.cancel()
            entry.idle_timer = None

    def release(self, name: str) -> None:
        entry = self._handlers[name]
        entry.in_use = max(0, entry.in_use - 1)
        if entry.in_use > 0 or not entry.initialized or self._idle_destroy_ms <= 0 or entry.destroy is None:
            return
        loop = asyncio.get_running_loop()

        def idle() -> None:
            entry.idle_timer = None
            if entry.in_use == 0 and entry.initialized:
                self._start_destroy(entry)

        entry.idle_timer = loop.call_later(self._idle_destroy_ms / 1000, idle)

    async def ensure_initialized(self, name: str) -> None:
        entry = self._handlers[name]
        if entry.destroying is not None:
            await asyncio.shield(entry.destroying)
        if entry.initialized:
            return
        if entry.init is None:
            entry.initialized = True
            return
        if entry.initializing is None:
            entry.initializing = asyncio.ensure_future(self._initialize(entry))
        await asyncio.shield(entry.initializing)

    async def _initialize(self, entry: _Entry) -> None:
        try:
            await call_maybe_async(entry.init)
            entry.initialized = True
        finally:
            entry.initializing = None

    def _start_destroy(self, entry: _Entry) -> asyncio.Task:
        entry.initialized = False

        async def destroy() -> None:
            try:
                if entry.destroy is not None:
                    await call_maybe_async(entry.destroy)
            except Exception:  # noqa: BLE001 - a failing hook is reported, never raised
                self._logger.exception("destroy hook of handler %s failed", entry.name)
            finally:
                entry.destroying = None

        entry.destroying = asyncio.ensure_future(destroy())
        return entry.destroying

    async def destroy_all(self) -> None:
        for entry in self._handlers.values():
            if entry.idle_timer is not None:
                entry.idle_timer.cancel()
                entry.idle_timer = None
            if entry.destroying is not None:
                await entry.destroying
            if entry.initialized:
                await self._start_destroy(entry)
