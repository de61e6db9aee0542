"""Runs: admission (capacity, pipelining window, block strategies), execution, timeouts,
kills and shutdown. A port of the Node SDK's run-scheduler.ts; everything here runs on the
event loop's thread, handlers excepted.

Runs of one job are serialized in a lane (XXL-JOB's per-job thread); the block strategy
decides what a new run does when its lane is busy. `capacity` bounds the runs executing
at once; `capacity + pipeline_window` the runs held (executing or queued). A lane whose
next run could start but finds every slot taken waits in line, so runs of different jobs
start in the order they arrived.

A run ends when its handler returns or when it is aborted (kill, timeout, cover,
shutdown), whichever comes first. Python cannot stop a function from outside: after an
abort the result is reported at once and the lane moves on, while a handler that ignores
its signal keeps running unobserved ("abandoned") and no longer counts toward capacity.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from jobstream.v1 import executor_pb2 as pb
from jobstream.v1 import types_pb2 as types

from .context import CancelSignal, RunContext
from .handlers import HandlerRegistry
from .run_log import RunLogStore, RunLogWriter
from .scripts import ScriptRunner
from .spool import SpooledResult

#: A handler still running this long after its abort is reported as ignoring it.
UNRESPONSIVE_AFTER_S = 5.0
#: Result messages end up in the admin's database; a handler must not flood it.
MAX_RESULT_MESSAGE_CHARS = 16 * 1024

OUTCOME_BY_REASON = {
    "killed": types.RUN_OUTCOME_KILLED,
    "timeout": types.RUN_OUTCOME_TIMED_OUT,
    "covered": types.RUN_OUTCOME_COVERED,
    "shutdown": types.RUN_OUTCOME_SHUTDOWN,
}
KNOWN_STRATEGIES = (
    types.BLOCK_STRATEGY_UNSPECIFIED,
    types.BLOCK_STRATEGY_SERIAL_EXECUTION,
    types.BLOCK_STRATEGY_DISCARD_LATER,
    types.BLOCK_STRATEGY_COVER_EARLY,
)


@dataclass
class Admission:
    accepted: bool
    reject_reason: int = pb.REJECT_REASON_UNSPECIFIED
    message: str = ""
    #: Lets an accepted run start; called once its accepting Reply is queued, so the Reply goes first.
    release: Callable[[], None] = lambda: None


@dataclass(eq=False)
class _Run:
    request: Any
    key: Tuple[int, int]
    timeout_s: float
    signal: CancelSignal
    #: The script kind of a script run; None for a handler run.
    script: Optional[str] = None
    state: str = "queued"  # queued | running | done
    released: bool = False
    started_at: Optional[datetime] = None
    log: Optional[RunLogWriter] = None
    timer: Optional[asyncio.TimerHandle] = None


@dataclass(eq=False)
class _Lane:
    job_id: int
    active: Optional[_Run] = None
    queue: List[_Run] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _duration_seconds(duration: Any) -> float:
    seconds = duration.seconds + duration.nanos / 1e9
    return seconds if seconds > 0 else 0.0


class RunScheduler:
    def __init__(
        self,
        *,
        capacity: int,
        pipeline_window: int,
        handlers: HandlerRegistry,
        run_logs: RunLogStore,
        scripts: ScriptRunner,
        logger: logging.Logger,
        on_result: Callable[[SpooledResult], None],
    ):
        self._capacity = capacity
        self._pipeline_window = pipeline_window
        self._handlers = handlers
        self._run_logs = run_logs
        self._scripts = scripts
        self._logger = logger
        self._on_result = on_result
        self._lanes: Dict[int, _Lane] = {}
        self._runs: Dict[Tuple[int, int], _Run] = {}
        self._waiting_for_slot: List[_Lane] = []
        self._running = 0
        self._abandoned: Dict[_Run, float] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running_count(self) -> int:
        return self._running

    @property
    def queued_count(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    def unresponsive_runs(self) -> List[Tuple[int, int]]:
        now = time.monotonic()
        return [run.key for run, aborted_at in self._abandoned.items() if now - aborted_at >= UNRESPONSIVE_AFTER_S]

    def has(self, log_id: int, attempt: int) -> bool:
        return (log_id, attempt) in self._runs

    def has_log(self, log_id: int) -> bool:
        return any(key[0] == log_id for key in self._runs)

    def active_refs(self) -> List[Tuple[int, int]]:
        """Runs queued or executing, for Register.running (aborted ones have their result)."""
        return list(self._runs)

    def is_job_idle(self, job_id: int) -> bool:
        return job_id not in self._lanes

    def admit(self, request: Any) -> Admission:
        def reject(reason: int, message: str) -> Admission:
            return Admission(False, reason, message)

        if request.log_id <= 0 or request.job_id <= 0:
            return reject(pb.REJECT_REASON_INVALID, "run request without log id or job id")
        # Whatever the admin sends: a script kind this executor did not opt into never starts.
        script = self._scripts.admit(request.glue_type)
        if script is not None and script.refusal is not None:
            return reject(pb.REJECT_REASON_INVALID, script.refusal)
        if script is None and not self._handlers.has(request.handler):
            known = ", ".join(self._handlers.names()) or "none"
            return reject(
                pb.REJECT_REASON_UNKNOWN_HANDLER,
                f'no handler named "{request.handler}" is registered on this executor (registered: {known})',
            )
        strategy = request.block_strategy
        if strategy not in KNOWN_STRATEGIES:
            return reject(pb.REJECT_REASON_INVALID, f"unknown block strategy {strategy}")

        lane = self._lanes.get(request.job_id)
        lane_size = 0 if lane is None else (1 if lane.active is not None else 0) + len(lane.queue)
        if lane_size > 0 and strategy == types.BLOCK_STRATEGY_DISCARD_LATER:
            return reject(
                pb.REJECT_REASON_DISCARDED,
                f"job {request.job_id} already has a run running or queued on this executor"
                " (block strategy DISCARD_LATER)",
            )
        covering = lane_size > 0 and strategy == types.BLOCK_STRATEGY_COVER_EARLY
        load = self._running + self.queued_count - (lane_size if covering else 0)
        if load >= self._capacity + self._pipeline_window:
            return reject(
                pb.REJECT_REASON_BUSY,
                f"executor is at capacity ({self._running} running, {self.queued_count} queued,"
                f" capacity {self._capacity}, pipeline window {self._pipeline_window})",
            )

        message = ""
        if covering and lane is not None:
            why = (
                f"covered by a newer run of job {request.job_id} (log {request.log_id}, block strategy COVER_EARLY)"
            )
            # Queued runs first: ending the active one lets the lane start its next run.
            for queued in list(lane.queue):
                self._abort(queued, "covered", why)
            if lane.active is not None:
                self._abort(lane.active, "covered", why)
            message = f"covered {lane_size} earlier run(s) of job {request.job_id}"
        elif lane_size > 0:
            message = f"queued behind {lane_size} run(s) of job {request.job_id}"

        lane = self._lanes.get(request.job_id)
        if lane is None:
            lane = _Lane(request.job_id)
            self._lanes[request.job_id] = lane
        run = _Run(
            request=request,
            key=(request.log_id, request.attempt),
            timeout_s=_duration_seconds(request.timeout) if request.HasField("timeout") else 0.0,
            signal=CancelSignal(asyncio.get_running_loop()),
            script=script.kind if script is not None else None,
        )
        lane.queue.append(run)
        self._runs[run.key] = run
        owner = lane

        def release() -> None:
            run.released = True
            self._pump(owner)

        return Admission(True, pb.REJECT_REASON_UNSPECIFIED, message, release)

    def kill(self, log_id: int, reason: str) -> int:
        """Aborts every queued or executing attempt of a log; returns how many there were."""
        victims = [run for run in self._runs.values() if run.request.log_id == log_id]
        # Queued first, so ending an executing one does not start a victim about to be dropped.
        victims.sort(key=lambda run: 0 if run.state == "queued" else 1)
        message = f"killed: {reason}" if reason else "killed"
        for run in victims:
            self._abort(run, "killed", message)
        return len(victims)

    async def shutdown(self, grace_s: float) -> None:
        """Drops queued runs, waits up to `grace_s` for executing ones, then aborts the rest."""
        for run in list(self._runs.values()):
            if run.state == "queued":
                self._abort(run, "shutdown", "executor shut down before the run started")
        if self._running > 0:
            try:
                await asyncio.wait_for(self._idle.wait(), grace_s)
            except asyncio.TimeoutError:
                pass
        for run in list(self._runs.values()):
            self._abort(
                run,
                "shutdown",
                f"executor shut down; the run did not finish within the {round(grace_s * 1000)} ms grace period",
            )

    def _pump(self, lane: _Lane, in_turn: bool = False) -> None:
        if lane.active is not None:
            return
        if not lane.queue:
            if self._lanes.get(lane.job_id) is lane:
                del self._lanes[lane.job_id]
            return
        following = lane.queue[0]
        if not following.released:
            return
        others_first = not in_turn and len(self._waiting_for_slot) > 0
        if others_first or self._running >= self._capacity:
            if lane not in self._waiting_for_slot:
                self._waiting_for_slot.append(lane)
            return
        lane.queue.pop(0)
        self._start(lane, following)

    def _pump_waiting_lanes(self) -> None:
        while self._waiting_for_slot and self._running < self._capacity:
            self._pump(self._waiting_for_slot.pop(0), True)

    def _start(self, lane: _Lane, run: _Run) -> None:
        request = run.request
        lane.active = run
        self._running += 1
        self._idle.clear()
        run.state = "running"
        run.started_at = _now()
        run.log = self._run_logs.open(request.log_id)
        run.log.line(
            "[jobstream] run started: "
            + (f"handler={request.handler}" if run.script is None else f"script={run.script}")
            + f" job={request.job_id} log={request.log_id}"
            f" attempt={request.attempt} shard={request.shard_index}/{request.shard_total}"
            + (f" timeout={round(run.timeout_s * 1000)}ms" if run.timeout_s > 0 else "")
        )
        loop = asyncio.get_running_loop()
        if run.timeout_s > 0:
            run.timer = loop.call_later(
                run.timeout_s, self._abort, run, "timeout", f"timed out after {round(run.timeout_s * 1000)} ms"
            )
        task = asyncio.ensure_future(self._invoke(run))

        def settled(done: "asyncio.Future[Tuple[int, str]]") -> None:
            self._abandoned.pop(run, None)
            if done.cancelled():
                self._finish(run, types.RUN_OUTCOME_FAILED, "the handler was cancelled")
                return
            outcome, message = done.result()
            self._finish(run, outcome, message)

        task.add_done_callback(settled)

    async def _invoke(self, run: _Run) -> Tuple[int, str]:
        if run.script is not None:
            writer = run.log
            return await self._scripts.run(
                run.request, run.script, run.signal, writer.line if writer is not None else (lambda _text: None)
            )
        name = run.request.handler
        self._handlers.acquire(name)
        try:
            try:
                await self._handlers.ensure_initialized(name)
            except Exception as error:  # noqa: BLE001 - any init failure fails the run
                if run.log is not None:
                    run.log.line(f"[jobstream] handler init failed: {_detail(error)}")
                return types.RUN_OUTCOME_FAILED, f"handler init failed: {_message(error)}"
            # Aborted while init ran: the result is already reported, so the handler must not start.
            if run.state != "running":
                return types.RUN_OUTCOME_FAILED, "run ended before the handler started"
            entry = self._handlers.get(name)
            context = self._context(run)
            try:
                if entry.is_async:
                    value = await entry.function(context)
                else:
                    value = await _in_own_thread(entry.function, context)
                return types.RUN_OUTCOME_SUCCEEDED, _success_message(value)
            except Exception as error:  # noqa: BLE001 - a handler's exception is its failure
                if run.log is not None:
                    run.log.line(f"[jobstream] handler failed: {_detail(error)}")
                return types.RUN_OUTCOME_FAILED, _message(error)
        finally:
            self._handlers.release(name)

    def _context(self, run: _Run) -> RunContext:
        request = run.request
        writer = run.log
        return RunContext(
            param=request.param,
            job_id=request.job_id,
            log_id=request.log_id,
            attempt=request.attempt,
            shard_index=request.shard_index,
            shard_total=request.shard_total,
            handler_name=request.handler,
            scheduled_at=request.scheduled_at.ToDatetime(tzinfo=timezone.utc)
            if request.HasField("scheduled_at")
            else None,
            signal=run.signal,
            write=writer.line if writer is not None else (lambda _text: None),
        )

    def _abort(self, run: _Run, reason: str, message: str) -> None:
        if run.state == "done":
            return
        if run.state == "running":
            run.signal._abort(reason, message)
            self._abandoned[run] = time.monotonic()
        self._finish(run, OUTCOME_BY_REASON[reason], message)

    def _finish(self, run: _Run, outcome: int, message: str) -> None:
        # The first of "handler returned" and "aborted" decides; the other is ignored.
        if run.state == "done":
            return
        was_running = run.state == "running"
        run.state = "done"
        if run.timer is not None:
            run.timer.cancel()
        request = run.request
        finished_at = _now()
        text = message if len(message) <= MAX_RESULT_MESSAGE_CHARS else message[:MAX_RESULT_MESSAGE_CHARS] + "… (truncated)"
        name = types.RunOutcome.Name(outcome).replace("RUN_OUTCOME_", "")
        summary = f"[jobstream] run ended: {name}" + (
            " before it started"
            if run.started_at is None
            else f" after {round((finished_at - run.started_at).total_seconds() * 1000)} ms"
        )
        if text:
            summary += f": {text}"
        if was_running and run.log is not None:
            run.log.line(summary)
            # Lines a handler logs after its result was reported are dropped (the log has ended).
            run.log.close()
        else:
            self._run_logs.append(request.log_id, [summary])

        self._on_result(
            SpooledResult(request.log_id, request.attempt, outcome, text, run.started_at, finished_at)
        )
        self._runs.pop(run.key, None)
        lane = self._lanes.get(request.job_id)
        if lane is not None:
            if lane.active is run:
                lane.active = None
                self._running -= 1
            elif run in lane.queue:
                lane.queue.remove(run)
            self._pump(lane)
        if was_running:
            self._pump_waiting_lanes()
        if self._running == 0:
            self._idle.set()


def _in_own_thread(function: Callable[[RunContext], Any], context: RunContext) -> "asyncio.Future[Any]":
    """A plain handler runs in a thread of its own, not a pool: one that ignores its abort
    keeps its thread, and must not take a pooled one from the runs after it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            value = function(context)
        except BaseException as error:  # noqa: BLE001 - handed to the loop as the run's failure
            outcome: Tuple[Callable[[Any], None], Any] = (future.set_exception, error)
        else:
            outcome = (future.set_result, value)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:
            pass  # the loop is gone (the executor stopped); nobody waits for this run any more

    threading.Thread(target=target, name=f"jobstream-run-{context.log_id}", daemon=True).start()
    return future


def _success_message(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value["message"]
    message = getattr(value, "message", None)
    return message if isinstance(message, str) else ""


def _message(error: BaseException) -> str:
    text = str(error)
    return text if text else type(error).__name__


def _detail(error: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
