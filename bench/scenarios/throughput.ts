import {
  analyzeRuns,
  counterTotal,
  crossCheckLogs,
  crossCheckRows,
  firesKeptRow,
  executorLag,
  collectRuns,
  countLogs,
  metricsBetween,
  parseAdminMetrics,
  startTicker,
} from '../lib/analysis.js';
import { Cluster } from '../lib/cluster.js';
import { throwIfAborted, type BenchContext } from '../lib/context.js';
import { EVERY_SECOND, insertJobsSql } from '../lib/jobs.js';
import type { ScenarioResult } from '../lib/report.js';
import {
  cpuPercents,
  hostBusyPercent,
  p50p99max,
  round,
  sampleHostCpu,
  type ProcSample,
} from '../lib/stats.js';
import { ceilSecond, progress, sleepUntil } from '../lib/util.js';
import { pick } from './lateness.js';

/** The floor issue 12 sets (its goal is 30,000). */
const GOAL_RUNS_PER_SECOND = 10_000;

/**
 * End-to-end throughput: `throughputJobs` jobs firing every second (the offered load),
 * `admins` admins with one executor each (an executor talks to its own admin only).
 * The figure is results stored per second in PostgreSQL: trigger_log rows whose result
 * was received within the window.
 */
export async function runThroughput(context: BenchContext, admins: 1 | 2): Promise<ScenarioResult> {
  const { options } = context;
  const name = `throughput ${admins} admin${admins > 1 ? 's' : ''}`;
  const cluster = await Cluster.create({
    server: context.server,
    label: name,
    logDir: context.logDir,
    executorCapacity: context.options.executorCapacity,
  });
  try {
    for (let i = 0; i < admins; i++) await cluster.startAdmin();
    const appName = 'bench-throughput';
    const group = await cluster.createGroup(appName);
    const executors = await cluster.startExecutors(admins, { appName, token: group.token }, index => [
      cluster.admins[index]!.address,
    ]);
    throwIfAborted(context);

    const firstFireMs = ceilSecond(Date.now() + 3_000);
    progress(name, `inserting ${options.throughputJobs} jobs firing every second`);
    const jobs = await insertJobsSql(
      cluster,
      group.groupId,
      Array.from({ length: options.throughputJobs }, () => ({
        scheduleType: 'CRON',
        scheduleConf: EVERY_SECOND,
        firstFireMs,
      })),
    );
    const fromMs = ceilSecond(firstFireMs + options.warmupMs);
    const toMs = fromMs + options.windowMs;
    const ticker = startTicker(name, executors, () =>
      Date.now() < fromMs ? 'warming up' : Date.now() < toMs ? 'measuring' : 'settling',
    );
    let metricsAtStart: (string | undefined)[] = [];
    let rowWritesAtStart: RowWrites | undefined;
    let rowWritesAtEnd: RowWrites | undefined;
    let metricsAtEnd: (string | undefined)[] = [];
    let before: Map<string, ProcSample> | undefined;
    let after: Map<string, ProcSample> | undefined;
    let hostBefore, hostAfter;
    try {
      await sleepUntil(fromMs, context.signal);
      [before, hostBefore, metricsAtStart, rowWritesAtStart] = await Promise.all([
        cluster.sampleProcesses(),
        sampleHostCpu(),
        Promise.all(cluster.admins.map(admin => cluster.scrapeMetrics(admin))),
        sampleRowWrites(cluster),
      ]);
      await sleepUntil(toMs, context.signal);
      [after, hostAfter, metricsAtEnd, rowWritesAtEnd] = await Promise.all([
        cluster.sampleProcesses(),
        sampleHostCpu(),
        Promise.all(cluster.admins.map(admin => cluster.scrapeMetrics(admin))),
        sampleRowWrites(cluster),
      ]);
      await sleepUntil(toMs + options.settleMs, context.signal);
    } finally {
      ticker.stop();
    }
    throwIfAborted(context);
    cluster.assertHealthy();

    const from = new Date(fromMs);
    const to = new Date(toMs);
    const [stored, dispatched, endToEnd, logs, collected, metrics] = await Promise.all([
      cluster.db.pool.query<{ n: number }>(
        `select count(*)::int as n from trigger_log
          where outcome is not null and result_received_at >= $1 and result_received_at < $2`,
        [from, to],
      ),
      cluster.db.pool.query<{ n: number }>(
        `select count(*)::int as n from trigger_log
          where dispatch_outcome = 'ACCEPTED' and triggered_at >= $1 and triggered_at < $2`,
        [from, to],
      ),
      // Scheduled time to result stored, for fires scheduled in the window.
      cluster.db.pool.query<{ p50: number | null; p99: number | null; max: number | null }>(
        `select percentile_disc(0.5) within group (order by ms) as p50,
                percentile_disc(0.99) within group (order by ms) as p99,
                max(ms) as max
           from (select extract(epoch from (result_received_at - scheduled_at)) * 1000 as ms
                   from trigger_log
                  where scheduled_at >= $1 and scheduled_at < $2 and result_received_at is not null) t`,
        [from, to],
      ),
      countLogs(cluster, fromMs, toMs),
      collectRuns(executors, fromMs, toMs),
      Promise.all(cluster.admins.map(admin => cluster.scrapeMetrics(admin))),
    ]);
    const analysis = analyzeRuns(jobs, collected.runs, fromMs, toMs);
    const crossCheck = await crossCheckLogs(cluster, collected.runs);
    const windowSeconds = options.windowMs / 1000;
    const resultsPerSecond = round(stored.rows[0]!.n / windowSeconds, 0);
    const dispatchedPerSecond = round(dispatched.rows[0]!.n / windowSeconds, 0);
    const e2e = endToEnd.rows[0];
    // Per result stored in the window, over every admin: SQL statements and admin CPU.
    const inWindow = metricsAtEnd.map((text, index) =>
      metricsBetween(parseAdminMetrics(metricsAtStart[index]), parseAdminMetrics(text)),
    );
    const statements = inWindow.reduce((sum, m) => sum + counterTotal(m, 'jobstream_db_statements_total'), 0);
    const results = inWindow.reduce((sum, m) => sum + counterTotal(m, 'jobstream_run_results_total'), 0);
    const statementsPerResult = results > 0 ? round(statements / results, 2) : undefined;
    const rowWrites =
      rowWritesAtStart && rowWritesAtEnd && results > 0
        ? {
            triggerLogPerResult: round(
              (rowWritesAtEnd.triggerLog - rowWritesAtStart.triggerLog) / results,
              2,
            ),
            jobPerResult: round((rowWritesAtEnd.job - rowWritesAtStart.job) / results, 2),
          }
        : undefined;
    const cpu = before && after ? cpuPercents(before, after) : undefined;
    const adminCpuPercent = cpu
      ? Object.entries(cpu)
          .filter(([process]) => process.startsWith('admin'))
          .reduce((sum, [, percent]) => sum + percent, 0)
      : undefined;
    const adminCpuMsPerResult =
      adminCpuPercent !== undefined && stored.rows[0]!.n > 0
        ? round(((adminCpuPercent / 100) * options.windowMs) / stored.rows[0]!.n, 3)
        : undefined;
    progress(name, 'measured', { 'results/s': resultsPerSecond, 'dispatched/s': dispatchedPerSecond });
    return {
      scenario: 'throughput',
      name,
      rows: [
        {
          scenario: name,
          metric: 'results stored/s',
          value: `${resultsPerSecond} (offered ${options.throughputJobs})`,
          goal: `≥ ${GOAL_RUNS_PER_SECOND}`,
          ok: resultsPerSecond >= GOAL_RUNS_PER_SECOND,
        },
        {
          scenario: name,
          metric: 'sched→stored p50/p99/max',
          value:
            e2e?.p50 == null
              ? 'n/a'
              : [e2e.p50, e2e.p99 ?? NaN, e2e.max ?? NaN].map(v => String(Math.round(v))).join('/'),
          goal: '',
        },
        {
          scenario: name,
          metric: 'lateness p50/p99/max',
          value: p50p99max(analysis.lateness),
          goal: '',
        },
        {
          scenario: name,
          metric: 'SQL statements per result',
          value: statementsPerResult === undefined ? 'n/a' : String(statementsPerResult),
          goal: '',
        },
        {
          scenario: name,
          metric: 'row writes per result (log / job)',
          value: rowWrites ? `${rowWrites.triggerLogPerResult} / ${rowWrites.jobPerResult}` : 'n/a',
          goal: '',
        },
        {
          scenario: name,
          metric: 'admin CPU ms per result',
          value: adminCpuMsPerResult === undefined ? 'n/a' : String(adminCpuMsPerResult),
          goal: '≤ 0.06',
          ok: adminCpuMsPerResult !== undefined && adminCpuMsPerResult <= 0.06,
        },
        firesKeptRow(name, logs, analysis.duplicates),
        ...crossCheckRows(name, crossCheck),
      ],
      details: {
        logWarnings: cluster.logWarnings(),
        admins,
        executors: executors.length,
        offeredFiresPerSecond: options.throughputJobs,
        window: { from: from.toISOString(), to: to.toISOString(), seconds: windowSeconds },
        resultsStoredPerSecond: resultsPerSecond,
        dispatchedPerSecond,
        scheduledToStoredMs: e2e,
        latenessMs: analysis.lateness,
        ...pick(analysis, ['expected', 'received', 'receivedExpected', 'duplicates', 'unexpected', 'missed']),
        perExecutor: analysis.perExecutor,
        triggerLog: logs,
        crossCheck,
        cpuPercent: cpu,
        statementsPerResult,
        rowWritesPerResult: rowWrites,
        adminCpuMsPerResult,
        adminMetricsInWindow: inWindow,
        executorLagMaxMs: executorLag(executors, fromMs, toMs),
        hostCpuBusyPercent: hostBusyPercent(hostBefore, hostAfter),
        adminMetrics: metrics.map(text => metricsBetween(undefined, parseAdminMetrics(text))),
      },
    };
  } catch (error) {
    throw cluster.explain(error);
  } finally {
    await cluster.close();
  }
}

/** Rows inserted, updated or deleted so far, per table (PostgreSQL's statistics, which lag up to a second). */
interface RowWrites {
  triggerLog: number;
  job: number;
}

async function sampleRowWrites(cluster: Cluster): Promise<RowWrites> {
  const { rows } = await cluster.db.pool.query<{ relname: string; writes: string }>(
    `select relname, (n_tup_ins + n_tup_upd + n_tup_del)::text as writes
       from pg_stat_user_tables where relname in ('trigger_log', 'job')`,
  );
  const writes = (table: string) => Number(rows.find(row => row.relname === table)?.writes ?? 0);
  return { triggerLog: writes('trigger_log'), job: writes('job') };
}
