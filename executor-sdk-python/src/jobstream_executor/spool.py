"""The results this executor owes the admin, on disk until acknowledged.

`<data_dir>/results.spool.jsonl` is an append-only log of `result` and `ack` lines, in
the Node SDK's format (a data dir can move between the SDKs). A result is appended and
fsynced before it is sent, so a result the admin saw is never lost by a crash; an ack is
appended without fsync, because losing one only means the result is sent again, which the
admin tolerates (it stores a result at most once per (log id, attempt)). On open, and
when acknowledged lines outnumber live ones, the file is rewritten with only the live
results (temporary file, fsync, rename, fsync of the directory).

A data dir belongs to one process at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

SPOOL_FILE_NAME = "results.spool.jsonl"
MIN_ACK_LINES_BEFORE_COMPACTION = 64
#: Acknowledged runs remembered so a repeated run request for one is not run again.
RECENTLY_ACKED_LIMIT = 10_000

Key = Tuple[int, int]


@dataclass
class SpooledResult:
    log_id: int
    attempt: int
    outcome: int
    message: str
    started_at: Optional[datetime]
    finished_at: Optional[datetime]


@dataclass
class _Entry:
    result: SpooledResult
    #: Written and fsynced: only durable results are sent.
    durable: bool


def _iso(value: Optional[datetime]) -> Optional[str]:
    if value is None:
        return None
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _from_iso(value: object) -> Optional[datetime]:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _to_line(result: SpooledResult) -> str:
    return (
        json.dumps(
            {
                "t": "result",
                "logId": str(result.log_id),
                "attempt": result.attempt,
                "outcome": result.outcome,
                "message": result.message,
                "startedAt": _iso(result.started_at),
                "finishedAt": _iso(result.finished_at),
            },
            separators=(",", ":"),
        )
        + "\n"
    )


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultSpool:
    def __init__(self, directory: str, logger: logging.Logger):
        self._path = os.path.join(directory, SPOOL_FILE_NAME)
        self._logger = logger
        self._entries: "OrderedDict[Key, _Entry]" = OrderedDict()
        self._recently_acked: "OrderedDict[Key, None]" = OrderedDict()
        self._pending: List[Tuple[Key, _Entry, asyncio.Future]] = []
        self._flush_scheduled = False
        self._file = None
        self._ack_lines = 0
        #: File operations run one at a time, in call order.
        self._io_lock = asyncio.Lock()
        self._empty = asyncio.Event()
        self._empty.set()

    @classmethod
    async def open(cls, directory: str, logger: logging.Logger) -> "ResultSpool":
        os.makedirs(directory, exist_ok=True)
        spool = cls(directory, logger)
        await asyncio.to_thread(spool._load)
        async with spool._io_lock:
            await asyncio.to_thread(spool._rewrite)
        spool._update_empty()
        return spool

    @property
    def size(self) -> int:
        return len(self._entries)

    def has(self, log_id: int, attempt: int) -> bool:
        return (log_id, attempt) in self._entries

    def acknowledged_recently(self, log_id: int, attempt: int) -> bool:
        return (log_id, attempt) in self._recently_acked

    def durable_results(self) -> List[SpooledResult]:
        return [entry.result for entry in self._entries.values() if entry.durable]

    def refs(self) -> List[Key]:
        return list(self._entries.keys())

    def add(self, result: SpooledResult) -> "asyncio.Future[None]":
        """Records a result: visible to has() at once, the future resolves once it is durable.
        If the disk write fails the result stays in memory and is still delivered."""
        key = (result.log_id, result.attempt)
        entry = _Entry(result, False)
        self._entries[key] = entry
        self._update_empty()
        done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((key, entry, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.ensure_future(self._flush_pending())
        return done

    async def _flush_pending(self) -> None:
        # Group commit: every result added while the previous write was in flight goes to disk
        # in one write and one fsync; an fsync per result would cap the executor's throughput.
        async with self._io_lock:
            self._flush_scheduled = False
            adds, self._pending = self._pending, []
            batch = [(key, entry) for key, entry, _ in adds if self._entries.get(key) is entry]
            if batch:
                text = "".join(_to_line(entry.result) for _, entry in batch)
                try:
                    await asyncio.to_thread(self._append, text, True)
                except OSError as error:
                    self._logger.error("could not spool %d run result(s): %s", len(batch), error)
            for _, entry in batch:
                entry.durable = True
            for _, _, done in adds:
                if not done.done():
                    done.set_result(None)

    async def ack(self, refs: List[Key]) -> int:
        """Forgets acknowledged (or refused) results; unknown refs are ignored."""
        removed = []
        for key in refs:
            if self._entries.pop(key, None) is not None:
                removed.append(key)
            self._recently_acked[key] = None
            self._recently_acked.move_to_end(key)
        while len(self._recently_acked) > RECENTLY_ACKED_LIMIT:
            self._recently_acked.popitem(last=False)
        self._update_empty()
        if not removed:
            return 0
        text = "".join(
            json.dumps({"t": "ack", "logId": str(log_id), "attempt": attempt}, separators=(",", ":")) + "\n"
            for log_id, attempt in removed
        )
        async with self._io_lock:
            try:
                await asyncio.to_thread(self._append, text, False)
                self._ack_lines += len(removed)
                if self._ack_lines >= MIN_ACK_LINES_BEFORE_COMPACTION and self._ack_lines > len(self._entries):
                    await asyncio.to_thread(self._rewrite)
            except OSError as error:
                self._logger.warning("could not record result acks in the spool: %s", error)
        return len(removed)

    async def when_empty(self, timeout: float) -> bool:
        """Waits until nothing is left to deliver, at most `timeout` seconds; True when empty."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return self.size == 0

    async def close(self) -> None:
        async with self._io_lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _update_empty(self) -> None:
        if self._entries:
            self._empty.clear()
        else:
            self._empty.set()

    def _append(self, text: str, sync: bool) -> None:
        if self._file is None:
            self._file = open(self._path, "a", encoding="utf-8")
        self._file.write(text)
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def _load(self) -> None:
        try:
            with open(self._path, "r", encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return
        bad = 0
        for raw in text.split("\n"):
            if raw.strip() == "":
                continue
            try:
                line = json.loads(raw)
                key = (int(line["logId"]), int(line["attempt"]))
            except (ValueError, KeyError, TypeError):
                # A crash mid-append leaves a torn last line; that result was never sent.
                bad += 1
                continue
            if line.get("t") == "ack":
                self._entries.pop(key, None)
            elif line.get("t") == "result" and isinstance(line.get("outcome"), int):
                result = SpooledResult(
                    key[0],
                    key[1],
                    line["outcome"],
                    str(line.get("message", "")),
                    _from_iso(line.get("startedAt")),
                    _from_iso(line.get("finishedAt")),
                )
                self._entries[key] = _Entry(result, True)
            else:
                bad += 1
        if bad:
            self._logger.warning("skipped %d unreadable result spool line(s) in %s", bad, self._path)
        if self._entries:
            self._logger.info("loaded %d unacknowledged run result(s) from the spool", len(self._entries))

    def _rewrite(self) -> None:
        """Replaces the file with only the durable live results, atomically."""
        if self._file is not None:
            self._file.close()
            self._file = None
        temporary = self._path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            out.write("".join(_to_line(result) for result in self.durable_results()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self._path)
        _fsync_directory(os.path.dirname(self._path))
        self._ack_lines = 0
