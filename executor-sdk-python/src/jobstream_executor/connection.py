"""One Connect stream at a time: connect, register, hand admin messages to the executor,
and reconnect with full-jitter exponential backoff when the stream ends."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, List, Optional

import grpc

from jobstream.v1 import executor_pb2 as pb
from jobstream.v1 import executor_pb2_grpc as pb_grpc

from .errors import ExecutorConnectError, ExecutorStoppedError
from .options import ResolvedOptions

#: How long a stream the executor half-closed may take to flush and be ended by the admin
#: before the call is cancelled.
STREAM_CLOSE_TIMEOUT_S = 1.0
#: An admin that accepted the call but does not answer Register is treated as down.
WELCOME_TIMEOUT_S = 10.0

#: Before the first Welcome these mean the configuration (token, app name, capacity,
#: instance name, address of something that is not an admin) or the SDK is wrong: start()
#: fails instead of retrying forever. Once welcomed they are logged and retried with
#: backoff: the admin side may get fixed.
FATAL_BEFORE_FIRST_WELCOME = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)

_CLOSE = object()


def full_jitter_delay(attempt: int, base_ms: int, max_ms: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait: uniform below the exponential cap, so a fleet that lost the same
    admin does not reconnect in lockstep."""
    cap = min(max_ms, base_ms * 2 ** min(max(attempt, 0), 30))
    return rand() * cap / 1000


class StreamSession:
    """One Connect stream: its outgoing queue and how it ends."""

    def __init__(self, address: str, queue_capacity: int):
        self.address = address
        self.session_id = ""
        self.welcomed = False
        #: Admin clock minus local clock in seconds, measured at Welcome.
        self.admin_clock_offset_s = 0.0
        #: A run request read after the process was stalled longer than this is refused.
        self.stall_limit_s = float("inf")
        #: Set when a stall over stall_limit_s happened while this stream was open.
        self.stalled_for_s: Optional[float] = None
        self.close_requested = False
        self.closed = asyncio.Event()
        self._outbound: "asyncio.Queue[Any]" = asyncio.Queue(queue_capacity)
        self._open = True
        self.call: Any = None

    @property
    def is_open(self) -> bool:
        return self._open and not self.closed.is_set()

    async def send(self, message: Any) -> bool:
        """Queues a message; False when the stream is closing and the message was dropped."""
        if not self._open:
            return False
        try:
            self._outbound.put_nowait(message)
            return True
        except asyncio.QueueFull:
            pass
        # Full: wait for room (backpressure), unless the stream ends first.
        put = asyncio.ensure_future(self._outbound.put(message))
        ended = asyncio.ensure_future(self.closed.wait())
        done, _ = await asyncio.wait({put, ended}, return_when=asyncio.FIRST_COMPLETED)
        if put in done:
            ended.cancel()
            return True
        put.cancel()
        return False

    def offer(self, message: Any) -> bool:
        """Queues a message only if there is room (beats: a newer one follows anyway)."""
        if not self._open or self._outbound.full():
            return False
        self._outbound.put_nowait(message)
        return True

    def close(self) -> None:
        """Ends the stream gracefully: queued messages are written, the stream is half-closed
        and the admin ends its side; after STREAM_CLOSE_TIMEOUT_S the call is cancelled."""
        if self.close_requested or self.closed.is_set():
            return
        self.close_requested = True
        self._open = False
        try:
            self._outbound.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            asyncio.ensure_future(self._outbound.put(_CLOSE))
        asyncio.get_running_loop().call_later(STREAM_CLOSE_TIMEOUT_S, self.cancel)

    def cancel(self) -> None:
        if self.call is not None and not self.call.done():
            self.call.cancel()

    async def _write_loop(self) -> None:
        while True:
            message = await self._outbound.get()
            if message is _CLOSE:
                await self.call.done_writing()
                return
            await self.call.write(message)


