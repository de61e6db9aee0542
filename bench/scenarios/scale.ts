import {
  analyzeRuns,
  crossCheckLogs,
  crossCheckRows,
  collectRuns,
  countLogs,
  metricsBetween,
  parseAdminMetrics,
  startTicker,
} from '../lib/analysis.js';
import { Cluster } from '../lib/cluster.js';
import { throwIfAborted, type BenchContext } from '../lib/context.js';
import { insertJobsSql, type BenchJob, type SqlJob } from '../lib/jobs.js';
import type { ScenarioResult } from '../lib/report.js';
import { hostBusyPercent, mib, p50p99max, round, sampleHostCpu, sampleProcess } from '../lib/stats.js';
import { ceilSecond, progress, sleep, sleepUntil } from '../lib/util.js';
import { pick } from './lateness.js';

const BATCH = 5_000;

/**
 * A job of the scale scenario, first firing after `nowMs` + 2 s: half fire on cron at a
 * random second of every fifth minute (from a random minute offset), half at a fixed rate
 * of 60 to 600 s starting at a random point of their period. 100,000 such jobs make
 * about 380 fires per second, spread evenly.
 */
function scaleJob(index: number, nowMs: number): SqlJob {
  const earliest = nowMs + 2_000;
  if (index % 2 === 0) {
    const second = randomInt(60);
    const minuteOffset = randomInt(5);
    // The first fire: the first matching second after `earliest` (UTC).
    let minute = Math.floor(earliest / 60_000);
    for (;;) {
      const t = minute * 60_000 + second * 1000;
      if ((minute % 60) % 5 === minuteOffset && t >= earliest) {
        return { scheduleType: 'CRON', scheduleConf: `${second} ${minuteOffset}/5 * * * ?`, firstFireMs: t };
      }
      minute += 1;
    }
  }
  const period = 60 + randomInt(541);
  return {
    scheduleType: 'FIX_RATE',
    scheduleConf: String(period),
    firstFireMs: ceilSecond(earliest) + randomInt(period) * 1000,
  };
}

function randomInt(below: number): number {
  return Math.floor(Math.random() * below);
}

/**
 * 100,000 enabled jobs (inserted with SQL) on one admin and two executors: the admin's
 * memory, and its CPU time per fire over a measured window.
 */
