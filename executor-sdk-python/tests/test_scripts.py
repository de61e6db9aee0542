"""Script (GLUE) runs on real processes, through the ScriptRunner the scheduler uses.
test/conformance/ checks the same contract through a whole executor over gRPC."""

import asyncio
import logging
import os
import sys
import time

import pytest

from jobstream.v1 import executor_pb2 as pb
from jobstream.v1 import types_pb2 as types
from jobstream_executor import InvalidOptionsError
from jobstream_executor.context import CancelSignal
from jobstream_executor.options import resolve_options
from jobstream_executor.scripts import ScriptRunner

LOGGER = logging.getLogger("test")
BASE = dict(admin_addresses="a:1", app_name="app", access_token="t0k")


def runner(tmp_path, **options):
    resolved = resolve_options(**BASE, data_dir=str(tmp_path), **options)
    scripts = ScriptRunner(resolved.scripts, LOGGER)
    scripts.init()
    return scripts, resolved.scripts.work_dir


def request(source, glue_type=types.GLUE_TYPE_SHELL, job_id=7, log_id=70, updated_ms=1_700_000_000_000, **more):
    fields = dict(job_id=job_id, log_id=log_id, attempt=1, glue_type=glue_type, glue_source=source, shard_total=1)
    fields.update(more)
    message = pb.RunRequest(**fields)
    message.glue_updated_at.FromMilliseconds(updated_ms)
    return message


async def run_script(scripts, message, kind="SHELL", signal=None):
    lines = []
    signal = signal or CancelSignal(asyncio.get_running_loop())
    outcome, text = await scripts.run(message, kind, signal, lines.append)
    return outcome, text, lines


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
        return stat[stat.rindex(")") + 2] != "Z"  # a zombie nobody reaps is gone for us
    except OSError:
        return False


def test_script_options_are_checked_and_off_by_default(tmp_path):
    assert resolve_options(**BASE).scripts.kinds == ()
    with pytest.raises(InvalidOptionsError) as raised:
        resolve_options(
            **BASE,
            script_kinds=["SHELL", "NODEJS"],
            script_interpreters={"RUBY": "ruby", "PYTHON": ""},
            script_kill_grace_ms=-1,
            script_stderr_tail_lines=0,
        )
    problems = raised.value.problems
    assert len(problems) == 5, problems
    assert any("'NODEJS' is not a script kind this SDK runs" in p for p in problems)
    with pytest.raises(InvalidOptionsError, match="script_kinds must be a list"):
        resolve_options(**BASE, script_kinds="SHELL")
    resolved = resolve_options(**BASE, data_dir=str(tmp_path), script_kinds=["PYTHON"])
    assert resolved.scripts.work_dir == os.path.join(str(tmp_path), "glue")
    assert resolved.scripts.interpreters == {"SHELL": "/bin/sh", "PYTHON": "python3"}


def test_kinds_not_opted_into_are_refused(tmp_path):
    scripts, _ = runner(tmp_path, script_kinds=["SHELL"])
    assert scripts.admit(types.GLUE_TYPE_BEAN) is None
    assert scripts.admit(types.GLUE_TYPE_SHELL).kind == "SHELL"
    assert scripts.admit(types.GLUE_TYPE_PYTHON).refusal == (
        "this executor does not run PYTHON scripts (not enabled in its script_kinds option)"
    )
    assert "does not run PHP scripts" in scripts.admit(types.GLUE_TYPE_PHP).refusal
    assert scripts.glue_types == [types.GLUE_TYPE_SHELL]


