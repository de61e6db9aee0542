"""jobstream executor SDK for Python: run job handlers for a jobstream admin over one gRPC stream.

The protobuf stubs (package `jobstream.v1`) are generated from the repository's proto/
when the package is built; see generate_stubs.py.
"""

from .context import CANCEL_REASONS, CancelSignal, RunContext
from .errors import (
    ExecutorConnectError,
    ExecutorStoppedError,
    InvalidHandlerError,
    InvalidOptionsError,
    RunAborted,
)
from .executor import Executor
from .options import (
    DEFAULT_CAPACITY,
    DEFAULT_LOG_RETENTION_DAYS,
    DEFAULT_RESULT_FLUSH_TIMEOUT_MS,
    DEFAULT_SHUTDOWN_GRACE_PERIOD_MS,
    KEEPALIVE_CHANNEL_OPTIONS,
    TlsOptions,
    default_instance_name,
)
from .run_log import MAX_LOG_READ_BYTES, MAX_LOG_READ_LINES
from .version import PROTOCOL_VERSION, SDK_NAME, SDK_VERSION

__all__ = [
    "CANCEL_REASONS",
    "CancelSignal",
    "DEFAULT_CAPACITY",
    "DEFAULT_LOG_RETENTION_DAYS",
    "DEFAULT_RESULT_FLUSH_TIMEOUT_MS",
    "DEFAULT_SHUTDOWN_GRACE_PERIOD_MS",
    "Executor",
    "ExecutorConnectError",
    "ExecutorStoppedError",
    "InvalidHandlerError",
    "InvalidOptionsError",
    "KEEPALIVE_CHANNEL_OPTIONS",
    "MAX_LOG_READ_BYTES",
    "MAX_LOG_READ_LINES",
    "PROTOCOL_VERSION",
    "RunAborted",
    "RunContext",
    "SDK_NAME",
    "SDK_VERSION",
    "TlsOptions",
    "default_instance_name",
]
