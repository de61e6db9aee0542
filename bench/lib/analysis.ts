import type { Cluster, ExecutorProcess, ReceivedRun } from './cluster.js';
import { firesIn, type BenchJob } from './jobs.js';
import { distribution, round, type Distribution } from './stats.js';
import type { Row } from './report.js';
import { progress } from './util.js';

/** Collects the runs every executor received for fires scheduled in [fromMs, toMs). */
export async function collectRuns(
  executors: readonly ExecutorProcess[],
  fromMs: number,
  toMs: number,
): Promise<{ runs: ReceivedRun[]; withoutScheduledAt: number }> {
  const dumps = await Promise.all(
    executors.filter(executor => executor.child.alive).map(executor => executor.dump(fromMs, toMs)),
  );
  return {
    runs: dumps.flatMap(dump => dump.runs),
    withoutScheduledAt: dumps.reduce((sum, dump) => sum + dump.withoutScheduledAt, 0),
  };
}

export interface RunAnalysis {
  /** Fires the schedules call for in the window. */
  expected: number;
  /** Runs the executors received (including duplicates). */
  received: number;
  /** Distinct (job, scheduled time) pairs received that were expected. */
  receivedExpected: number;
  /** Runs received for a (job, scheduled time) already received. */
  duplicates: number;
  /** Runs whose (job, scheduled time) no schedule calls for. */
  unexpected: number;
  /** Expected fires neither received nor recorded as skipped. */
  missed: number;
  /** Expected fires the misfire policy skipped (recorded SKIPPED). */
  skipped: number;
  /** A few missed fires, for diagnosis. */
  missedSample: { jobId: number; scheduledAt: string }[];
  /** The scheduled time of every missed fire. */
  missedScheduledMs: number[];
  /** Run lateness (ms): arrival at the executor minus the scheduled time. */
  lateness: Distribution | undefined;
  /** Runs that arrived before their scheduled time. */
  early: number;
  /** Received runs per executor. */
  perExecutor: Record<string, number>;
}

const key = (jobId: number, scheduledMs: number): string => `${jobId}:${scheduledMs}`;

/** Compares what the executors received with what the schedules call for. */
export function analyzeRuns(
  jobs: readonly BenchJob[],
  runs: readonly ReceivedRun[],
  fromMs: number,
  toMs: number,
  skippedKeys: ReadonlySet<string> = new Set(),
): RunAnalysis {
  const expected = new Set<string>();
  for (const job of jobs) for (const t of firesIn(job, fromMs, toMs)) expected.add(key(job.id, t));
  const seen = new Set<string>();
  let duplicates = 0;
  let unexpected = 0;
  let early = 0;
  const perExecutor: Record<string, number> = {};
  const lateness: number[] = [];
  for (const run of runs) {
    perExecutor[run.executor] = (perExecutor[run.executor] ?? 0) + 1;
    lateness.push(run.latenessMs);
    if (run.latenessMs < 0) early += 1;
    const k = key(run.jobId, run.scheduledMs);
    if (seen.has(k)) duplicates += 1;
    else if (!expected.has(k)) unexpected += 1;
    seen.add(k);
  }
  let receivedExpected = 0;
  let skipped = 0;
  let missed = 0;
  const missedSample: { jobId: number; scheduledAt: string }[] = [];
  const missedScheduledMs: number[] = [];
  for (const k of expected) {
    if (seen.has(k)) receivedExpected += 1;
    else if (skippedKeys.has(k)) skipped += 1;
    else {
      missed += 1;
      const [jobId, t] = k.split(':').map(Number) as [number, number];
      missedScheduledMs.push(t);
      if (missedSample.length < 10) missedSample.push({ jobId, scheduledAt: new Date(t).toISOString() });
    }
  }
  return {
    expected: expected.size,
    received: runs.length,
    receivedExpected,
    duplicates,
    unexpected,
    missed,
    skipped,
    missedSample,
    missedScheduledMs,
    lateness: distribution(lateness),
    early,
    perExecutor,
  };
}