def test_python_script_arguments_environment_and_failure(tmp_path):
    scripts, work_dir = runner(
        tmp_path, script_kinds=["PYTHON"], script_interpreters={"PYTHON": sys.executable}, script_stderr_tail_lines=2
    )
    source = "\n".join(
        [
            "import os, sys",
            "print('argv=' + '|'.join(sys.argv[1:]))",
            "print('env=' + '|'.join(os.environ[k] for k in ('JOBSTREAM_PARAM', 'JOBSTREAM_SHARD_INDEX',"
            " 'JOBSTREAM_SHARD_TOTAL', 'JOBSTREAM_JOB_ID', 'JOBSTREAM_LOG_ID')))",
            "print('cwd=' + os.getcwd())",
            "for n in range(1, 4): print('problem', n, file=sys.stderr)",
            "sys.exit(int(sys.argv[1].split()[-1]))",
        ]
    )

    async def scenario():
        ok = await run_script(
            scripts, request(source, types.GLUE_TYPE_PYTHON, param="x 0", shard_index=2, shard_total=5), "PYTHON"
        )
        bad = await run_script(scripts, request(source, types.GLUE_TYPE_PYTHON, log_id=71, param="y 3"), "PYTHON")
        return ok, bad

    (outcome, text, lines), (bad_outcome, bad_text, _) = asyncio.run(scenario())
    assert (outcome, text) == (types.RUN_OUTCOME_SUCCEEDED, "exit code 0")
    assert "argv=x 0|2|5" in lines and "env=x 0|2|5|7|70" in lines
    cwd = next(line for line in lines if line.startswith("cwd="))[4:]
    assert os.path.dirname(cwd) == os.path.join(work_dir, "runs") and not os.path.exists(cwd)
    assert lines[-1] == "[jobstream] script exit code 0"
    assert bad_outcome == types.RUN_OUTCOME_FAILED and bad_text == "problem 2\nproblem 3"


def test_script_files_are_cached_per_job_and_version(tmp_path):
    scripts, work_dir = runner(tmp_path, script_kinds=["SHELL"])

    async def scenario():
        one = await run_script(scripts, request("echo one", job_id=9))
        again = await run_script(scripts, request("echo two", job_id=9))  # same version: cached file
        two = await run_script(scripts, request("echo two", job_id=9, updated_ms=1_700_000_100_000))
        return one[2], again[2], two[2]

    one, again, two = asyncio.run(scenario())
    assert "one" in one and "one" in again and "two" in two
    assert os.listdir(os.path.join(work_dir, "scripts")) == ["9-1700000100000.sh"]


def test_abort_ends_the_whole_group_with_sigkill_after_the_grace(tmp_path):
    scripts, _ = runner(tmp_path, script_kinds=["SHELL"], script_kill_grace_ms=300)
    source = "trap '' TERM\nsleep 300 &\necho \"grandchild $!\"\nwhile :; do sleep 0.1; done"

    async def scenario():
        signal = CancelSignal(asyncio.get_running_loop())
        lines = []
        task = asyncio.ensure_future(scripts.run(request(source), "SHELL", signal, lines.append))
        while not any(line.startswith("grandchild ") for line in lines):
            await asyncio.sleep(0.02)
        pid = int(next(line for line in lines if line.startswith("grandchild "))[len("grandchild ") :])
        assert alive(pid)
        aborted_at = time.monotonic()
        signal._abort("killed", "killed")
        outcome, _text = await task
        return pid, outcome, time.monotonic() - aborted_at

    pid, outcome, took = asyncio.run(scenario())
    assert outcome == types.RUN_OUTCOME_FAILED  # the scheduler reported KILLED at the abort
    assert took >= 0.25
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)


def test_stop_ends_running_scripts_with_their_groups(tmp_path):
    scripts, _ = runner(tmp_path, script_kinds=["SHELL"], script_kill_grace_ms=5_000)

    async def scenario():
        lines = []
        signal = CancelSignal(asyncio.get_running_loop())
        task = asyncio.ensure_future(
            scripts.run(request('sleep 300 &\necho "grandchild $!"\nwait'), "SHELL", signal, lines.append)
        )
        while not any(line.startswith("grandchild ") for line in lines):
            await asyncio.sleep(0.02)
        signal._abort("shutdown", "stopping")  # what the scheduler's shutdown does first
        await scripts.stop()
        await task
        # Nothing starts after stop().
        late = await run_script(scripts, request("echo late", log_id=99))
        return int(lines[0][len("grandchild ") :]), late

    pid, (late_outcome, late_text, late_lines) = asyncio.run(scenario())
    assert not alive(pid)
    assert (late_outcome, late_text, late_lines) == (types.RUN_OUTCOME_FAILED, "run ended before the script started", [])


def test_a_missing_interpreter_fails_the_run(tmp_path):
    scripts, _ = runner(tmp_path, script_kinds=["SHELL"], script_interpreters={"SHELL": "/nonexistent/sh"})
    outcome, text, _ = asyncio.run(run_script(scripts, request("echo hi")))
    assert outcome == types.RUN_OUTCOME_FAILED
    assert text.startswith('could not start the SHELL interpreter "/nonexistent/sh"')
