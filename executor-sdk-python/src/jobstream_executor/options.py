"""Executor options: checked once, every problem reported together, compiled into a
read-only ResolvedOptions the rest of the SDK uses."""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import InvalidOptionsError

# The same rules the admin applies at Register (proto/src/names.ts, proto/src/protocol.ts).
APP_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
INSTANCE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ADDRESS_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
TOKEN_PATTERN = re.compile(r"^[\x21-\x7e]+$")
MAX_CAPACITY = 10_000
MAX_PIPELINE_WINDOW = 10_000

DEFAULT_CAPACITY = 16
PIPELINE_WINDOW_PER_CAPACITY = 4
#: The smallest default window: the runs in flight must cover a result's round trip under
#: load, whatever the capacity (as in the Node SDK).
MIN_DEFAULT_PIPELINE_WINDOW = 1_000
DEFAULT_SHUTDOWN_GRACE_PERIOD_MS = 10_000
DEFAULT_RESULT_FLUSH_TIMEOUT_MS = 2_000
DEFAULT_LOG_RETENTION_DAYS = 30
DEFAULT_HANDLER_IDLE_DESTROY_MS = 90_000
DEFAULT_SCRIPT_KILL_GRACE_MS = 5_000
DEFAULT_SCRIPT_STDERR_TAIL_LINES = 20
#: The script (GLUE) kinds this SDK can run; the Node SDK also runs NODEJS and POWERSHELL.
SCRIPT_KINDS = ("SHELL", "PYTHON")
DEFAULT_SCRIPT_INTERPRETERS = {"SHELL": "/bin/sh", "PYTHON": "python3"}

#: Detects a dead admin (or a silently dropped connection) within about 15 s. The admin
#: refuses pings more often than every 5 s (it ends the connection with ENHANCE_YOUR_CALM).
KEEPALIVE_CHANNEL_OPTIONS: Tuple[Tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # gRPC C-core stops pinging after two pings without data unless told otherwise.
    ("grpc.http2.max_pings_without_data", 0),
)


@dataclass(frozen=True)
class TlsOptions:
    """PEM contents (bytes or text, not file paths).

    `root_certificates`: the CA the admin's certificate must chain to (default: system roots).
    `certificate_chain` and `private_key`: a client certificate, both or neither, for an
    admin that requires them (mutual TLS); its subject CN must be the app name.
    """

    root_certificates: Optional[Union[bytes, str]] = None
    certificate_chain: Optional[Union[bytes, str]] = None
    private_key: Optional[Union[bytes, str]] = None


@dataclass(frozen=True)
class ResolvedScriptOptions:
    #: Empty: scripts are off.
    kinds: Tuple[str, ...]
    interpreters: Mapping[str, str]
    work_dir: str
    kill_grace_ms: int
    stderr_tail_lines: int


@dataclass(frozen=True)
class ResolvedOptions:
    admin_addresses: Tuple[str, ...]
    app_name: str
    access_token: Optional[str]
    instance_name: str
    data_dir: str
    capacity: int
    pipeline_window: int
    labels: Mapping[str, str]
    shutdown_grace_period_ms: int
    result_flush_timeout_ms: int
    log_retention_days: int
    handler_idle_destroy_ms: int
    reconnect_base_delay_ms: int
    reconnect_max_delay_ms: int
    outbound_queue_capacity: int
    tls: Optional[TlsOptions]
    channel_options: Tuple[Tuple[str, Any], ...]
    scripts: ResolvedScriptOptions
    logger: logging.Logger = field(compare=False)


def default_instance_name(hostname: Optional[str] = None) -> str:
    """The host name with the characters the admin refuses replaced."""
    cleaned = re.sub(r"[^A-Za-z0-9._:-]", "-", hostname if hostname is not None else socket.gethostname())
    return cleaned[:128] or "executor"


