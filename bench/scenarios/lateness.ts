import {
  analyzeRuns,
  crossCheckLogs,
  executorLag,
  collectRuns,
  countLogs,
  firesKeptRow,
  metricsBetween,
  parseAdminMetrics,
  skippedKeys,
  startTicker,
} from '../lib/analysis.js';
import { Cluster, type AdminProcess, type ExecutorProcess } from '../lib/cluster.js';
import { throwIfAborted, type BenchContext } from '../lib/context.js';
import { createEverySecondJobsViaApi, EVERY_SECOND, insertJobsSql, type BenchJob } from '../lib/jobs.js';
import type { Row, ScenarioResult } from '../lib/report.js';
import {
  cpuPercents,
  hostBusyPercent,
  mib,
  p50p99max,
  sampleHostCpu,
  type ProcSample,
} from '../lib/stats.js';
import { ceilSecond, progress, sleep, sleepUntil } from '../lib/util.js';

/** p99 floors (ms) by load shape and fire rate, from the issue ("1,000 fires at one instant": 100 ms). */
const P99_GOALS: Record<Shape, Record<number, number>> = {
  steady: { 1000: 10, 5000: 25 },
  burst: { 1000: 100 },
};

/** Executor processes per rate: enough capacity without starving a 2-core machine. */
function executorCount(rate: number): number {
  return rate >= 5_000 ? 3 : 2;
}

type Shape = 'steady' | 'burst';

/**
 * Fire lateness at `rate` fires per second, one admin, a few executors; lateness is the
 * executor's handler start minus the scheduled time, for every fire scheduled in the
 * measured window. Two load shapes, one after the other on the same processes:
 *
 * - steady: `rate` FIX_RATE 1 s jobs whose fire times are spread evenly over the second
 *   (inserted with SQL, first fires at distinct milliseconds): a constant rate.
 * - burst: `rate` cron `* * * * * ?` jobs (through the API up to apiJobLimit jobs): all
 *   of them fire at the same instant, once a second.
 */
export async function runLateness(context: BenchContext, rate: number): Promise<ScenarioResult> {
  const name = `lateness@${rate}/s`;
  const cluster = await Cluster.create({
    server: context.server,
    label: name,
    logDir: context.logDir,
    executorCapacity: context.options.executorCapacity,
  });
  try {
    const admin = await cluster.startAdmin();
    const appName = 'bench-lateness';
    const group = await cluster.createGroup(appName);
    const executors = await cluster.startExecutors(
      executorCount(rate),
      { appName, token: group.token },
      () => [admin.address],
    );
    throwIfAborted(context);

    const steady = await measurePhase(context, cluster, admin, executors, group.groupId, rate, 'steady');
    await stopJobs(cluster, steady.jobIds);
    for (const executor of executors) executor.reset();
    // Fires already claimed (up to the scheduler's look-ahead) still go out.
    await sleep(2_500, context.signal);
    throwIfAborted(context);
    const burst = await measurePhase(context, cluster, admin, executors, group.groupId, rate, 'burst');

    const rows: Row[] = [steady, burst].map(phase => {
      const goal = P99_GOALS[phase.shape][rate];
      return {
        scenario: `${name} ${phase.shape}`,
        metric: 'p50/p99/max (ms)',
        value: p50p99max(phase.latenessMs),
        goal: goal === undefined ? '' : `p99 ≤ ${goal}`,
        ok: goal === undefined || !phase.latenessMs ? undefined : phase.latenessMs.p99 <= goal,
      };
    });
    const complete = (phase: Phase): boolean =>
      phase.missed === 0 && phase.duplicates === 0 && phase.unexpected === 0;
    rows.push({
      scenario: name,
      metric: 'fires received/expected',
      value: [steady, burst].map(phase => `${phase.receivedExpected}/${phase.expected}`).join(', '),
      goal: 'all',
      // A speed goal: under overload fires are late (still to come, or skipped by the
      // misfire rule), which is not a broken promise; failed or doubled ones are (below).
      ok: complete(steady) && complete(burst),
    });
    for (const phase of [steady, burst]) {
      rows.push(
        firesKeptRow(`${name} ${phase.shape}`, phase.triggerLog, phase.duplicates + phase.unexpected),
      );
    }
    return {
      scenario: 'lateness',
      name,
      rows,
      details: { rate, executors: executors.length, steady, burst, logWarnings: cluster.logWarnings() },
    };
  } catch (error) {
    throw cluster.explain(error);
  } finally {
    await cluster.close();
  }
}

type Phase = Awaited<ReturnType<typeof measurePhase>>;

