"""Run logs: one file per log id, `<dir>/<log_id>.log`, one line per ctx.log() line,
prefixed with an ISO-8601 UTC timestamp (the same format as the Node SDK). Attempts of
one log append to the same file."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

#: The most lines one log read returns, whatever it asks for; max_lines = 0 means this many.
MAX_LOG_READ_LINES = 1000
#: The most bytes of line text one read returns: the Reply must fit one gRPC message.
MAX_LOG_READ_BYTES = 1024 * 1024
#: Line offsets remembered per log for rolling reads (logs only grow, so they stay valid).
MAX_CACHED_INDEXES = 64


@dataclass
class LogSlice:
    from_line: int
    to_line: int
    lines: List[str]
    #: True when the file has more after to_line (or a line still being written).
    more: bool


def _stamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class RunLogWriter:
    """The log of one run. Thread-safe: plain handlers log from their own thread."""

    def __init__(self, store: "RunLogStore", log_id: int, path: str, logger: logging.Logger):
        self.log_id = log_id
        self._store = store
        self._path = path
        self._logger = logger
        self._lock = threading.Lock()
        self._file = None
        self._closed = False
        self._failed = False

    def line(self, text: str) -> None:
        with self._lock:
            if self._closed or self._failed:
                return
            stamp = _stamp()
            payload = "".join(f"{stamp} {part}\n" for part in text.replace("\r\n", "\n").split("\n"))
            try:
                if self._file is None:
                    self._file = open(self._path, "a", encoding="utf-8")
                self._file.write(payload)
                # Reads open the file themselves: what is logged must be in the OS by then.
                self._file.flush()
            except OSError as error:
                # A log that cannot be written must not fail the run; its lines are lost.
                self._failed = True
                self._logger.warning("could not write run log %s: %s", self._path, error)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None
        self._store._writer_closed(self.log_id)


class RunLogStore:
    def __init__(self, directory: str, logger: logging.Logger):
        self.directory = directory
        self._logger = logger
        self._active: Dict[int, int] = {}
        self._indexes: Dict[int, Tuple[int, int]] = {}
        self._lock = threading.Lock()

    def init(self) -> None:
        os.makedirs(self.directory, exist_ok=True)

    def path_of(self, log_id: int) -> str:
        return os.path.join(self.directory, f"{int(log_id)}.log")

    def is_active(self, log_id: int) -> bool:
        with self._lock:
            return log_id in self._active

    def open(self, log_id: int) -> RunLogWriter:
        with self._lock:
            self._active[log_id] = self._active.get(log_id, 0) + 1
        return RunLogWriter(self, log_id, self.path_of(log_id), self._logger)

    def append(self, log_id: int, lines: List[str]) -> None:
        """Lines for a log without an open writer (a run dropped before it started)."""
        writer = self.open(log_id)
        for text in lines:
            writer.line(text)
        writer.close()

    def _writer_closed(self, log_id: int) -> None:
        with self._lock:
            left = self._active.get(log_id, 1) - 1
            if left <= 0:
                self._active.pop(log_id, None)
            else:
                self._active[log_id] = left

    def read(self, log_id: int, from_line: int, max_lines: int) -> Optional[LogSlice]:
        """Up to `max_lines` lines from line `from_line` (1-based); None when the log does not exist."""
        path = self.path_of(log_id)
        start_line = max(1, int(from_line))
        limit = MAX_LOG_READ_LINES if max_lines <= 0 else min(int(max_lines), MAX_LOG_READ_LINES)
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            with self._lock:
                known_lines, known_offset = self._indexes.pop(log_id, (0, 0))
                if known_offset > size:
                    known_lines, known_offset = 0, 0
            line_no, offset = (known_lines + 1, known_offset) if start_line > known_lines else (1, 0)
            handle.seek(offset)
            lines: List[str] = []
            used = 0
            more = False
            while offset < size:
                raw = handle.readline(size - offset)
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    # An unterminated last line is still being written while the run is active.
                    if line_no >= start_line:
                        if self.is_active(log_id) or len(lines) >= limit:
                            more = True
                        else:
                            lines.append(raw.decode("utf-8", "replace"))
                    break
                offset += len(raw)
                if line_no > known_lines:
                    known_lines, known_offset = line_no, offset
                if line_no >= start_line:
                    text = raw[:-1].rstrip(b"\r").decode("utf-8", "replace")
                    if len(lines) >= limit:
                        more = True
                        break
                    size_bytes = len(text.encode("utf-8"))
                    if used + size_bytes > MAX_LOG_READ_BYTES:
                        if lines:
                            more = True
                            break
                        # Returning nothing would stall a rolling read at this line forever.
                        text = text.encode("utf-8")[: MAX_LOG_READ_BYTES - 100].decode("utf-8", "ignore")
                        text += f" [line truncated: {size_bytes} bytes]"
                    lines.append(text)
                    used += len(text.encode("utf-8"))
                line_no += 1
            with self._lock:
                self._indexes[log_id] = (known_lines, known_offset)
                while len(self._indexes) > MAX_CACHED_INDEXES:
                    self._indexes.pop(next(iter(self._indexes)))
        return LogSlice(start_line, start_line + len(lines) - 1, lines, more)

    def delete_older_than(self, days: int) -> int:
        """Deletes logs last written more than `days` days ago, except active ones."""
        cutoff = time.time() - days * 86_400
        deleted = 0
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return 0
        for name in names:
            if not name.endswith(".log"):
                continue
            try:
                log_id = int(name[: -len(".log")])
            except ValueError:
                continue
            if self.is_active(log_id):
                continue
            path = os.path.join(self.directory, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    with self._lock:
                        self._indexes.pop(log_id, None)
                    deleted += 1
            except FileNotFoundError:
                pass
            except OSError as error:
                self._logger.warning("could not delete old run log %s: %s", path, error)
        return deleted
