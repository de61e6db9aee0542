import { BlockStrategy, RouteStrategy, ScheduleType } from '@jobstream/proto/types';
import { metricsBetween, parseAdminMetrics } from '../lib/analysis.js';
import { Cluster } from '../lib/cluster.js';
import { throwIfAborted, type BenchContext } from '../lib/context.js';
import { BENCH_HANDLER } from '../lib/jobs.js';
import type { ScenarioResult } from '../lib/report.js';
import { cpuPercents, round } from '../lib/stats.js';
import { mapLimit, progress, sleep, withTimeout } from '../lib/util.js';

/** Jobs the runs are spread over: runs of one job are serial on an executor (XXL-JOB's rule). */
const JOBS = 64;
/** TriggerJob calls in flight, as in issue 12's comparison. */
const SINGLE_IN_FLIGHT = 64;
/** TriggerJobRuns: runs per call and calls in flight. */
const BATCH_SIZE = 100;
const BATCH_IN_FLIGHT = 8;
const GOALS = { single: 3_000, batch: 10_000 } as const;

export type ApiMode = 'single' | 'batch';

/**
 * Runs requested through the operator API, as an application that fans work out would:
 * `single` is TriggerJob with 64 calls in flight, `batch` is TriggerJobRuns (100 runs per
 * call, 8 calls in flight). One admin, one executor of the SDK's default capacity, a
 * no-op handler. The figure is runs that ended SUCCEEDED per second, from the first call
 * to the last result stored; every run that failed or was lost is counted and fails the row.
 */
export async function runApi(
  context: BenchContext,
  mode: ApiMode,
  capacity: number | undefined = context.options.executorCapacity,
): Promise<ScenarioResult> {
  const { options } = context;
  const total = options.quick ? 2_000 : 20_000;
  const name =
    (mode === 'single' ? 'api TriggerJob' : 'api TriggerJobRuns') +
    (capacity === options.executorCapacity ? '' : ` (capacity ${capacity ?? 'default'})`);
  const cluster = await Cluster.create({
    server: context.server,
    label: name,
    logDir: context.logDir,
    executorCapacity: capacity,
  });
  try {
    const admin = await cluster.startAdmin();
    const appName = 'bench-api';
    const group = await cluster.createGroup(appName);
    await cluster.startExecutors(1, { appName, token: group.token }, () => [admin.address]);
    const jobIds = await mapLimit(
      Array.from({ length: JOBS }, (_, index) => index),
      16,
      async index =>
        (
          await withTimeout(
            admin.client.createJob({
              spec: {
                groupId: group.groupId,
                description: `bench api job ${index + 1}`,
                author: 'bench',
                scheduleType: ScheduleType.SCHEDULE_TYPE_NONE,
                routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
                handler: BENCH_HANDLER,
                blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
              },
            }),
            15_000,
            'CreateJob',
          )
        ).job!.id,
    );
    throwIfAborted(context);

    progress(name, `requesting ${total} runs`);
    const metricsBefore = await cluster.scrapeMetrics(admin);
    const processesBefore = await cluster.sampleProcesses();
    const startedAt = performance.now();
    let callErrors = 0;
    if (mode === 'single') {
      await mapLimit(
        Array.from({ length: total }, (_, index) => index),
        SINGLE_IN_FLIGHT,
        async index => {
          try {
            await admin.client.triggerJob({ jobId: jobIds[index % JOBS]!, param: String(index) });
          } catch {
            callErrors += 1;
          }
        },
      );
    } else {
      const calls = Math.ceil(total / BATCH_SIZE);
      await mapLimit(
        Array.from({ length: calls }, (_, index) => index),
        BATCH_IN_FLIGHT,
        async call => {
          const size = Math.min(BATCH_SIZE, total - call * BATCH_SIZE);
          try {
            await admin.client.triggerJobRuns({
              jobId: jobIds[call % JOBS]!,
              runs: Array.from({ length: size }, (_, index) => ({
                param: String(call * BATCH_SIZE + index),
              })),
            });
          } catch {
            callErrors += size;
          }
        },
      );
    }
    const requestedMs = performance.now() - startedAt;

    // Until every log has its end (a result, a failed dispatch) or nothing moves for 10 s.
    let ended = { n: 0, succeeded: 0 };
    let lastChange = performance.now();
    for (;;) {
      throwIfAborted(context);
      const { rows } = await cluster.db.pool.query<{ n: number; succeeded: number }>(
        `select count(*) filter (where outcome is not null or dispatch_outcome = 'FAILED')::int as n,
                count(*) filter (where outcome = 'SUCCEEDED')::int as succeeded
           from trigger_log`,
      );
      const now = rows[0]!;
      if (now.n !== ended.n) lastChange = performance.now();
      ended = now;
      if (ended.n >= total - callErrors || performance.now() - lastChange > 10_000) break;
      await sleep(20, context.signal);
    }
    const elapsedMs = performance.now() - startedAt;
    const processesAfter = await cluster.sampleProcesses();
    const metricsAfter = await cluster.scrapeMetrics(admin);
    cluster.assertHealthy();
    const { rows: outcomes } = await cluster.db.pool.query<{ outcome: string; n: number }>(
      `select coalesce(outcome, 'none') || '/' || dispatch_outcome as outcome, count(*)::int as n
         from trigger_log group by 1 order by 2 desc`,
    );
    const failed = total - ended.succeeded;
    const runsPerSecond = round(ended.succeeded / (elapsedMs / 1000), 0);
    const cpu = cpuPercents(processesBefore, processesAfter);
    const adminCpuMsPerRun =
      ended.succeeded > 0
        ? round((((cpu['admin-1'] ?? 0) / 100) * elapsedMs) / ended.succeeded, 3)
        : undefined;
    progress(name, 'measured', { 'runs/s': runsPerSecond, failed });
    const goal = GOALS[mode];
    return {
      scenario: 'api',
      name,
      rows: [
        {
          scenario: name,
          metric: 'runs succeeded/s',
          value: `${runsPerSecond} (${total} requested)`,
          goal: `≥ ${goal}`,
          ok: runsPerSecond >= goal,
        },
        {
          scenario: name,
          metric: 'runs failed, lost or never ended',
          value: String(failed),
          goal: '0',
          ok: failed === 0,
          correctness: true,
        },
        {
          scenario: name,
          metric: 'admin CPU ms per run',
          value: adminCpuMsPerRun === undefined ? 'n/a' : String(adminCpuMsPerRun),
          goal: '≤ 0.06',
          ok: adminCpuMsPerRun !== undefined && adminCpuMsPerRun <= 0.06,
        },
      ],
      details: {
        mode,
        requested: total,
        jobs: JOBS,
        inFlight: mode === 'single' ? SINGLE_IN_FLIGHT : BATCH_IN_FLIGHT,
        batchSize: mode === 'batch' ? BATCH_SIZE : undefined,
        executorCapacity: options.executorCapacity ?? 'SDK default',
        callErrors,
        requestedMs: round(requestedMs, 0),
        elapsedMs: round(elapsedMs, 0),
        succeeded: ended.succeeded,
        outcomes,
        cpuPercent: cpu,
        adminMetrics: metricsBetween(parseAdminMetrics(metricsBefore), parseAdminMetrics(metricsAfter)),
        logWarnings: cluster.logWarnings(),
      },
    };
  } catch (error) {
    throw cluster.explain(error);
  } finally {
    await cluster.close();
  }
}