export async function runScale(context: BenchContext): Promise<ScenarioResult> {
  const { options } = context;
  const name = `scale ${Math.round(options.scaleJobs / 1000)}k jobs`;
  const cluster = await Cluster.create({
    server: context.server,
    label: name,
    logDir: context.logDir,
    executorCapacity: context.options.executorCapacity,
  });
  try {
    const admin = await cluster.startAdmin();
    const appName = 'bench-scale';
    const group = await cluster.createGroup(appName);
    const executors = await cluster.startExecutors(2, { appName, token: group.token }, () => [admin.address]);
    await sleep(2_000, context.signal);
    const idle = await sampleProcess(admin.child.pid);
    throwIfAborted(context);

    progress(name, `inserting ${options.scaleJobs} jobs with SQL`);
    const jobs: BenchJob[] = [];
    const insertStarted = Date.now();
    for (let offset = 0; offset < options.scaleJobs; offset += BATCH) {
      throwIfAborted(context);
      const now = Date.now();
      const specs = Array.from({ length: Math.min(BATCH, options.scaleJobs - offset) }, (_, i) =>
        scaleJob(offset + i, now),
      );
      jobs.push(...(await insertJobsSql(cluster, group.groupId, specs, { batchSize: BATCH })));
      if ((offset / BATCH) % 4 === 3) progress(name, 'inserted', { jobs: jobs.length });
    }
    const insertSeconds = (Date.now() - insertStarted) / 1000;
    const expectedRate = jobs.reduce(
      (sum, job) => sum + (job.scheduleType === 'FIX_RATE' ? 1 / Number(job.scheduleConf) : 1 / 300),
      0,
    );
    progress(name, 'jobs inserted', { seconds: insertSeconds, 'expected fires/s': round(expectedRate, 0) });

    const fromMs = ceilSecond(Date.now() + options.scaleWarmupMs);
    const toMs = fromMs + options.scaleWindowMs;
    const ticker = startTicker(
      name,
      executors,
      () => (Date.now() < fromMs ? 'warming up' : Date.now() < toMs ? 'measuring' : 'settling'),
      5_000,
    );
    let before, after, hostBefore, hostAfter;
    try {
      await sleepUntil(fromMs, context.signal);
      [before, hostBefore] = await Promise.all([sampleProcess(admin.child.pid), sampleHostCpu()]);
      await sleepUntil(toMs, context.signal);
      [after, hostAfter] = await Promise.all([sampleProcess(admin.child.pid), sampleHostCpu()]);
      await sleepUntil(toMs + options.settleMs, context.signal);
    } finally {
      ticker.stop();
    }
    throwIfAborted(context);
    cluster.assertHealthy();

    const [{ runs }, logs, metrics] = await Promise.all([
      collectRuns(executors, fromMs, toMs),
      countLogs(cluster, fromMs, toMs),
      cluster.scrapeMetrics(admin),
    ]);
    const analysis = analyzeRuns(jobs, runs, fromMs, toMs);
    const crossCheck = await crossCheckLogs(cluster, runs);
    const cpuMs = before && after ? after.cpuMs - before.cpuMs : undefined;
    // The admin's work in the window: the fires it sent (claims, sends, dispatch and
    // result records) — counted as the runs that reached the executors.
    const fires = analysis.received;
    const cpuPerFireMs = cpuMs !== undefined && fires > 0 ? round(cpuMs / fires, 3) : undefined;
    progress(name, 'measured', {
      fires,
      expected: analysis.expected,
      'cpu ms/fire': cpuPerFireMs ?? NaN,
      'rss MiB': after ? mib(after.rssBytes) : NaN,
    });
    const complete = analysis.missed === 0 && analysis.duplicates === 0 && analysis.unexpected === 0;
    return {
      scenario: 'scale',
      name,
      rows: [
        {
          scenario: name,
          metric: 'admin RSS (MiB)',
          value: after
            ? `${mib(after.rssBytes)} (idle ${idle ? mib(idle.rssBytes) : '?'}, peak ${mib(after.hwmBytes)})`
            : 'n/a',
          goal: '',
        },
        {
          scenario: name,
          metric: 'admin CPU per fire (ms)',
          value:
            cpuPerFireMs === undefined
              ? 'n/a'
              : `${cpuPerFireMs} (${round(fires / (options.scaleWindowMs / 1000), 0)} fires/s)`,
          goal: '',
        },
        {
          scenario: name,
          metric: 'fires received/expected',
          value: `${analysis.receivedExpected}/${analysis.expected}`,
          goal: 'all',
          ok: complete,
          correctness: true,
        },
        {
          scenario: name,
          metric: 'lateness p50/p99/max',
          value: p50p99max(analysis.lateness),
          goal: '',
        },
        ...crossCheckRows(name, crossCheck),
      ],
      details: {
        logWarnings: cluster.logWarnings(),
        jobs: jobs.length,
        cronJobs: jobs.filter(job => job.scheduleType === 'CRON').length,
        fixRateJobs: jobs.filter(job => job.scheduleType === 'FIX_RATE').length,
        insertSeconds,
        expectedFiresPerSecond: round(expectedRate, 1),
        window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
        admin: {
          idleRssMiB: idle ? mib(idle.rssBytes) : undefined,
          rssMiB: after ? mib(after.rssBytes) : undefined,
          peakRssMiB: after ? mib(after.hwmBytes) : undefined,
          cpuMsInWindow: cpuMs,
          cpuPercent: cpuMs === undefined ? undefined : round((100 * cpuMs) / options.scaleWindowMs, 1),
          cpuMsPerFire: cpuPerFireMs,
        },
        hostCpuBusyPercent: hostBusyPercent(hostBefore, hostAfter),
        latenessMs: analysis.lateness,
        ...pick(analysis, [
          'expected',
          'received',
          'receivedExpected',
          'duplicates',
          'unexpected',
          'missed',
          'missedSample',
          'perExecutor',
        ]),
        triggerLog: logs,
        crossCheck,
        adminMetrics: metricsBetween(undefined, parseAdminMetrics(metrics)),
      },
    };
  } catch (error) {
    throw cluster.explain(error);
  } finally {
    await cluster.close();
  }
}
