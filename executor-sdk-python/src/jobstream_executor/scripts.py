"""Script (GLUE) runs: SHELL and PYTHON scripts in child processes, as the Node SDK's
script-runner.ts does.

A script runs as ``<interpreter> <script file> <param> <shard index> <shard total>`` in a
fresh working directory per run, in a session (and so a process group) of its own, with the
executor's environment plus JOBSTREAM_PARAM, JOBSTREAM_SHARD_INDEX, JOBSTREAM_SHARD_TOTAL,
JOBSTREAM_JOB_ID and JOBSTREAM_LOG_ID. Its stdout and stderr lines go to the run's log; exit
code 0 is success, anything else a failure whose message is the last lines of stderr. A kill,
timeout or stop ends the whole group: SIGTERM, then SIGKILL after the grace. Whatever a script
leaves running in its group when it exits is ended the same way. Script files are cached per
(job, glue_updated_at).

The process is watched by threads (one per pipe, one waiting for its exit), not asyncio's
subprocess support: that would tie the run's end to the pipes closing on some Python
versions, and a script's background process can hold them open.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import hashlib
import logging
import os
import shutil
import signal as signals
import subprocess
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from jobstream.v1 import types_pb2 as types

from .context import CancelSignal
from .options import ResolvedScriptOptions

GLUE_TYPE_OF_KIND = {"SHELL": types.GLUE_TYPE_SHELL, "PYTHON": types.GLUE_TYPE_PYTHON}
#: Every script glue type by name, including the kinds this SDK never runs, for messages.
SCRIPT_NAMES = {
    types.GLUE_TYPE_SHELL: "SHELL",
    types.GLUE_TYPE_PYTHON: "PYTHON",
    types.GLUE_TYPE_NODEJS: "NODEJS",
    types.GLUE_TYPE_PHP: "PHP",
    types.GLUE_TYPE_POWERSHELL: "POWERSHELL",
}
EXTENSION = {"SHELL": "sh", "PYTHON": "py"}
#: A line of output this long without a newline is logged as a line of its own.
MAX_PARTIAL_LINE_CHARS = 64 * 1024
#: After a group was signalled: how often to look whether it is empty.
GROUP_POLL_S = 0.1
#: After the script exited: how long its output pipes may stay open (held by what it left).
OUTPUT_DRAIN_EXTRA_S = 1.0
READ_CHUNK_BYTES = 64 * 1024


class ScriptAdmission:
    """What a run request's glue type means here: a script kind to run, or a refusal."""

    __slots__ = ("kind", "refusal")

    def __init__(self, kind: Optional[str] = None, refusal: Optional[str] = None):
        self.kind = kind
        self.refusal = refusal


class _ProcessGroup:
    """A script's process group (its id is the script's pid: it leads a new session)."""

    def __init__(self, pgid: int, loop: asyncio.AbstractEventLoop, logger: logging.Logger):
        self._pgid = pgid
        self._loop = loop
        self._logger = logger
        self.ended: "asyncio.Future[None]" = loop.create_future()
        self._terminating = False
        self._kill_timer: Optional[asyncio.TimerHandle] = None
        self._poll_timer: Optional[asyncio.TimerHandle] = None

    def terminate(self, grace_s: float) -> None:
        """SIGTERM to the group now, SIGKILL after the grace unless it is empty by then."""
        if self._terminating:
            return
        self._terminating = True
        if not self._signal(signals.SIGTERM):
            self._finish()
            return
        self._kill_timer = self._loop.call_later(grace_s, self._kill)
        self._poll_timer = self._loop.call_later(GROUP_POLL_S, self._poll)

    def _kill(self) -> None:
        self._signal(signals.SIGKILL)
        self._finish()

    def _poll(self) -> None:
        if self.ended.done():
            return
        if self._signal(0):
            self._poll_timer = self._loop.call_later(GROUP_POLL_S, self._poll)
        else:
            self._finish()

    def _finish(self) -> None:
        for timer in (self._kill_timer, self._poll_timer):
            if timer is not None:
                timer.cancel()
        if not self.ended.done():
            self.ended.set_result(None)

    def _signal(self, number: int) -> bool:
        """False when the group has no process left (or none this process may signal)."""
        try:
            os.killpg(self._pgid, number)
            return True
        except ProcessLookupError:
            return False
        except OSError as error:
            self._logger.warning("could not signal script process group %d: %s", self._pgid, error)
            return False


