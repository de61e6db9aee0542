import type { Cluster } from './cluster.js';
import { BlockStrategy, MisfireStrategy, RouteStrategy, ScheduleType } from '@jobstream/proto/types';
import { mapLimit, progress, withTimeout } from './util.js';

/** The handler every bench job runs (registered by bench/executor-process.ts). */
export const BENCH_HANDLER = 'bench';

/** A bench job and enough of its schedule to list the fires it should have had. */
export interface BenchJob {
  id: number;
  scheduleType: 'CRON' | 'FIX_RATE';
  scheduleConf: string;
  /** The first fire time (ms), as the job was started. */
  firstFireMs: number;
}

export const EVERY_SECOND = '* * * * * ?';

/**
 * The fire times of a job in [fromMs, toMs). Only the schedule shapes the harness
 * creates are understood: `* * * * * ?`, `S M/K * * * ?` (UTC) and FIX_RATE N.
 */
export function firesIn(job: BenchJob, fromMs: number, toMs: number): number[] {
  const start = Math.max(fromMs, job.firstFireMs);
  const out: number[] = [];
  if (job.scheduleType === 'FIX_RATE') {
    const period = Number(job.scheduleConf) * 1000;
    const k = Math.max(0, Math.ceil((start - job.firstFireMs) / period));
    for (let t = job.firstFireMs + k * period; t < toMs; t += period) out.push(t);
    return out;
  }
  if (job.scheduleConf === EVERY_SECOND) {
    for (let t = Math.ceil(start / 1000) * 1000; t < toMs; t += 1000) out.push(t);
    return out;
  }
  const match = /^(\d+) (\d+)\/(\d+) \* \* \* \?$/.exec(job.scheduleConf);
  if (!match) throw new Error(`bench cannot expand the schedule "${job.scheduleConf}"`);
  const [second, minuteOffset, minuteStep] = [Number(match[1]), Number(match[2]), Number(match[3])];
  for (let minute = Math.floor(start / 60_000); minute * 60_000 < toMs; minute++) {
    if (minute % 60 < minuteOffset || (minute % 60) % minuteStep !== minuteOffset % minuteStep) continue;
    const t = minute * 60_000 + second * 1000;
    if (t >= start && t < toMs) out.push(t);
  }
  return out;
}

/**
 * Creates `count` jobs firing every second through the API (CreateJob, then StartJob),
 * `concurrency` calls at a time. Returns the jobs with the first fire time the admin
 * reported (or the StartJob time when it reported none).
 */
export async function createEverySecondJobsViaApi(
  cluster: Cluster,
  groupId: string,
  count: number,
  { concurrency = 16, routeStrategy = RouteStrategy.ROUTE_STRATEGY_ROUND } = {},
): Promise<BenchJob[]> {
  const client = cluster.admins[0]!.client;
  let done = 0;
  const jobs = await mapLimit(
    Array.from({ length: count }, (_, i) => i),
    concurrency,
    async i => {
      const created = await withTimeout(
        client.createJob({
          spec: {
            groupId,
            description: `bench job ${i + 1}`,
            author: 'bench',
            scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
            scheduleConf: EVERY_SECOND,
            misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_DO_NOTHING,
            routeStrategy,
            handler: BENCH_HANDLER,
            blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
          },
        }),
        15_000,
        'CreateJob',
      );
      const startedAt = Date.now();
      const started = await withTimeout(client.startJob({ id: created.job!.id }), 15_000, 'StartJob');
      done += 1;
      if (done % 500 === 0)
        progress(cluster.label, `jobs created and started through the API`, { done, of: count });
      const next = started.job?.nextTriggerAt;
      return {
        id: Number(created.job!.id),
        scheduleType: 'CRON' as const,
        scheduleConf: EVERY_SECOND,
        firstFireMs: next ? next.getTime() : Math.ceil(startedAt / 1000) * 1000,
      };
    },
  );
  return jobs;
}

export interface SqlJob {
  scheduleType: 'CRON' | 'FIX_RATE';
  scheduleConf: string;
  firstFireMs: number;
}

/**
 * Inserts running jobs straight into the `job` table (the API is far too slow for
 * 100,000), with next_trigger_at set to each job's first fire time. Cron expressions
 * are read in UTC.
 */
export async function insertJobsSql(
  cluster: Cluster,
  groupId: string,
  specs: readonly SqlJob[],
  { batchSize = 5_000, routeStrategy = 'ROUND' } = {},
): Promise<BenchJob[]> {
  const jobs: BenchJob[] = [];
  for (let offset = 0; offset < specs.length; offset += batchSize) {
    const batch = specs.slice(offset, offset + batchSize);
    const { rows } = await cluster.db.pool.query<{
      id: string;
      schedule_type: 'CRON' | 'FIX_RATE';
      schedule_conf: string;
      next_trigger_at: Date;
    }>(
      `insert into job (group_id, description, author, schedule_type, schedule_conf, time_zone,
                        misfire_strategy, route_strategy, handler, block_strategy, glue_type,
                        trigger_status, next_trigger_at)
       select $1::bigint, 'bench job', 'bench', s.type, s.conf, 'UTC',
              'DO_NOTHING', $2, $3, 'SERIAL_EXECUTION', 'BEAN', 'RUNNING', s.next
         from unnest($4::text[], $5::text[], $6::timestamptz[]) as s(type, conf, next)
       returning id, schedule_type, schedule_conf, next_trigger_at`,
      [
        groupId,
        routeStrategy,
        BENCH_HANDLER,
        batch.map(spec => spec.scheduleType),
        batch.map(spec => spec.scheduleConf),
        batch.map(spec => new Date(spec.firstFireMs).toISOString()),
      ],
    );
    for (const row of rows) {
      jobs.push({
        id: Number(row.id),
        scheduleType: row.schedule_type,
        scheduleConf: row.schedule_conf,
        firstFireMs: row.next_trigger_at.getTime(),
      });
    }
    if (specs.length > batchSize) {
      progress(cluster.label, 'jobs inserted with SQL', { done: jobs.length, of: specs.length });
    }
  }
  return jobs;
}
