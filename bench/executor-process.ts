// The benchmark's executor process: the real SDK with one handler, `bench`, that records
// when each run arrived relative to the time it was scheduled for, and returns at once.
//
// Protocol (driven by bench/lib/cluster.ts):
//   stdout: {"event":"ready"} once welcomed; {"event":"stats",...} every BENCH_STATS_INTERVAL_MS;
//           {"event":"dump",...} in answer to a dump command.
//   stdin:  {"cmd":"dump","id":N,"from":ms,"to":ms}  runs scheduled in [from, to)
//           {"cmd":"reset"}                          forget the runs recorded so far
//   SIGTERM stops the executor gracefully (SIGKILL is fine too: the harness owns its data).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Executor, createJsonLogger, type LogLevel } from '@jobstream/executor';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};

/** Growable columns of the runs received: job id, scheduled time, lateness, log id. */
class Runs {
  size = 0;
  job: Float64Array = new Float64Array(1 << 14);
  scheduled: Float64Array = new Float64Array(1 << 14);
  lateness: Float64Array = new Float64Array(1 << 14);
  log: Float64Array = new Float64Array(1 << 14);

  add(job: number, scheduled: number, lateness: number, log: number): void {
    if (this.size === this.job.length) {
      this.job = grow(this.job);
      this.scheduled = grow(this.scheduled);
      this.lateness = grow(this.lateness);
      this.log = grow(this.log);
    }
    const i = this.size++;
    this.job[i] = job;
    this.scheduled[i] = scheduled;
    this.lateness[i] = lateness;
    this.log[i] = log;
  }
}

function grow(array: Float64Array): Float64Array {
  const bigger = new Float64Array(array.length * 2);
  bigger.set(array);
  return bigger;
}

let runs = new Runs();
let total = 0;
let withoutScheduledAt = 0;

const executor = new Executor({
  adminAddresses: required('BENCH_ADMIN_ADDRESSES').split(','),
  appName: required('BENCH_APP_NAME'),
  accessToken: required('BENCH_ACCESS_TOKEN'),
  instanceName: required('BENCH_INSTANCE_NAME'),
  dataDir: required('BENCH_DATA_DIR'),
  // The SDK's defaults unless the bench is told otherwise (--capacity): what users get.
  ...(process.env.BENCH_CAPACITY ? { capacity: Number(process.env.BENCH_CAPACITY) } : {}),
  ...(process.env.BENCH_OUTBOUND_QUEUE
    ? { outboundQueueCapacity: Number(process.env.BENCH_OUTBOUND_QUEUE) }
    : {}),
  // Reconnect fast after an admin is killed (failover scenario).
  reconnectBaseDelayMs: 50,
  reconnectMaxDelayMs: 1_000,
  shutdownGracePeriodMs: 1_000,
  resultFlushTimeoutMs: 1_000,
  logRetentionDays: 0,
  logger: createJsonLogger((process.env.BENCH_EXECUTOR_LOG_LEVEL ?? 'warn') as LogLevel),
});

/**
 * The wall clock (what schedules are defined in and the admin fires by) with
 * sub-millisecond resolution: the monotonic clock plus its offset to Date.now(), the best
 * of the last second's samples (Date.now() truncates to the millisecond, so each sample is
 * short by up to 1 ms and the largest is closest). Not `performance.timeOrigin +
 * performance.now()`, which is anchored once at process start: when the wall clock is
 * slewed or stepped afterwards (a virtual machine's clock catching up), that drifts from
 * the time the system schedules by, and runs started on time by the wall clock measured
 * tens of milliseconds early.
 */
const wallOffsets: number[] = [];
function sampleWallOffset(): void {
  wallOffsets.push(Date.now() - performance.now());
  if (wallOffsets.length > 100) wallOffsets.shift();
}
sampleWallOffset();
setInterval(sampleWallOffset, 10).unref();
function wallNow(): number {
  return Math.max(...wallOffsets) + performance.now();
}

executor.register('bench', ctx => {
  // Wall clock with sub-millisecond resolution, taken before anything else.
  const arrived = wallNow();
  total += 1;
  const scheduled = ctx.scheduledAt?.getTime();
  if (scheduled === undefined) {
    withoutScheduledAt += 1;
    return;
  }
  runs.add(Number(ctx.jobId), scheduled, arrived - scheduled, Number(ctx.logId));
});

const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
const statsInterval = Number(process.env.BENCH_STATS_INTERVAL_MS ?? '1000');
let lastTotal = 0;
const statsTimer = setInterval(() => {
  emit({
    event: 'stats',
    at: Date.now(),
    total,
    perSecond: Math.round(((total - lastTotal) * 1000) / statsInterval),
    lagMaxMs: Math.round(lag.max / 1e6),
    lagP99Ms: Math.round(lag.percentile(99) / 1e6),
    state: executor.state,
  });
  lastTotal = total;
  lag.reset();
}, statsInterval);

function dump(id: unknown, from: number, to: number): void {
  const job: number[] = [];
  const sched: number[] = [];
  const late: number[] = [];
  const log: number[] = [];
  for (let i = 0; i < runs.size; i++) {
    const scheduled = runs.scheduled[i]!;
    if (scheduled < from || scheduled >= to) continue;
    job.push(runs.job[i]!);
    sched.push(scheduled - from);
    late.push(Math.round(runs.lateness[i]! * 100) / 100);
    log.push(runs.log[i]!);
  }
  emit({ event: 'dump', id, base: from, job, sched, late, log, total, withoutScheduledAt });
}

createInterface({ input: process.stdin }).on('line', line => {
  let command: { cmd?: unknown; id?: unknown; from?: unknown; to?: unknown };
  try {
    command = JSON.parse(line) as typeof command;
  } catch {
    return;
  }
  if (command.cmd === 'dump') {
    dump(command.id, Number(command.from ?? 0), Number(command.to ?? Number.MAX_SAFE_INTEGER));
  } else if (command.cmd === 'reset') {
    runs = new Runs();
  }
});

process.on('SIGTERM', () => {
  clearInterval(statsTimer);
  executor.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

await executor.start();
emit({ event: 'ready', pid: process.pid });
