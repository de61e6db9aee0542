import asyncio
import logging
import os

import pytest

from jobstream_executor import Executor, InvalidHandlerError, InvalidOptionsError
from jobstream_executor.connection import full_jitter_delay
from jobstream_executor.options import resolve_options
from jobstream_executor.run_log import MAX_LOG_READ_BYTES, MAX_LOG_READ_LINES, RunLogStore
from jobstream_executor.spool import ResultSpool, SpooledResult

LOGGER = logging.getLogger("test")


def test_options_report_every_problem_at_once():
    with pytest.raises(InvalidOptionsError) as raised:
        resolve_options(
            admin_addresses=["no-port", "ok:1"],
            app_name="bad name",
            access_token="has space",
            capacity=0,
            pipeline_window=-1,
            reconnect_base_delay_ms=500,
            reconnect_max_delay_ms=100,
        )
    problems = raised.value.problems
    assert len(problems) == 6, problems
    assert any("'no-port'" in p for p in problems)
    assert any(p.startswith("capacity must be an integer from 1 to 10000, got 0") for p in problems)


def test_options_defaults():
    resolved = resolve_options(admin_addresses="a:1, b:2", app_name="orders", access_token="t0k", capacity=3)
    assert resolved.admin_addresses == ("a:1", "b:2")
    assert resolved.pipeline_window == 1_000
    assert resolved.data_dir.endswith(os.path.join(".jobstream-executor", "orders", resolved.instance_name))


def test_unknown_options_are_refused_by_name():
    with pytest.raises(TypeError, match="capasity"):
        Executor(admin_addresses="a:1", app_name="x", access_token="t", capasity=3)


def test_handler_registration_is_checked():
    executor = Executor(admin_addresses="a:1", app_name="x", access_token="t")
    executor.register("ok", lambda ctx: None)
    with pytest.raises(InvalidHandlerError, match="already registered"):
        executor.register("ok", lambda ctx: None)
    with pytest.raises(InvalidHandlerError, match="callable"):
        executor.register("other", "not a function")


def test_full_jitter_stays_below_the_cap():
    assert full_jitter_delay(0, 200, 10_000, rand=lambda: 0.999) < 0.2
    assert full_jitter_delay(30, 200, 10_000, rand=lambda: 0.999) < 10
    assert full_jitter_delay(3, 200, 10_000, rand=lambda: 0.0) == 0


def test_run_log_reads_in_chunks_and_cuts_huge_lines(tmp_path):
    store = RunLogStore(str(tmp_path), LOGGER)
    store.init()
    writer = store.open(7)
    for line in range(1, 1501):
        writer.line(f"line {line}")
    writer.line("x" * (MAX_LOG_READ_BYTES + 10))
    writer.close()
    first = store.read(7, 1, 0)
    assert (first.from_line, first.to_line, first.more) == (1, MAX_LOG_READ_LINES, True)
    assert first.lines[0].endswith(" line 1")
    rest = store.read(7, first.to_line + 1, 5000)
    assert rest.to_line == 1500 and rest.more
    huge = store.read(7, 1501, 1)
    assert huge.to_line == 1501 and "[line truncated:" in huge.lines[0] and not huge.more
    assert store.read(8, 1, 10) is None


def test_spool_keeps_results_across_reopen_until_acknowledged(tmp_path):
    async def scenario():
        spool = await ResultSpool.open(str(tmp_path), LOGGER)
        await spool.add(SpooledResult(10, 1, 1, "ok", None, None))
        await spool.add(SpooledResult(11, 1, 2, "failed", None, None))
        await spool.ack([(10, 1)])
        assert spool.acknowledged_recently(10, 1)
        await spool.close()
        reopened = await ResultSpool.open(str(tmp_path), LOGGER)
        assert reopened.refs() == [(11, 1)]
        assert reopened.durable_results()[0].message == "failed"
        await reopened.close()

    asyncio.run(scenario())