def resolve_options(
    *,
    admin_addresses: Union[Sequence[str], str],
    app_name: str,
    access_token: Optional[str] = None,
    instance_name: Optional[str] = None,
    data_dir: Optional[str] = None,
    capacity: Optional[int] = None,
    pipeline_window: Optional[int] = None,
    labels: Optional[Mapping[str, str]] = None,
    shutdown_grace_period_ms: Optional[int] = None,
    result_flush_timeout_ms: Optional[int] = None,
    log_retention_days: Optional[int] = None,
    handler_idle_destroy_ms: Optional[int] = None,
    reconnect_base_delay_ms: Optional[int] = None,
    reconnect_max_delay_ms: Optional[int] = None,
    outbound_queue_capacity: Optional[int] = None,
    tls: Optional[TlsOptions] = None,
    channel_options: Optional[Mapping[str, Any]] = None,
    logger: Optional[logging.Logger] = None,
    script_kinds: Optional[Sequence[str]] = None,
    script_interpreters: Optional[Mapping[str, str]] = None,
    script_work_dir: Optional[str] = None,
    script_kill_grace_ms: Optional[int] = None,
    script_stderr_tail_lines: Optional[int] = None,
) -> ResolvedOptions:
    """Checks every option and raises one InvalidOptionsError listing all problems."""
    problems: List[str] = []

    addresses = _addresses(admin_addresses, problems)
    if not isinstance(app_name, str) or not APP_NAME_PATTERN.match(app_name):
        problems.append("app_name must be 1 to 64 letters, digits, '.', '_' or '-'")
    has_certificate = tls is not None and getattr(tls, "certificate_chain", None) is not None
    if access_token is None:
        if not has_certificate:
            problems.append(
                "access_token is required (or give tls.certificate_chain and tls.private_key for a client certificate)"
            )
    elif not isinstance(access_token, str) or not TOKEN_PATTERN.match(access_token):
        problems.append("access_token must be a non-empty string of printable ASCII without spaces")

    instance = default_instance_name()
    if instance_name is not None:
        if not isinstance(instance_name, str) or not INSTANCE_NAME_PATTERN.match(instance_name):
            problems.append("instance_name must be 1 to 128 letters, digits, '.', '_', ':' or '-'")
        else:
            instance = instance_name

    if data_dir is not None and (not isinstance(data_dir, (str, os.PathLike)) or str(data_dir) == ""):
        problems.append("data_dir must be a non-empty path")

    cap = _integer(capacity, "capacity", 1, MAX_CAPACITY, DEFAULT_CAPACITY, problems)
    window = _integer(
        pipeline_window,
        "pipeline_window",
        0,
        MAX_PIPELINE_WINDOW,
        min(MAX_PIPELINE_WINDOW, max(MIN_DEFAULT_PIPELINE_WINDOW, PIPELINE_WINDOW_PER_CAPACITY * cap)),
        problems,
    )
    grace = _integer(
        shutdown_grace_period_ms, "shutdown_grace_period_ms", 0, 2**31 - 1, DEFAULT_SHUTDOWN_GRACE_PERIOD_MS, problems
    )
    flush = _integer(
        result_flush_timeout_ms, "result_flush_timeout_ms", 0, 2**31 - 1, DEFAULT_RESULT_FLUSH_TIMEOUT_MS, problems
    )
    retention = _integer(log_retention_days, "log_retention_days", 0, 36_500, DEFAULT_LOG_RETENTION_DAYS, problems)
    idle_destroy = _integer(
        handler_idle_destroy_ms, "handler_idle_destroy_ms", 0, 2**31 - 1, DEFAULT_HANDLER_IDLE_DESTROY_MS, problems
    )
    base = _integer(reconnect_base_delay_ms, "reconnect_base_delay_ms", 1, 60_000, 200, problems)
    top = _integer(reconnect_max_delay_ms, "reconnect_max_delay_ms", 1, 600_000, 10_000, problems)
    if top < base:
        problems.append("reconnect_max_delay_ms must not be smaller than reconnect_base_delay_ms")
    queue = _integer(outbound_queue_capacity, "outbound_queue_capacity", 1, 1_000_000, 256, problems)

    label_map: Dict[str, str] = {}
    if labels is not None:
        if not isinstance(labels, Mapping):
            problems.append("labels must be a mapping of strings to strings")
        else:
            for key, value in labels.items():
                if not isinstance(key, str) or key == "" or not isinstance(value, str):
                    problems.append(f"labels[{key!r}] must be a string value with a non-empty string key")
                else:
                    label_map[key] = value

    if tls is not None:
        if not isinstance(tls, TlsOptions):
            problems.append("tls must be a TlsOptions")
        else:
            if (tls.certificate_chain is None) != (tls.private_key is None):
                problems.append("tls.certificate_chain and tls.private_key must be given together")
            for name in ("root_certificates", "certificate_chain", "private_key"):
                value = getattr(tls, name)
                if value is None:
                    continue
                text = value.decode("latin-1") if isinstance(value, bytes) else value
                if not isinstance(text, str) or "-----BEGIN " not in text:
                    problems.append(f"tls.{name} must be PEM contents (not a file path)")

    extra: Tuple[Tuple[str, Any], ...] = ()
    if channel_options is not None:
        if not isinstance(channel_options, Mapping):
            problems.append("channel_options must be a mapping of gRPC channel argument names to values")
        else:
            extra = tuple(channel_options.items())

    if logger is not None and not isinstance(logger, logging.Logger):
        problems.append("logger must be a logging.Logger")

    kinds: List[str] = []
    if script_kinds is not None:
        if isinstance(script_kinds, (str, bytes)) or not isinstance(script_kinds, (list, tuple, set, frozenset)):
            problems.append('script_kinds must be a list of script kinds, e.g. ["SHELL", "PYTHON"]')
        else:
            for kind in script_kinds:
                if kind not in SCRIPT_KINDS:
                    problems.append(f"script_kinds: {kind!r} is not a script kind this SDK runs (SHELL or PYTHON)")
                elif kind not in kinds:
                    kinds.append(kind)
    if kinds and os.name != "posix":
        problems.append("script_kinds need a POSIX system: a script runs in a process group of its own")
    interpreters = dict(DEFAULT_SCRIPT_INTERPRETERS)
    if script_interpreters is not None:
        if not isinstance(script_interpreters, Mapping):
            problems.append("script_interpreters must be a mapping from script kind to interpreter path")
        else:
            for kind, interpreter in script_interpreters.items():
                if kind not in SCRIPT_KINDS:
                    problems.append(f"script_interpreters: {kind!r} is not a script kind this SDK runs (SHELL or PYTHON)")
                elif not isinstance(interpreter, str) or not interpreter.strip() or "\0" in interpreter:
                    problems.append(f"script_interpreters[{kind!r}] must be a non-empty path or command name")
                else:
                    interpreters[kind] = interpreter
    if script_work_dir is not None and (
        not isinstance(script_work_dir, (str, os.PathLike)) or str(script_work_dir) == ""
    ):
        problems.append("script_work_dir must be a non-empty path")
    kill_grace = _integer(
        script_kill_grace_ms, "script_kill_grace_ms", 0, 2**31 - 1, DEFAULT_SCRIPT_KILL_GRACE_MS, problems
    )
    tail_lines = _integer(
        script_stderr_tail_lines, "script_stderr_tail_lines", 1, 1_000, DEFAULT_SCRIPT_STDERR_TAIL_LINES, problems
    )

    if problems:
        raise InvalidOptionsError(problems)

    merged = dict(KEEPALIVE_CHANNEL_OPTIONS)
    merged.update(dict(extra))
    resolved_dir = (
        os.path.abspath(os.fspath(data_dir))
        if data_dir is not None
        else os.path.abspath(os.path.join(".jobstream-executor", app_name, instance.replace(":", "_")))
    )
    return ResolvedOptions(
        admin_addresses=tuple(addresses),
        app_name=app_name,
        access_token=access_token,
        instance_name=instance,
        data_dir=resolved_dir,
        capacity=cap,
        pipeline_window=window,
        labels=label_map,
        shutdown_grace_period_ms=grace,
        result_flush_timeout_ms=flush,
        log_retention_days=retention,
        handler_idle_destroy_ms=idle_destroy,
        reconnect_base_delay_ms=base,
        reconnect_max_delay_ms=top,
        outbound_queue_capacity=queue,
        tls=tls,
        channel_options=tuple(merged.items()),
        scripts=ResolvedScriptOptions(
            kinds=tuple(kinds),
            interpreters=interpreters,
            work_dir=os.path.abspath(os.fspath(script_work_dir))
            if script_work_dir is not None
            else os.path.join(resolved_dir, "glue"),
            kill_grace_ms=kill_grace,
            stderr_tail_lines=tail_lines,
        ),
        logger=logger or logging.getLogger("jobstream_executor"),
    )


def _addresses(value: Any, problems: List[str]) -> List[str]:
    if isinstance(value, str):
        items: List[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        problems.append('admin_addresses must be a non-empty list of "host:port" strings')
        return []
    if not items:
        problems.append("admin_addresses must not be empty")
    out: List[str] = []
    for item in items:
        match = ADDRESS_PATTERN.match(item) if isinstance(item, str) else None
        if match is None or not 1 <= int(match.group(2)) <= 65_535:
            problems.append(f'admin_addresses: {item!r} is not a "host:port" address')
        else:
            out.append(item)
    return out


def _integer(value: Any, name: str, low: int, high: int, fallback: int, problems: List[str]) -> int:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{name} must be an integer from {low} to {high}, got {value!r}")
        return fallback
    return value
