"""The demo jobs of `npm start`, run by a Python executor.

`npm start` creates the "demo" group with the jobs "Say hello" (handler hello), "Count down"
(countdown) and "Fail on purpose" (flaky), and a Node executor for them. This executor serves
the same handlers from Python, next to it (ROUTE_STRATEGY_FIRST picks the first instance by
name; trigger with an explicit executor to pick this one):

    npm start    # in another terminal; the group's token is in data/demo-executor-token
    JOBSTREAM_ADMIN_ADDRESSES=127.0.0.1:8787 JOBSTREAM_APP_NAME=demo \\
    JOBSTREAM_ACCESS_TOKEN="$(cat data/demo-executor-token)" \\
    python3 executor-sdk-python/examples/demo_executor.py

with the SDK installed (`pip install ./executor-sdk-python`).
"""

import logging
import os
import sys

from jobstream_executor import Executor


def required(name):
    value = os.environ.get(name)
    if not value:
        sys.stderr.write(f"{name} is required\n")
        sys.exit(2)
    return value


logging.basicConfig(stream=sys.stderr, level=logging.INFO)
instance_name = os.environ.get("JOBSTREAM_INSTANCE_NAME", "demo-python-1")
executor = Executor(
    admin_addresses=required("JOBSTREAM_ADMIN_ADDRESSES"),
    app_name=required("JOBSTREAM_APP_NAME"),
    access_token=required("JOBSTREAM_ACCESS_TOKEN"),
    instance_name=instance_name,
    data_dir=os.environ.get("JOBSTREAM_EXECUTOR_DATA_DIR", os.path.join("data", instance_name)),
)


@executor.handler("hello")
def hello(ctx):
    who = ctx.param or "world"
    ctx.log(f"hello, {who}")
    return f"said hello to {who} from Python"


@executor.handler("countdown")
async def countdown(ctx):
    start = int(ctx.param) if ctx.param.isdigit() and int(ctx.param) > 0 else 10
    for remaining in range(start, 0, -1):
        ctx.log(f"{remaining}...")
        # Ends at once with RunAborted on a kill or timeout.
        await ctx.asleep(1)
    ctx.log("lift-off")
    return f"counted down from {start}"


@executor.handler("flaky")
def flaky(ctx):
    raise RuntimeError("this handler fails on purpose, to show failure logs")


print(f"demo executor {instance_name} starting", flush=True)
executor.run()