export interface LogCounts {
  /** Rows by dispatch outcome (PENDING, ACCEPTED, FAILED, SKIPPED). */
  byDispatch: Record<string, number>;
  /** Rows with a stored result. */
  withResult: number;
  /** (job, scheduled time) pairs with more than one SCHEDULE/MISFIRE row. */
  duplicatePairs: number;
  /** A few dispatch failure messages, for diagnosis. */
  failureSamples: string[];
}

/** What the trigger_log table says about the scheduled fires in [fromMs, toMs). */
export async function countLogs(cluster: Cluster, fromMs: number, toMs: number): Promise<LogCounts> {
  const from = new Date(fromMs);
  const to = new Date(toMs);
  const pool = cluster.db.pool;
  const [byDispatch, duplicates, failures] = await Promise.all([
    pool.query<{ dispatch_outcome: string; n: number; with_result: number }>(
      `select dispatch_outcome, count(*)::int as n, count(*) filter (where outcome is not null)::int as with_result
         from trigger_log
        where trigger_type in ('SCHEDULE', 'MISFIRE') and scheduled_at >= $1 and scheduled_at < $2
        group by dispatch_outcome`,
      [from, to],
    ),
    pool.query<{ n: number }>(
      `select count(*)::int as n from (
         select job_id, scheduled_at from trigger_log
          where trigger_type in ('SCHEDULE', 'MISFIRE') and scheduled_at >= $1 and scheduled_at < $2
          group by job_id, scheduled_at, shard_index having count(*) > 1) d`,
      [from, to],
    ),
    pool.query<{ trigger_message: string; n: number }>(
      `select trigger_message, count(*)::int as n from trigger_log
        where trigger_type in ('SCHEDULE', 'MISFIRE') and scheduled_at >= $1 and scheduled_at < $2
          and dispatch_outcome = 'FAILED'
        group by trigger_message order by n desc limit 3`,
      [from, to],
    ),
  ]);
  return {
    byDispatch: Object.fromEntries(byDispatch.rows.map(row => [row.dispatch_outcome, row.n])),
    withResult: byDispatch.rows.reduce((sum, row) => sum + row.with_result, 0),
    duplicatePairs: duplicates.rows[0]?.n ?? 0,
    failureSamples: failures.rows.map(row => `${row.n}× ${row.trigger_message}`),
  };
}

/** (job, scheduled time) keys of fires recorded SKIPPED by the misfire policy in the window. */
export async function skippedKeys(cluster: Cluster, fromMs: number, toMs: number): Promise<Set<string>> {
  const { rows } = await cluster.db.pool.query<{ job_id: string; scheduled_at: Date }>(
    `select job_id, scheduled_at from trigger_log
      where dispatch_outcome = 'SKIPPED' and scheduled_at >= $1 and scheduled_at < $2`,
    [new Date(fromMs), new Date(toMs)],
  );
  return new Set(rows.map(row => key(Number(row.job_id), row.scheduled_at.getTime())));
}

/** Prints executor throughput every few seconds while a phase runs; stop() ends it. */
export function startTicker(
  label: string,
  executors: readonly ExecutorProcess[],
  phase: () => string,
  intervalMs = 2_000,
): { stop(): void } {
  const timer = setInterval(() => {
    const alive = executors.filter(executor => executor.latest !== undefined);
    const perSecond = alive.reduce((sum, executor) => sum + (executor.latest?.perSecond ?? 0), 0);
    const lag = Math.max(0, ...alive.map(executor => executor.latest?.lagMaxMs ?? 0));
    progress(label, phase(), { 'runs/s': perSecond, 'executor lag max ms': lag });
  }, intervalMs);
  return { stop: () => clearInterval(timer) };
}

export interface AdminMetrics {
  /** Counters by full series name (misfires, triggers by outcome, results). */
  counters: Record<string, number>;
  /** Histograms: cumulative bucket counts by upper bound (seconds), sum and count. */
  histograms: Record<string, { buckets: [number, number][]; sum: number; count: number }>;
  /** The admin's event-loop delay (ms) since the previous scrape: mean, p99, max. */
  eventLoopLagMs: Record<string, number>;
}

