"""What a handler sees of the run it executes."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Callable, Optional

from .errors import RunAborted

#: Why a run's signal was aborted: the admin killed it, its timeout elapsed, a newer run of
#: the job covered it (COVER_EARLY), or the executor stopped and the grace period ran out.
CANCEL_REASONS = ("killed", "timeout", "covered", "shutdown")


class CancelSignal:
    """Aborted once on kill, timeout, cover or shutdown; usable from threads and coroutines.

    Python cannot stop a function from outside: a handler that never looks at its signal
    keeps running after the abort, but its result is no longer recorded (the abort's is).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._event = threading.Event()
        self._async_event = asyncio.Event()
        self._reason: Optional[str] = None
        self._message = ""

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    @property
    def reason(self) -> Optional[str]:
        """One of CANCEL_REASONS once aborted, else None."""
        return self._reason

    @property
    def message(self) -> str:
        return self._message

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks (a plain handler's thread) until aborted or `timeout` seconds pass; True when aborted."""
        return self._event.wait(timeout)

    async def wait_async(self) -> None:
        """Waits (an async handler) until the run is aborted."""
        await self._async_event.wait()

    def raise_if_aborted(self) -> None:
        if self._reason is not None:
            raise RunAborted(self._reason, self._message)

    def _abort(self, reason: str, message: str) -> None:
        # Called on the event loop's thread only.
        if self._reason is not None:
            return
        self._reason = reason
        self._message = message
        self._event.set()
        self._async_event.set()


class RunContext:
    """One run: its parameters, a log, and the signal that says when to stop.

    Attributes: `param`, `job_id`, `log_id`, `attempt`, `shard_index`, `shard_total`,
    `handler_name`, `scheduled_at` (datetime or None), `signal` (a CancelSignal).
    """

    __slots__ = (
        "param",
        "job_id",
        "log_id",
        "attempt",
        "shard_index",
        "shard_total",
        "handler_name",
        "scheduled_at",
        "signal",
        "_write",
    )

    def __init__(
        self,
        *,
        param: str,
        job_id: int,
        log_id: int,
        attempt: int,
        shard_index: int,
        shard_total: int,
        handler_name: str,
        scheduled_at: Optional[datetime],
        signal: CancelSignal,
        write: Callable[[str], None],
    ):
        self.param = param
        self.job_id = job_id
        self.log_id = log_id
        self.attempt = attempt
        self.shard_index = shard_index
        self.shard_total = shard_total
        self.handler_name = handler_name
        self.scheduled_at = scheduled_at
        self.signal = signal
        self._write = write

    @property
    def cancel_reason(self) -> Optional[str]:
        return self.signal.reason

    def log(self, *parts: object) -> None:
        """Appends one line (parts joined by spaces, like print) to this run's log, which the
        admin reads with ReadExecutorLog. Ignored once the run's result was reported."""
        self._write(" ".join(str(part) for part in parts))

    def sleep(self, seconds: float) -> None:
        """Sleeps in a plain handler; raises RunAborted at once if the run is aborted."""
        if self.signal.wait(seconds):
            self.signal.raise_if_aborted()

    async def asleep(self, seconds: float) -> None:
        """Sleeps in an async handler; raises RunAborted at once if the run is aborted."""
        try:
            await asyncio.wait_for(self.signal.wait_async(), timeout=seconds)
        except asyncio.TimeoutError:
            return
        self.signal.raise_if_aborted()
