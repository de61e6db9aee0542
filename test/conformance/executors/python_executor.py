"""The conformance executor for the Python SDK (test/conformance/README.md).

Configured by CONFORMANCE_* environment variables; prints one JSON line per event on
stdout. Plain and async handlers are mixed on purpose: both kinds must honour the contract.
"""

import asyncio
import json
import logging
import os
import sys
import time

from jobstream_executor import Executor, RunAborted


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def started(ctx):
    emit(
        "run-started",
        logId=str(ctx.log_id),
        attempt=ctx.attempt,
        handler=ctx.handler_name,
        shardIndex=ctx.shard_index,
        shardTotal=ctx.shard_total,
    )


def optional_int(name):
    value = os.environ.get(name)
    return int(value) if value else None


logging.basicConfig(stream=sys.stderr, level=logging.INFO)
options = dict(
    admin_addresses=os.environ["CONFORMANCE_ADMIN_ADDRESSES"],
    app_name=os.environ["CONFORMANCE_APP_NAME"],
    access_token=os.environ["CONFORMANCE_ACCESS_TOKEN"],
    instance_name=os.environ["CONFORMANCE_INSTANCE_NAME"],
    data_dir=os.environ["CONFORMANCE_DATA_DIR"],
)
for option, variable in (("capacity", "CONFORMANCE_CAPACITY"), ("shutdown_grace_period_ms", "CONFORMANCE_SHUTDOWN_GRACE_MS")):
    if optional_int(variable) is not None:
        options[option] = optional_int(variable)
script_kinds = [kind for kind in os.environ.get("CONFORMANCE_SCRIPT_KINDS", "").split(",") if kind]
if script_kinds:
    options["script_kinds"] = script_kinds
    if os.environ.get("CONFORMANCE_PYTHON_INTERPRETER"):
        options["script_interpreters"] = {"PYTHON": os.environ["CONFORMANCE_PYTHON_INTERPRETER"]}
    if optional_int("CONFORMANCE_SCRIPT_KILL_GRACE_MS") is not None:
        options["script_kill_grace_ms"] = optional_int("CONFORMANCE_SCRIPT_KILL_GRACE_MS")
executor = Executor(**options)


@executor.handler("echo")
def echo(ctx):
    started(ctx)
    return f"echo: {ctx.param}"


@executor.handler("fail")
async def fail(ctx):
    started(ctx)
    raise RuntimeError(ctx.param or "failed on purpose")


@executor.handler("sleep")
async def sleep(ctx):
    started(ctx)
    ctx.log("sleeping")
    try:
        await ctx.asleep(int(ctx.param or "60000") / 1000)
    except RunAborted:
        ctx.log("aborted")  # dropped: the log ended with the abort's result
        raise
    ctx.log("woke up")
    emit("run-finishing", logId=str(ctx.log_id), attempt=ctx.attempt, handler="sleep")
    return "slept"


@executor.handler("ignore-abort")
def ignore_abort(ctx):
    started(ctx)
    time.sleep(int(ctx.param or "10000") / 1000)
    emit("run-finishing", logId=str(ctx.log_id), attempt=ctx.attempt, handler="ignore-abort")
    return "finally done"


@executor.handler("log-lines")
def log_lines(ctx):
    started(ctx)
    count = int(ctx.param or "3")
    for line in range(1, count + 1):
        ctx.log(f"line {line} of {count}")
    return f"logged {count} lines"


async def main():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(15, stop.set)  # SIGTERM
    await executor.start()
    emit("ready")
    await stop.wait()
    await executor.stop()
    emit("stopped")


asyncio.run(main())
