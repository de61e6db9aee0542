"""The Executor: runs registered handlers for one admin group over one long-lived gRPC
stream, speaking protocol_version 1 (one message per envelope)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from datetime import datetime, timezone
from typing import Any, Callable, List, Optional, Tuple

from google.protobuf.timestamp_pb2 import Timestamp

from jobstream.v1 import executor_pb2 as pb

from .connection import Connection, StreamSession
from .errors import ExecutorStoppedError
from .handlers import HandlerRegistry, Hook
from .options import ResolvedOptions, resolve_options
from .run_log import RunLogStore
from .scheduler import RunScheduler
from .scripts import ScriptRunner
from .spool import ResultSpool, SpooledResult
from .version import PROTOCOL_VERSION, SDK_NAME, SDK_VERSION

#: Used when Welcome names no beat interval.
DEFAULT_BEAT_INTERVAL_S = 10.0
#: An admin asking for faster beats than this is misconfigured; the executor would only burn CPU.
MIN_BEAT_INTERVAL_S = 0.05
#: A stall shorter than this never expires run requests: a long GC pause is not a partition.
MIN_STALL_LIMIT_S = 1.0
LAG_TICK_S = 0.1
LOG_RETENTION_SWEEP_INTERVAL_S = 24 * 60 * 60


def _timestamp(value: Optional[datetime]) -> Optional[Timestamp]:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(timezone.utc).replace(tzinfo=None))
    return stamp


def _run_result(result: SpooledResult) -> Any:
    message = pb.RunResult(
        log_id=result.log_id, attempt=result.attempt, outcome=result.outcome, message=result.message
    )
    if result.started_at is not None:
        message.started_at.CopyFrom(_timestamp(result.started_at))
    if result.finished_at is not None:
        message.finished_at.CopyFrom(_timestamp(result.finished_at))
    return message


class _LagMonitor:
    """Event-loop lag as timer drift: a tick due every LAG_TICK_S that fires late shows how
    long the process was stopped (SIGSTOP) or its loop blocked."""

    def __init__(self, on_lag: Callable[[float], None]):
        self._on_lag = on_lag
        self._expected = 0.0
        self._max = 0.0
        self._task: Optional[asyncio.Task] = None

    def start(self) -> None:
        self._expected = time.monotonic() + LAG_TICK_S
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._expected - time.monotonic()))
            now = time.monotonic()
            lag = now - self._expected
            self._max = max(self._max, lag)
            self._expected = now + LAG_TICK_S
            if lag > 0:
                self._on_lag(lag)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def current_lag(self) -> float:
        """How overdue the next tick is now: large right after a stop, before the tick runs."""
        return 0.0 if self._task is None else max(0.0, time.monotonic() - self._expected)

    def take_max_lag_ms(self) -> int:
        lag = max(self._max, self.current_lag())
        self._max = 0.0
        return min(round(lag * 1000), 0xFFFFFFFF)


class Executor:
    """A jobstream executor.

    ::

        executor = Executor(admin_addresses=["admin:8787"], app_name="orders",
                            access_token=token, instance_name="orders-1", data_dir="/var/lib/orders")

        @executor.handler("report")
        def report(ctx):
            ctx.log("building the report for", ctx.param)
            return "report sent"

        executor.run()  # until SIGTERM or SIGINT; or `await executor.start()` / `await executor.stop()`

    Options are keyword arguments, all checked at once (InvalidOptionsError lists every
    problem). start() returns on the first Welcome and raises ExecutorConnectError when an
    admin refuses the executor before that; every other failure is retried with backoff.
    """

    def __init__(self, **options: Any):
        self._options: ResolvedOptions = resolve_options(**options)
        self._logger = self._options.logger
        self._handlers = HandlerRegistry(self._options.handler_idle_destroy_ms, self._logger)
        self._run_logs = RunLogStore(os.path.join(self._options.data_dir, "logs"), self._logger)
        self._scripts = ScriptRunner(self._options.scripts, self._logger)
        self._state = "idle"
        self._scheduler: Optional[RunScheduler] = None
        self._spool: Optional[ResultSpool] = None
        self._connection: Optional[Connection] = None
        self._lag: Optional[_LagMonitor] = None
        self._tasks: List[asyncio.Task] = []
        self._start_task: Optional[asyncio.Task] = None
        self._stop_task: Optional[asyncio.Task] = None
        self._stop_requested: Optional[asyncio.Event] = None

    @property
    def state(self) -> str:
        """idle, starting, running (welcomed at least once), stopping or stopped."""
        return self._state

    @property
    def instance_name(self) -> str:
        return self._options.instance_name

    @property
    def data_dir(self) -> str:
        return self._options.data_dir

    @property
    def session_id(self) -> Optional[str]:
        session = self._connection.session if self._connection is not None else None
        return session.session_id if session is not None else None

    def register(
        self, name: str, function: Callable[..., Any], *, init: Optional[Hook] = None, destroy: Optional[Hook] = None
    ) -> "Executor":
        """Registers a handler (a function or an async def taking a RunContext). Only before start()."""
        if self._state != "idle":
            raise RuntimeError(f"handlers must be registered before start() (state: {self._state})")
        self._handlers.add(name, function, init, destroy)
        return self

    def handler(self, name: str, *, init: Optional[Hook] = None, destroy: Optional[Hook] = None):
        """Decorator form of register()."""

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name, function, init=init, destroy=destroy)
            return function

        return decorate

    async def start(self) -> None:
        """Connects; returns on the first Welcome. Calling it again waits for the same start."""
        if self._state in ("stopping", "stopped"):
            raise RuntimeError(f"cannot start an executor that is {self._state}; create a new one")
        if self._start_task is None:
            self._state = "starting"
            self._start_task = asyncio.ensure_future(self._start())
        await asyncio.shield(self._start_task)

    async def stop(self) -> None:
        """Takes no new runs, drops queued ones, lets executing ones finish for up to
        shutdown_grace_period_ms and aborts the rest (outcome SHUTDOWN), runs destroy hooks,
        waits up to result_flush_timeout_ms for the admin to acknowledge results, then closes
        the stream. Unacknowledged results stay in the spool for the next process. Idempotent."""
        if self._stop_task is None:
            if self._stop_requested is not None:
                self._stop_requested.set()
            self._stop_task = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stop_task)

    def run(self, *, handle_signals: bool = True) -> None:
        """Starts, serves until SIGTERM/SIGINT (or stop()), then stops gracefully. Blocks."""

        async def serve() -> None:
            stop_requested = asyncio.Event()
            self._stop_requested = stop_requested
            if handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, stop_requested.set)
            await self.start()
            await stop_requested.wait()
            await self.stop()

        asyncio.run(serve())

    # --- lifecycle -------------------------------------------------------------------

    async def _start(self) -> None:
        if not self._handlers.names() and not self._scripts.kinds:
            self._logger.warning("executor started without handlers or script kinds")
        try:
            await asyncio.to_thread(self._run_logs.init)
            await asyncio.to_thread(self._scripts.init)
            self._spool = await ResultSpool.open(self._options.data_dir, self._logger)
        except BaseException:
            await self.stop()
            raise
        if self._state != "starting":
            raise ExecutorStoppedError("the executor was stopped while starting")
        options = self._options
        self._scheduler = RunScheduler(
            capacity=options.capacity,
            pipeline_window=options.pipeline_window,
            handlers=self._handlers,
            run_logs=self._run_logs,
            scripts=self._scripts,
            logger=self._logger,
            on_result=self._on_run_result,
        )
        if options.log_retention_days > 0:
            self._tasks.append(asyncio.ensure_future(self._sweep_logs_forever()))
        self._lag = _LagMonitor(self._on_lag)
        self._lag.start()
        self._connection = Connection(
            options,
            build_register=self._build_register,
            on_welcome=self._on_welcome,
            on_message=self._on_message,
            logger=self._logger,
        )
        try:
            await self._connection.start()
        except BaseException:
            await self.stop()
            raise

    async def _stop(self) -> None:
        previous = self._state
        self._state = "stopped" if previous == "idle" else "stopping"
        if previous == "idle":
            return
        scheduler = self._scheduler
        if scheduler is not None:
            self._logger.info(
                "executor stopping (%d running, %d queued)", scheduler.running_count, scheduler.queued_count
            )
            await scheduler.shutdown(self._options.shutdown_grace_period_ms / 1000)
        # The aborted scripts' process groups are ended (TERM, then KILL after their grace).
        await self._scripts.stop()
        await self._handlers.destroy_all()
        await self._flush_results()
        if self._connection is not None:
            await self._connection.close()
        for task in self._tasks:
            task.cancel()
        if self._lag is not None:
            self._lag.stop()
        left = self._spool.size if self._spool is not None else 0
        if self._spool is not None:
            await self._spool.close()
        self._state = "stopped"
        self._logger.info("executor stopped (%d unacknowledged result(s) left in the spool)", left)

    async def _flush_results(self) -> None:
        spool = self._spool
        session = self._connection.session if self._connection is not None else None
        if spool is None or spool.size == 0 or session is None:
            return
        empty = asyncio.ensure_future(spool.when_empty(self._options.result_flush_timeout_ms / 1000))
        closed = asyncio.ensure_future(session.closed.wait())
        await asyncio.wait({empty, closed}, return_when=asyncio.FIRST_COMPLETED)
        closed.cancel()
        empty.cancel()
        if spool.size > 0:
            self._logger.warning(
                "%d result(s) not acknowledged before stop; they are re-sent on next start", spool.size
            )

    async def _sweep_logs_forever(self) -> None:
        while True:
            try:
                deleted = await asyncio.to_thread(self._run_logs.delete_older_than, self._options.log_retention_days)
                if deleted:
                    self._logger.info(
                        "deleted %d run log(s) older than %d days", deleted, self._options.log_retention_days
                    )
            except OSError as error:
                self._logger.warning("run log retention sweep failed: %s", error)
            await asyncio.sleep(LOG_RETENTION_SWEEP_INTERVAL_S)

    # --- the stream ------------------------------------------------------------------

    def _build_register(self) -> Any:
        options = self._options
        scheduler = self._scheduler
        spool = self._spool
        return pb.Register(
            app_name=options.app_name,
            instance_name=options.instance_name,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            sdk_name=SDK_NAME,
            sdk_version=SDK_VERSION,
            handlers=self._handlers.names(),
            capacity=options.capacity,
            labels=dict(options.labels),
            running=[pb.RunRef(log_id=l, attempt=a) for l, a in (scheduler.active_refs() if scheduler else [])],
            unacknowledged_results=[pb.RunRef(log_id=l, attempt=a) for l, a in (spool.refs() if spool else [])],
            protocol_version=PROTOCOL_VERSION,
            pipeline_window=options.pipeline_window,
            script_kinds=self._scripts.glue_types,
        )

    def _on_welcome(self, session: StreamSession, welcome: Any) -> None:
        if self._state == "starting":
            self._state = "running"
        requested = welcome.beat_interval.seconds + welcome.beat_interval.nanos / 1e9
        interval = max(requested, MIN_BEAT_INTERVAL_S) if requested > 0 else DEFAULT_BEAT_INTERVAL_S
        if welcome.HasField("server_time"):
            # Off by at most the time Welcome took to arrive, well under any request deadline.
            server = welcome.server_time.seconds + welcome.server_time.nanos / 1e9
            session.admin_clock_offset_s = server - time.time()
        session.stall_limit_s = max(2 * interval, MIN_STALL_LIMIT_S)
        beats = asyncio.ensure_future(self._beat_forever(session, interval))
        asyncio.ensure_future(self._cancel_when_closed(session, beats))
        asyncio.ensure_future(self._resend_results(session))

    async def _cancel_when_closed(self, session: StreamSession, task: asyncio.Task) -> None:
        await session.closed.wait()
        task.cancel()

    async def _beat_forever(self, session: StreamSession, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            scheduler = self._scheduler
            if scheduler is None or self._lag is None:
                continue
            beat = pb.Beat(
                running_count=scheduler.running_count,
                queued_count=scheduler.queued_count,
                event_loop_lag_ms=self._lag.take_max_lag_ms(),
                unresponsive_runs=[pb.RunRef(log_id=l, attempt=a) for l, a in scheduler.unresponsive_runs()],
            )
            beat.sent_at.GetCurrentTime()
            session.offer(pb.ExecutorMessage(beat=beat))

    async def _resend_results(self, session: StreamSession) -> None:
        spool = self._spool
        if spool is None:
            return
        pending = spool.durable_results()
        if pending:
            self._logger.info("re-sending %d unacknowledged result(s)", len(pending))
        for result in pending:
            if not spool.has(result.log_id, result.attempt):
                continue
            if not await session.send(pb.ExecutorMessage(run_result=_run_result(result))):
                return

    def _on_run_result(self, result: SpooledResult) -> None:
        spool = self._spool
        if spool is None:
            return
        durable = spool.add(result)

        def send(_: Any) -> None:
            session = self._connection.session if self._connection is not None else None
            if session is not None and spool.has(result.log_id, result.attempt):
                asyncio.ensure_future(session.send(pb.ExecutorMessage(run_result=_run_result(result))))

        # Sent only once durable; a stream welcomed before that re-sends it from the spool.
        durable.add_done_callback(send)

    def _on_lag(self, lag_s: float) -> None:
        """A stall this long means the admin has likely closed the stream and given up on the
        requests it sent meanwhile: the stream is replaced, requests still read from it refused."""
        session = self._connection.session if self._connection is not None else None
        if session is None or lag_s <= session.stall_limit_s:
            return
        session.stalled_for_s = lag_s
        self._logger.warning("executor was stalled for %d ms; replacing its stream", round(lag_s * 1000))
        session.close()

    def _expired(self, session: StreamSession, request: Any) -> Optional[str]:
        stalled = max(self._lag.current_lag() if self._lag else 0.0, session.stalled_for_s or 0.0)
        if stalled > session.stall_limit_s:
            return (
                f"this executor was stalled for {round(stalled * 1000)} ms;"
                " the admin has likely given up on the request"
            )
        if request.HasField("answer_by"):
            answer_by = request.answer_by.seconds + request.answer_by.nanos / 1e9
            late = time.time() + session.admin_clock_offset_s - answer_by
            if late > 0:
                return f"it arrived {round(late * 1000)} ms after its answer_by"
        return None

    async def _reply(
        self, session: StreamSession, request_id: int, accepted: bool, reason: int, message: str, chunk: Any = None
    ) -> bool:
        reply = pb.Reply(request_id=request_id, accepted=accepted, reject_reason=reason, message=message)
        if chunk is not None:
            reply.log_chunk.CopyFrom(chunk)
        return await session.send(pb.ExecutorMessage(reply=reply))

    async def _on_message(self, session: StreamSession, message: Any) -> None:
        # One envelope, one item. Protocol 2's AdminBatch would be handled here by passing its
        # run requests, in order, to _on_run_request and then its ack to _on_result_ack.
        kind = message.WhichOneof("kind")
        value = getattr(message, kind) if kind else None
        try:
            if kind == "run_request":
                await self._on_run_request(session, value)
            elif kind == "kill_request":
                await self._on_kill_request(session, value)
            elif kind == "idle_beat_request":
                idle = self._scheduler.is_job_idle(value.job_id)
                await self._reply(
                    session,
                    value.request_id,
                    idle,
                    pb.REJECT_REASON_UNSPECIFIED if idle else pb.REJECT_REASON_BUSY,
                    "" if idle else f"job {value.job_id} has a run running or queued on this executor",
                )
            elif kind == "beat_request":
                await self._reply(session, value.request_id, True, pb.REJECT_REASON_UNSPECIFIED, "")
            elif kind == "log_read_request":
                await self._on_log_read_request(session, value)
            elif kind == "result_ack":
                await self._on_result_ack(value)
            elif kind == "drain":
                self._logger.info("admin %s asked to drain (%s); reconnecting", session.address, value.reason)
                session.close()
            elif kind == "welcome":
                self._logger.warning("unexpected second Welcome ignored")
            else:
                # A newer admin's message this SDK does not know: ignored, as protobuf intends.
                self._logger.debug("unknown admin message ignored")
        except Exception as error:  # noqa: BLE001 - answered as INVALID so the admin is not left waiting
            self._logger.exception("failed to handle admin message %s", kind)
            request_id = getattr(value, "request_id", None)
            if request_id is not None:
                await self._reply(session, request_id, False, pb.REJECT_REASON_INVALID, f"executor error: {error}")

    async def _on_result_ack(self, ack: Any) -> None:
        refused = [(ref.log_id, ref.attempt) for ref in ack.refused]
        if refused:
            # Kept, they would be re-sent on every stream forever; the admin's word is final.
            self._logger.warning("admin refused run results %s; dropping them", refused)
        if self._spool is not None:
            await self._spool.ack([(ref.log_id, ref.attempt) for ref in ack.results] + refused)

    async def _on_run_request(self, session: StreamSession, request: Any) -> None:
        scheduler = self._scheduler
        spool = self._spool
        log_id, attempt, request_id = request.log_id, request.attempt, request.request_id
        # The same (log, attempt) again (a stream broke, an admin took over a fire): the run
        # is already ours, and running it again would run it twice.
        if (
            scheduler.has(log_id, attempt)
            or (spool is not None and (spool.has(log_id, attempt) or spool.acknowledged_recently(log_id, attempt)))
        ):
            await self._reply(
                session, request_id, True, pb.REJECT_REASON_UNSPECIFIED, "already accepted (duplicate request)"
            )
            return
        expired = self._expired(session, request)
        if expired is not None:
            self._logger.warning("run request for log %d refused: %s", log_id, expired)
            await self._reply(session, request_id, False, pb.REJECT_REASON_EXPIRED, expired)
            return
        # A request read from a stream that ended or is being replaced is never started: the
        # next Register lists what was taken, and the admin sends anything else again.
        if self._state != "running" or not session.is_open:
            why = "executor is draining this stream" if self._state == "running" else "executor is shutting down"
            await self._reply(session, request_id, False, pb.REJECT_REASON_SHUTTING_DOWN, why)
            return
        admission = scheduler.admit(request)
        if not admission.accepted:
            await self._reply(session, request_id, False, admission.reject_reason, admission.message)
            return
        await self._reply(session, request_id, True, pb.REJECT_REASON_UNSPECIFIED, admission.message)
        admission.release()

    async def _on_kill_request(self, session: StreamSession, request: Any) -> None:
        if self._scheduler.kill(request.log_id, request.reason) > 0:
            await self._reply(session, request.request_id, True, pb.REJECT_REASON_UNSPECIFIED, "")
            return
        await self._reply(
            session,
            request.request_id,
            False,
            pb.REJECT_REASON_UNKNOWN_RUN,
            f"log {request.log_id} has no running or queued run on this executor",
        )

    async def _on_log_read_request(self, session: StreamSession, request: Any) -> None:
        pending = self._scheduler.has_log(request.log_id)
        piece = await asyncio.to_thread(self._run_logs.read, request.log_id, request.from_line, request.max_lines)
        if piece is None and not pending:
            await self._reply(
                session,
                request.request_id,
                False,
                pb.REJECT_REASON_UNKNOWN_RUN,
                f"no log for log {request.log_id} on this executor",
            )
            return
        from_line = max(1, request.from_line)
        if piece is None:
            chunk = pb.LogChunk(from_line=from_line, to_line=from_line - 1, end=False)
        else:
            chunk = pb.LogChunk(
                from_line=piece.from_line,
                to_line=piece.to_line,
                lines=piece.lines,
                end=not piece.more
                and not self._scheduler.has_log(request.log_id)
                and not self._run_logs.is_active(request.log_id),
            )
        await self._reply(session, request.request_id, True, pb.REJECT_REASON_UNSPECIFIED, "", chunk)