const HISTOGRAMS = [
  'jobstream_fire_lateness_seconds',
  'jobstream_dispatch_seconds',
  'jobstream_db_statement_seconds',
];
const COUNTERS =
  /^(jobstream_(?:misfires_total|triggers_total|run_results_total|db_statements_total)(?:\{[^}]*\})?) ([0-9.e+-]+)$/;

/**
 * The admin's own view from /metrics: when it sent fires (fire lateness), how long
 * executors took to accept (dispatch), misfires and trigger outcomes. Cumulative since
 * the admin started; see metricsBetween.
 */
export function parseAdminMetrics(text: string | undefined): AdminMetrics | undefined {
  if (text === undefined) return undefined;
  const counters: Record<string, number> = {};
  const histograms: AdminMetrics['histograms'] = {};
  const eventLoopLagMs: Record<string, number> = {};
  const lines = text.split('\n');
  for (const line of lines) {
    const match = COUNTERS.exec(line);
    if (match) counters[match[1]!] = Number(match[2]);
    const lag = /^jobstream_admin_nodejs_eventloop_lag_(mean|p99|max)_seconds ([0-9.e+-]+)$/.exec(line);
    if (lag) eventLoopLagMs[lag[1]!] = round(Number(lag[2]) * 1000, 1);
  }
  for (const name of HISTOGRAMS) {
    const histogram = { buckets: [] as [number, number][], sum: 0, count: 0 };
    for (const line of lines) {
      const bucket = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} ([0-9.e+-]+)$`).exec(line);
      if (bucket)
        histogram.buckets.push([bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), Number(bucket[2])]);
      if (line.startsWith(`${name}_sum `)) histogram.sum = Number(line.split(' ')[1]);
      if (line.startsWith(`${name}_count `)) histogram.count = Number(line.split(' ')[1]);
    }
    if (histogram.buckets.length > 0) histograms[name] = histogram;
  }
  return { counters, histograms, eventLoopLagMs };
}

export interface AdminMetricsSummary {
  counters: Record<string, number>;
  /** The admin's event-loop delay (ms) between the two scrapes. */
  eventLoopLagMs: Record<string, number>;
  /** Approximate quantiles: the upper bound (ms) of the bucket holding them. */
  histograms: Record<
    string,
    {
      count: number;
      meanMs: number;
      p50Ms: number | string;
      p99Ms: number | string;
      maxBucketMs: number | string;
    }
  >;
}

/** What the admin's metrics grew by between two scrapes (or since start without `before`). */
export function metricsBetween(
  before: AdminMetrics | undefined,
  after: AdminMetrics | undefined,
): AdminMetricsSummary | undefined {
  if (!after) return undefined;
  const counters: Record<string, number> = {};
  for (const [name, value] of Object.entries(after.counters)) {
    const delta = value - (before?.counters[name] ?? 0);
    if (delta !== 0) counters[name] = delta;
  }
  const histograms: AdminMetricsSummary['histograms'] = {};
  for (const [name, histogram] of Object.entries(after.histograms)) {
    const previous = before?.histograms[name];
    const count = histogram.count - (previous?.count ?? 0);
    if (count <= 0) continue;
    const sum = histogram.sum - (previous?.sum ?? 0);
    const buckets = histogram.buckets.map(
      ([le, n], i) => [le, n - (previous?.buckets[i]?.[1] ?? 0)] as const,
    );
    const lastFinite = histogram.buckets.filter(([le]) => Number.isFinite(le)).at(-1)?.[0] ?? 0;
    // In the +Inf bucket all that is known is "more than the largest bound".
    const quantile = (q: number): number | string => {
      const le = buckets.find(([, n]) => n >= q * count)?.[0] ?? Infinity;
      return Number.isFinite(le) ? le * 1000 : `> ${lastFinite * 1000}`;
    };
    histograms[name] = {
      count,
      meanMs: round((sum / count) * 1000, 2),
      p50Ms: quantile(0.5),
      p99Ms: quantile(0.99),
      maxBucketMs: quantile(1),
    };
  }
  return { counters, eventLoopLagMs: after.eventLoopLagMs, histograms };
}

/** Each executor's worst event-loop delay (ms) during the window. */
export function executorLag(
  executors: readonly ExecutorProcess[],
  fromMs: number,
  toMs: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const executor of executors) {
    const lag = executor.lagMaxMs(fromMs, toMs);
    if (lag !== undefined) out[executor.name] = lag;
  }
  return out;
}

export interface LogCrossCheck {
  /** Runs whose log id has no trigger_log row. */
  withoutRow: number;
  /** Runs whose row names another job or scheduled time than the RunRequest did. */
  mismatched: number;
  /** Runs whose row still says the dispatch is PENDING (the outcome was never recorded). */
  stillPending: number;
  samples: string[];
}

/** Checks every run an executor received against its trigger_log row. */
export async function crossCheckLogs(cluster: Cluster, runs: readonly ReceivedRun[]): Promise<LogCrossCheck> {
  const rows = new Map<number, { jobId: number; scheduledMs: number; dispatch: string }>();
  const ids = [...new Set(runs.map(run => run.logId))];
  for (let offset = 0; offset < ids.length; offset += 20_000) {
    const { rows: batch } = await cluster.db.pool.query<{
      id: string;
      job_id: string;
      scheduled_at: Date;
      dispatch_outcome: string;
    }>('select id, job_id, scheduled_at, dispatch_outcome from trigger_log where id = any($1::bigint[])', [
      ids.slice(offset, offset + 20_000),
    ]);
    for (const row of batch) {
      rows.set(Number(row.id), {
        jobId: Number(row.job_id),
        scheduledMs: row.scheduled_at.getTime(),
        dispatch: row.dispatch_outcome,
      });
    }
  }
  const check: LogCrossCheck = { withoutRow: 0, mismatched: 0, stillPending: 0, samples: [] };
  const sample = (text: string): void => {
    if (check.samples.length < 5) check.samples.push(text);
  };
  for (const run of runs) {
    const row = rows.get(run.logId);
    if (!row) {
      check.withoutRow += 1;
      sample(`log ${run.logId} (job ${run.jobId}) has no row`);
    } else if (row.jobId !== run.jobId || row.scheduledMs !== run.scheduledMs) {
      check.mismatched += 1;
      sample(
        `log ${run.logId}: run job ${run.jobId} at ${new Date(run.scheduledMs).toISOString()}, row job ${row.jobId} at ${new Date(row.scheduledMs).toISOString()}`,
      );
    } else if (row.dispatch === 'PENDING') {
      check.stillPending += 1;
    }
  }
  return check;
}

/**
 * The promise every load keeps: no fire failed, recorded twice or run twice. A fire that
 * overload made really late follows its misfire rule (SKIPPED), which is not a failure.
 */
export function firesKeptRow(scenario: string, logs: LogCounts, runDuplicates: number): Row {
  const failed = logs.byDispatch.FAILED ?? 0;
  return {
    scenario,
    metric: 'fires failed / doubled',
    value: `${failed} / ${logs.duplicatePairs + runDuplicates}`,
    goal: '0 / 0',
    ok: failed === 0 && logs.duplicatePairs === 0 && runDuplicates === 0,
    correctness: true,
  };
}

/** A table row when runs and trigger_log disagree (nothing when they agree). */
export function crossCheckRows(scenario: string, check: LogCrossCheck): Row[] {
  if (check.withoutRow === 0 && check.mismatched === 0) return [];
  return [
    {
      scenario,
      metric: 'runs vs trigger_log',
      value: `${check.withoutRow} without row, ${check.mismatched} mismatched`,
      goal: '0',
      ok: false,
      correctness: true,
    },
  ];
}

/** A counter family's total over its labels (e.g. every outcome of jobstream_run_results_total). */
export function counterTotal(summary: AdminMetricsSummary | undefined, name: string): number {
  if (!summary) return 0;
  return Object.entries(summary.counters)
    .filter(([key]) => key === name || key.startsWith(`${name}{`))
    .reduce((sum, [, value]) => sum + value, 0);
}
