import {
  analyzeRuns,
  crossCheckLogs,
  crossCheckRows,
  collectRuns,
  countLogs,
  skippedKeys,
  startTicker,
} from '../lib/analysis.js';
import { Cluster, type ReceivedRun } from '../lib/cluster.js';
import { throwIfAborted, type BenchContext } from '../lib/context.js';
import { createEverySecondJobsViaApi } from '../lib/jobs.js';
import type { ScenarioResult } from '../lib/report.js';
import { p50p99max, round } from '../lib/stats.js';
import { ceilSecond, progress, sleep, sleepUntil } from '../lib/util.js';
import { pick } from './lateness.js';

/** A run later than this counts as delayed by the failover. */
const LATE_MS = 250;
const GOAL_COVER_MS = 2_000;

/**
 * Two admins, jobs firing every second, executors connected to either; one admin is
 * SIGKILLed mid-second. Every fire scheduled in the window around the kill must reach an
 * executor exactly once (or be recorded SKIPPED by the misfire policy).
 *
 * Time to cover: from the kill until the last run delayed by it arrived (a run arriving
 * after the kill, later than LATE_MS and than any run before the kill); 0 when no run was
 * delayed. Fires due after the kill that never arrived make it "not covered".
 */
export async function runFailover(context: BenchContext): Promise<ScenarioResult> {
  const { options } = context;
  const name = 'failover';
  const cluster = await Cluster.create({
    server: context.server,
    label: name,
    logDir: context.logDir,
    executorCapacity: context.options.executorCapacity,
  });
  try {
    const survivor = await cluster.startAdmin();
    const victim = await cluster.startAdmin();
    const appName = 'bench-failover';
    const group = await cluster.createGroup(appName);
    // Each executor knows both admins (the SDK starts at a random one and moves on when it dies).
    const executors = await cluster.startExecutors(2, { appName, token: group.token }, index =>
      index % 2 === 0 ? [survivor.address, victim.address] : [victim.address, survivor.address],
    );
    throwIfAborted(context);

    progress(name, `creating ${options.failoverJobs} jobs firing every second through the API`);
    const jobs = await createEverySecondJobsViaApi(cluster, group.groupId, options.failoverJobs);
    const firstFireMs = Math.max(...jobs.map(job => job.firstFireMs));
    const fromMs = ceilSecond(firstFireMs + options.warmupMs);
    const plannedKillMs = fromMs + options.failoverBeforeMs;
    const toMs = ceilSecond(plannedKillMs) + 4_000 + options.failoverAfterMs;
    let killedMs = 0;
    const ticker = startTicker(name, executors, () =>
      killedMs === 0
        ? 'before the kill'
        : `after the kill (+${((Date.now() - killedMs) / 1000).toFixed(0)} s)`,
    );
    let atKill: Record<string, unknown> | undefined;
    let killMoment = 'the victim held no claimed fires';
    try {
      await sleepUntil(plannedKillMs - 1_000, context.signal);
      // The worst moment: just before fires the victim claimed are due, so they are
      // orphaned and must be taken over. Admins claim whole batches, so at a given moment
      // the victim may hold none: look for up to 4 s.
      let killAtMs = plannedKillMs + 3_000;
      while (Date.now() < plannedKillMs + 3_000) {
        throwIfAborted(context);
        const { rows: due } = await cluster.db.pool.query<{ next: Date | null }>(
          `select min(scheduled_at) as next from trigger_log
            where claimed_by = $1 and dispatch_outcome = 'PENDING' and scheduled_at > now() + interval '200 ms'`,
          [victim.instanceId],
        );
        const next = due[0]?.next?.getTime();
        if (next !== undefined) {
          killAtMs = next - 100;
          killMoment = '100 ms before fires it had claimed were due';
          break;
        }
        await sleep(50, context.signal);
      }
      await sleepUntil(killAtMs, context.signal);
      throwIfAborted(context);
      victim.child.killNow();
      // The wall clock, as the executors measure arrivals (see bench/executor-process.ts).
      killedMs = Date.now();
      progress(name, `SIGKILLed admin-${victim.index}`, { pid: victim.child.pid });
      // Fires the victim had claimed but not yet sent (peers must take them over), and
      // fires it had taken to send at the moment it died (they may be lost in flight).
      const { rows } = await cluster.db.pool.query<{
        orphaned: number;
        taken: number;
        orphanedFrom: Date | null;
        orphanedTo: Date | null;
      }>(
        `select count(*) filter (where claimed_by = $1)::int as orphaned,
                count(*) filter (where claimed_by is null and scheduled_at <= now())::int as taken,
                min(scheduled_at) filter (where claimed_by = $1) as "orphanedFrom",
                max(scheduled_at) filter (where claimed_by = $1) as "orphanedTo"
           from trigger_log where dispatch_outcome = 'PENDING'`,
        [victim.instanceId],
      );
      atKill = rows[0];
      await sleepUntil(toMs + options.settleMs, context.signal);
    } finally {
      ticker.stop();
    }
    throwIfAborted(context);
    cluster.assertHealthy();

    const [{ runs }, skipped, logs] = await Promise.all([
      collectRuns(executors, fromMs, toMs),
      skippedKeys(cluster, fromMs, toMs),
      countLogs(cluster, fromMs, toMs),
    ]);
    const analysis = analyzeRuns(jobs, runs, fromMs, toMs, skipped);
    const crossCheck = await crossCheckLogs(cluster, runs);
    // Runs the kill delayed: arrived after it, later than anything seen before it (and LATE_MS).
    const before = runs.filter(run => run.scheduledMs + run.latenessMs < killedMs);
    const baselineMaxMs = Math.max(0, ...before.map(run => run.latenessMs));
    const lateMs = Math.max(LATE_MS, baselineMaxMs + 100);
    const delayed = runs.filter(
      run => run.scheduledMs + run.latenessMs > killedMs && run.latenessMs > lateMs,
    );
    const lastDelayedArrival = Math.max(killedMs, ...delayed.map(run => run.scheduledMs + run.latenessMs));
    const coverMs = round(lastDelayedArrival - killedMs, 0);
    // A fire due after the kill that never arrived means the dead admin's work was not covered.
    const missedAfterKill = analysis.missedScheduledMs.filter(t => t >= killedMs - 2_000).length;
    const covered = missedAfterKill === 0;
    const afterKill = runs.filter(run => run.scheduledMs >= killedMs);
    progress(name, 'measured', {
      expected: analysis.expected,
      duplicates: analysis.duplicates + logs.duplicatePairs,
      missed: analysis.missed,
      coverMs,
    });
    return {
      scenario: 'failover',
      name,
      rows: [
        {
          scenario: name,
          metric: 'duplicates (db/executor)',
          value: `${logs.duplicatePairs}/${analysis.duplicates}`,
          goal: '0',
          ok: logs.duplicatePairs === 0 && analysis.duplicates === 0,
          correctness: true,
        },
        {
          scenario: name,
          metric: 'missed (skipped)',
          value: `${analysis.missed} (${analysis.skipped}) of ${analysis.expected}`,
          goal: '0',
          ok: analysis.missed === 0,
          correctness: true,
        },
        {
          scenario: name,
          metric: 'time to cover (ms)',
          value: covered ? String(coverMs) : `not covered (${missedAfterKill} fires never arrived)`,
          goal: `≤ ${GOAL_COVER_MS}`,
          ok: covered && coverMs <= GOAL_COVER_MS,
        },
        {
          scenario: name,
          metric: 'delayed runs / lateness',
          value: `${delayed.length} > ${round(lateMs, 0)} ms; after: ${p50p99max(analyzeRuns(jobs, afterKill, killedMs, toMs).lateness)}`,
          goal: '',
        },
        ...crossCheckRows(name, crossCheck),
      ],
      details: {
        logWarnings: cluster.logWarnings(),
        jobs: jobs.length,
        executors: executors.length,
        killedAdmin: victim.instanceId,
        killedAt: new Date(killedMs).toISOString(),
        killMoment,
        window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
        pendingAtKill: atKill,
        timeToCoverMs: covered ? coverMs : null,
        delayedRuns: delayed.length,
        delayedThresholdMs: round(lateMs, 0),
        baselineMaxLatenessMs: round(baselineMaxMs, 1),
        timeline: timeline(runs, fromMs, toMs),
        delayedRunsByExecutor: countBy(delayed.map(run => run.executor)),
        latenessMs: analysis.lateness,
        ...pick(analysis, [
          'expected',
          'received',
          'receivedExpected',
          'duplicates',
          'unexpected',
          'missed',
          'skipped',
          'missedSample',
          'perExecutor',
        ]),
        triggerLog: logs,
        crossCheck,
      },
    };
  } catch (error) {
    throw cluster.explain(error);
  } finally {
    await cluster.close();
  }
}

/** Per scheduled second: runs received and their worst lateness. */
function timeline(runs: readonly ReceivedRun[], fromMs: number, toMs: number) {
  const out: { second: string; received: number; maxLatenessMs: number }[] = [];
  for (let t = fromMs; t < toMs; t += 1000) {
    const inSecond = runs.filter(run => run.scheduledMs >= t && run.scheduledMs < t + 1000);
    out.push({
      second: new Date(t).toISOString().slice(11, 19),
      received: inSecond.length,
      maxLatenessMs: round(Math.max(0, ...inSecond.map(run => run.latenessMs)), 0),
    });
  }
  return out;
}

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const value of values) out[value] = (out[value] ?? 0) + 1;
  return out;
}