class _LineSplitter:
    """Decodes UTF-8 output (bad bytes replaced) and hands on complete lines."""

    def __init__(self, on_line: Callable[[str], None]):
        self._on_line = on_line
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""

    def push(self, data: bytes) -> None:
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._on_line(line[:-1] if line.endswith("\r") else line)
        if len(self._partial) >= MAX_PARTIAL_LINE_CHARS:
            self._on_line(self._partial)
            self._partial = ""

    def end(self) -> None:
        rest = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if rest:
            self._on_line(rest)


def _pump(stream: Any, splitter: _LineSplitter, done: Callable[[], None]) -> None:
    """Reads one pipe to its end on a thread of its own."""
    try:
        while True:
            data = stream.read1(READ_CHUNK_BYTES)
            if not data:
                break
            splitter.push(data)
        splitter.end()
    except (OSError, ValueError):
        pass
    finally:
        done()


class ScriptRunner:
    def __init__(self, options: ResolvedScriptOptions, logger: logging.Logger):
        self._options = options
        self._logger = logger
        self._scripts_dir = os.path.join(options.work_dir, "scripts")
        self._runs_dir = os.path.join(options.work_dir, "runs")
        self._groups: Set[_ProcessGroup] = set()
        self._in_use: Dict[str, int] = {}
        self._stopped = False

    @property
    def kinds(self) -> Tuple[str, ...]:
        return self._options.kinds

    @property
    def glue_types(self) -> List[int]:
        return [GLUE_TYPE_OF_KIND[kind] for kind in self._options.kinds]

    def admit(self, glue_type: int) -> Optional[ScriptAdmission]:
        """None for a handler (BEAN) run; else the kind to run, or why it is refused (INVALID)."""
        if glue_type in (types.GLUE_TYPE_UNSPECIFIED, types.GLUE_TYPE_BEAN):
            return None
        name = SCRIPT_NAMES.get(glue_type)
        if name is None:
            return ScriptAdmission(refusal=f"unknown glue type {glue_type}")
        if name not in self._options.kinds:
            return ScriptAdmission(
                refusal=f"this executor does not run {name} scripts (not enabled in its script_kinds option)"
            )
        return ScriptAdmission(kind=name)

    def init(self) -> None:
        """Creates the work directory; working directories a previous process left are removed."""
        if not self._options.kinds:
            return
        os.makedirs(self._scripts_dir, exist_ok=True)
        shutil.rmtree(self._runs_dir, ignore_errors=True)
        os.makedirs(self._runs_dir, exist_ok=True)

    async def stop(self) -> None:
        """Ends every script group still there (SIGTERM, SIGKILL after the grace) and waits."""
        self._stopped = True
        groups = list(self._groups)
        for group in groups:
            group.terminate(self._options.kill_grace_ms / 1000)
        if groups:
            await asyncio.gather(*(group.ended for group in groups))

    async def run(self, request: Any, kind: str, signal: CancelSignal, log: Callable[[str], None]) -> Tuple[int, str]:
        """Runs the script to its end; never raises. After an abort the value is ignored."""
        try:
            path = await asyncio.to_thread(self._script_file, request, kind)
        except (OSError, ValueError) as error:
            return types.RUN_OUTCOME_FAILED, f"could not write the script file: {error}"
        self._in_use[path] = self._in_use.get(path, 0) + 1
        run_dir: Optional[str] = None
        try:
            await asyncio.to_thread(self._prune, request.job_id, path)
            run_dir = await asyncio.to_thread(
                tempfile.mkdtemp, prefix=f"{request.log_id}-{request.attempt}-", dir=self._runs_dir
            )
            return await self._execute(request, kind, signal, log, path, run_dir)
        except OSError as error:
            return types.RUN_OUTCOME_FAILED, f"could not start the script: {error}"
        finally:
            left = self._in_use.get(path, 1) - 1
            if left > 0:
                self._in_use[path] = left
            else:
                self._in_use.pop(path, None)
            if run_dir is not None:
                await asyncio.to_thread(shutil.rmtree, run_dir, True)

    def _script_file(self, request: Any, kind: str) -> str:
        """<work_dir>/scripts/<job_id>-<glue_updated_at ms>.<ext>, written atomically once per version."""
        if request.HasField("glue_updated_at"):
            stamp = request.glue_updated_at
            version = str(stamp.seconds * 1000 + stamp.nanos // 1_000_000)
        else:
            # Without a version the file is named by its content, so it is never stale.
            version = "sha256_" + hashlib.sha256(request.glue_source.encode("utf-8")).hexdigest()[:32]
        name = f"{int(request.job_id)}-{version}.{EXTENSION[kind]}"
        path = os.path.join(self._scripts_dir, name)
        if os.path.exists(path):
            return path
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self._scripts_dir)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(request.glue_source)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise
        return path

    def _prune(self, job_id: int, current: str) -> None:
        """Deletes the other versions of the job's script that no run is using."""
        prefix = f"{int(job_id)}-"
        try:
            names = os.listdir(self._scripts_dir)
        except OSError:
            return
        for name in names:
            path = os.path.join(self._scripts_dir, name)
            if name.startswith(prefix) and path != current and path not in self._in_use:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    async def _execute(
        self, request: Any, kind: str, signal: CancelSignal, log: Callable[[str], None], path: str, cwd: str
    ) -> Tuple[int, str]:
        # Aborted while the file was written: the result is already reported, nothing may start.
        if signal.aborted or self._stopped:
            return types.RUN_OUTCOME_FAILED, "run ended before the script started"
        loop = asyncio.get_running_loop()
        interpreter = self._options.interpreters[kind]
        grace_s = self._options.kill_grace_ms / 1000
        env = dict(os.environ)
        env.update(
            JOBSTREAM_PARAM=request.param,
            JOBSTREAM_SHARD_INDEX=str(request.shard_index),
            JOBSTREAM_SHARD_TOTAL=str(request.shard_total),
            JOBSTREAM_JOB_ID=str(request.job_id),
            JOBSTREAM_LOG_ID=str(request.log_id),
        )
        if kind == "PYTHON":
            # Python block-buffers a pipe: its lines would reach the log only at exit.
            env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            process = subprocess.Popen(
                [interpreter, path, request.param, str(request.shard_index), str(request.shard_total)],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except (OSError, ValueError) as error:
            return types.RUN_OUTCOME_FAILED, f'could not start the {kind} interpreter "{interpreter}": {error}'

        group = _ProcessGroup(process.pid, loop, self._logger)
        self._groups.add(group)
        group.ended.add_done_callback(lambda _: self._groups.discard(group))
        tail: "collections.deque[str]" = collections.deque(maxlen=self._options.stderr_tail_lines)

        def stderr_line(line: str) -> None:
            log(line)
            tail.append(line)

        pipes_done: List["asyncio.Future[None]"] = []
        for stream, on_line in ((process.stdout, log), (process.stderr, stderr_line)):
            done: "asyncio.Future[None]" = loop.create_future()
            pipes_done.append(done)
            finished = _threadsafe_setter(loop, done, None)
            threading.Thread(
                target=_pump,
                args=(stream, _LineSplitter(on_line), finished),
                name=f"jobstream-script-{request.log_id}",
                daemon=True,
            ).start()
        exited: "asyncio.Future[int]" = loop.create_future()

        def wait_for_exit() -> None:
            _threadsafe_setter(loop, exited, process.wait())()

        threading.Thread(target=wait_for_exit, name=f"jobstream-script-{request.log_id}-wait", daemon=True).start()

        aborted = asyncio.ensure_future(signal.wait_async())
        aborted.add_done_callback(lambda done: None if done.cancelled() else group.terminate(grace_s))
        try:
            returncode = await exited
        finally:
            aborted.cancel()
        # What the script left running in its group ends with it.
        group.terminate(grace_s)
        # Something that left the group (a new session) may hold the pipes open: stop waiting then.
        await asyncio.wait(pipes_done, timeout=grace_s + OUTPUT_DRAIN_EXTRA_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None and all(done.done() for done in pipes_done):
                stream.close()

        how = f"exit code {returncode}" if returncode >= 0 else f"ended by signal {_signal_name(-returncode)}"
        log(f"[jobstream] script {how}")
        if returncode == 0:
            return types.RUN_OUTCOME_SUCCEEDED, how
        stderr_tail = "\n".join(tail).strip()
        return types.RUN_OUTCOME_FAILED, stderr_tail or f"script failed: {how}"


def _threadsafe_setter(loop: asyncio.AbstractEventLoop, future: "asyncio.Future[Any]", value: Any) -> Callable[[], None]:
    """A callable for another thread that resolves `future` on the loop (if it still runs)."""

    def deliver() -> None:
        if not future.done():
            future.set_result(value)

    def call() -> None:
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:
            pass  # the loop is gone: nobody waits any more

    return call


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return str(number)