async function measurePhase(
  context: BenchContext,
  cluster: Cluster,
  admin: AdminProcess,
  executors: readonly ExecutorProcess[],
  groupId: string,
  rate: number,
  shape: Shape,
) {
  const { options } = context;
  const label = `${cluster.label} ${shape}`;
  let jobs: BenchJob[];
  let firstFireMs: number;
  let createdWith: 'api' | 'sql' = 'sql';
  if (shape === 'steady') {
    const base = ceilSecond(Date.now() + 3_000);
    progress(label, `inserting ${rate} FIX_RATE 1 s jobs, fires spread over the second`);
    jobs = await insertJobsSql(
      cluster,
      groupId,
      Array.from({ length: rate }, (_, i) => ({
        scheduleType: 'FIX_RATE',
        scheduleConf: '1',
        firstFireMs: base + Math.floor((i * 1000) / rate),
      })),
    );
    firstFireMs = base + 1000;
  } else if (rate <= options.apiJobLimit) {
    createdWith = 'api';
    progress(label, `creating ${rate} cron jobs through the API`);
    jobs = await createEverySecondJobsViaApi(cluster, groupId, rate);
    firstFireMs = Math.max(...jobs.map(job => job.firstFireMs));
  } else {
    firstFireMs = ceilSecond(Date.now() + 3_000);
    progress(label, `inserting ${rate} cron jobs with SQL`);
    jobs = await insertJobsSql(
      cluster,
      groupId,
      Array.from({ length: rate }, () => ({ scheduleType: 'CRON', scheduleConf: EVERY_SECOND, firstFireMs })),
    );
  }
  const fromMs = ceilSecond(firstFireMs + options.warmupMs);
  const toMs = fromMs + options.windowMs;
  const metricsBefore = parseAdminMetrics(await cluster.scrapeMetrics(admin));
  const ticker = startTicker(label, executors, () =>
    Date.now() < fromMs ? 'warming up' : Date.now() < toMs ? 'measuring' : 'settling',
  );
  let before, after, hostBefore, hostAfter;
  try {
    await sleepUntil(fromMs, context.signal);
    [before, hostBefore] = await Promise.all([cluster.sampleProcesses(), sampleHostCpu()]);
    await sleepUntil(toMs, context.signal);
    [after, hostAfter] = await Promise.all([cluster.sampleProcesses(), sampleHostCpu()]);
    await sleepUntil(toMs + options.settleMs, context.signal);
  } finally {
    ticker.stop();
  }
  throwIfAborted(context);
  cluster.assertHealthy();

  const ids = new Set(jobs.map(job => job.id));
  const collected = await collectRuns(executors, fromMs, toMs);
  const runs = collected.runs.filter(run => ids.has(run.jobId));
  const [logs, skipped, metricsAfter, crossCheck] = await Promise.all([
    countLogs(cluster, fromMs, toMs),
    skippedKeys(cluster, fromMs, toMs),
    cluster.scrapeMetrics(admin),
    crossCheckLogs(cluster, runs),
  ]);
  const analysis = analyzeRuns(jobs, runs, fromMs, toMs, skipped);
  progress(label, 'measured', {
    expected: analysis.expected,
    received: analysis.received,
    missed: analysis.missed,
    p50: analysis.lateness?.p50 ?? NaN,
    p99: analysis.lateness?.p99 ?? NaN,
  });
  return {
    shape,
    jobs: jobs.length,
    jobIds: [...ids],
    jobsCreatedWith: createdWith,
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    latenessMs: analysis.lateness,
    expected: analysis.expected,
    received: analysis.received,
    receivedExpected: analysis.receivedExpected,
    duplicates: analysis.duplicates,
    unexpected: analysis.unexpected,
    missed: analysis.missed,
    skipped: analysis.skipped,
    missedSample: analysis.missedSample,
    earlyRuns: analysis.early,
    runsWithoutScheduledAt: collected.withoutScheduledAt,
    perExecutor: analysis.perExecutor,
    triggerLog: logs,
    crossCheck,
    cpuPercent: before && after ? cpuPercents(before, after) : undefined,
    executorLagMaxMs: executorLag(executors, fromMs, toMs),
    adminRssMiB: mibOf(after?.get(admin.child.name)),
    hostCpuBusyPercent: hostBusyPercent(hostBefore, hostAfter),
    adminMetrics: metricsBetween(metricsBefore, parseAdminMetrics(metricsAfter)),
  };
}

/** Stops jobs behind the API's back (fast for thousands): they are no longer claimed. */
async function stopJobs(cluster: Cluster, ids: readonly number[]): Promise<void> {
  await cluster.db.pool.query(
    `update job set trigger_status = 'STOPPED', next_trigger_at = null where id = any($1::bigint[])`,
    [ids],
  );
}

export function pick<T extends object, K extends keyof T>(object: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.map(key => [key, object[key]])) as Pick<T, K>;
}

export function mibOf(sample: ProcSample | undefined): number | undefined {
  return sample ? mib(sample.rssBytes) : undefined;
}