class Connection:
    def __init__(
        self,
        options: ResolvedOptions,
        *,
        build_register: Callable[[], Any],
        on_welcome: Callable[[StreamSession, Any], None],
        on_message: Callable[[StreamSession, Any], Awaitable[None]],
        logger: logging.Logger,
    ):
        self._options = options
        self._build_register = build_register
        self._on_welcome = on_welcome
        self._on_message = on_message
        self._logger = logger
        self._stopping = asyncio.Event()
        self._next_address = random.randrange(len(options.admin_addresses))
        self._session: Optional[StreamSession] = None
        self._loop_task: Optional[asyncio.Task] = None
        self._ever_welcomed = False
        self._first: Optional[asyncio.Future] = None

    @property
    def session(self) -> Optional[StreamSession]:
        """The stream that is open and welcomed, if any."""
        session = self._session
        return session if session is not None and session.welcomed and not session.closed.is_set() else None

    async def start(self) -> None:
        if self._loop_task is not None:
            raise RuntimeError("connection already started")
        self._first = asyncio.get_running_loop().create_future()
        self._loop_task = asyncio.ensure_future(self._run())
        await self._first

    async def close(self) -> None:
        self._stopping.set()
        if self._session is not None:
            self._session.close()
        if self._loop_task is not None:
            await self._loop_task
        self._settle_first(ExecutorStoppedError("the executor was stopped before it connected to an admin"))

    def _settle_first(self, error: Optional[BaseException] = None) -> None:
        first = self._first
        if first is None or first.done():
            return
        if error is None:
            first.set_result(None)
        else:
            first.set_exception(error)

    async def _run(self) -> None:
        options = self._options
        failures = 0
        try:
            while not self._stopping.is_set():
                addresses = options.admin_addresses
                address = addresses[self._next_address % len(addresses)]
                self._next_address = (self._next_address + 1) % len(addresses)
                welcomed, close_requested, error = await self._run_session(address)
                if self._stopping.is_set():
                    return
                if welcomed:
                    failures = 0
                min_delay = 0.0
                if error is not None:
                    code = error.code() if isinstance(error, grpc.aio.AioRpcError) else None
                    details = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
                    if code in FATAL_BEFORE_FIRST_WELCOME:
                        refused = ExecutorConnectError(code, address, details or "")
                        if not self._ever_welcomed:
                            self._settle_first(refused)
                            return
                        self._logger.error("%s; retrying", refused)
                    else:
                        # A rate limit or stream cap passes, but an immediate retry would only be refused.
                        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            min_delay = options.reconnect_base_delay_ms / 1000
                        self._logger.warning(
                            "executor stream to %s ended with %s: %s; reconnecting",
                            address,
                            code.name if code is not None else type(error).__name__,
                            details,
                        )
                elif close_requested:
                    # Drain or a stall: replaced at once, on the next address.
                    self._logger.info("executor stream to %s closed; reconnecting", address)
                    continue
                else:
                    self._logger.info("admin %s ended the executor stream; reconnecting", address)
                delay = max(
                    min_delay,
                    full_jitter_delay(failures, options.reconnect_base_delay_ms, options.reconnect_max_delay_ms),
                )
                failures += 1
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except Exception as error:  # noqa: BLE001 - reported to start() and the log
            self._logger.exception("executor connection loop failed")
            self._settle_first(error)

    def _channel(self, address: str) -> grpc.aio.Channel:
        options = list(self._options.channel_options)
        tls = self._options.tls
        if tls is None:
            return grpc.aio.insecure_channel(address, options=options)

        def pem(value: Any) -> Optional[bytes]:
            return value.encode("utf-8") if isinstance(value, str) else value

        credentials = grpc.ssl_channel_credentials(
            root_certificates=pem(tls.root_certificates),
            private_key=pem(tls.private_key),
            certificate_chain=pem(tls.certificate_chain),
        )
        return grpc.aio.secure_channel(address, credentials, options=options)

    async def _run_session(self, address: str):
        session = StreamSession(address, self._options.outbound_queue_capacity)
        self._session = session
        error: Optional[BaseException] = None
        channel = self._channel(address)
        writer: Optional[asyncio.Task] = None
        try:
            stub = pb_grpc.ExecutorServiceStub(channel)
            metadata = (
                (("authorization", f"Bearer {self._options.access_token}"),)
                if self._options.access_token is not None
                else ()
            )
            session.call = stub.Connect(metadata=metadata)
            # Built now, after the previous stream ended: it lists the runs taken until then.
            session.offer(pb.ExecutorMessage(register=self._build_register()))
            writer = asyncio.ensure_future(session._write_loop())
            try:
                first = await asyncio.wait_for(self._read_welcome(session), WELCOME_TIMEOUT_S)
            except asyncio.TimeoutError:
                session.cancel()
                raise TimeoutError(f"admin {address} sent no Welcome within {WELCOME_TIMEOUT_S:.0f} s")
            if first is None:
                return session.welcomed, session.close_requested, None
            welcome = first.welcome
            session.welcomed = True
            session.session_id = welcome.session_id
            self._ever_welcomed = True
            self._logger.info(
                "connected to admin %s (session %s, admin %s)", address, session.session_id, welcome.admin_instance_id
            )
            self._on_welcome(session, welcome)
            self._settle_first()
            while True:
                message = await session.call.read()
                if message is grpc.aio.EOF:
                    break
                await self._on_message(session, message)
        except grpc.aio.AioRpcError as rpc_error:
            # Errors after the executor chose to close (cancelled after the close timeout) are expected.
            if not session.close_requested:
                error = rpc_error
        except asyncio.CancelledError:
            if not session.close_requested and not self._stopping.is_set():
                error = ConnectionError("stream cancelled")
        except Exception as other:  # noqa: BLE001 - any failure ends this stream; the loop reconnects
            if not session.close_requested:
                error = other
        finally:
            session._open = False
            session.closed.set()
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)
            session.cancel()
            if self._session is session:
                self._session = None
            await channel.close()
        return session.welcomed, session.close_requested, error

    async def _read_welcome(self, session: StreamSession) -> Any:
        while True:
            message = await session.call.read()
            if message is grpc.aio.EOF:
                return None
            if message.WhichOneof("kind") == "welcome":
                return message
            self._logger.warning("admin message before Welcome ignored: %s", message.WhichOneof("kind"))
