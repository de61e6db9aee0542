import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, LogStatus, type Log } from '@jobstream/proto/admin';
import { ScheduleType } from '@jobstream/proto/types';
import { Executor, silentLogger } from '../executor-sdk/src/index.js';
import { startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import { startExecutorProcess, type ChildTs } from './support/processes.js';

/** What a saturated executor saw: the order runs started in, and how many ran at once. */
interface Observed {
  started: string[];
  running: number;
  mostAtOnce: number;
}

/** An executor of capacity 1 whose one handler takes `workMs` and records what it saw. */
async function startNarrowExecutor(
  admin: TestAdmin,
  appName: string,
  token: string,
  workMs: number,
  pipelineWindow?: number,
): Promise<{ executor: Executor; observed: Observed }> {
  const observed: Observed = { started: [], running: 0, mostAtOnce: 0 };
  const executor = new Executor({
    adminAddresses: [admin.address],
    appName,
    accessToken: token,
    instanceName: `${appName}-1`,
    dataDir: await tempDir(appName),
    capacity: 1,
    pipelineWindow,
    logger: silentLogger,
  });
  executor.register('slow', async ctx => {
    observed.started.push(ctx.param);
    observed.running += 1;
    observed.mostAtOnce = Math.max(observed.mostAtOnce, observed.running);
    try {
      await delay(workMs, undefined, { signal: ctx.signal });
      return `done ${ctx.param}`;
    } finally {
      observed.running -= 1;
    }
  });
  await executor.start();
  return { executor, observed };
}

async function logsOfGroup(client: AdminClient, groupId: string): Promise<Log[]> {
  const logs: Log[] = [];
  let pageToken = '';
  do {
    const page = await client.listLogs({ groupId, pageSize: 500, pageToken });
    logs.push(...page.logs);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return logs;
}

/**
 * An executor at capacity is not a failure: runs it cannot take yet wait at the admin, in
 * order, and go out as its runs finish. Before, they waited for a run slot only as long as
 * the answer deadline and then failed ("did not answer"), or reached the executor and were
 * refused as busy.
 */
describe('a saturated executor', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  const executors: Executor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    // A short answer deadline: every run waits far longer than it for its turn.
    admin = await startTestAdmin(database.url, { requestDeadlineMs: 500 });
  });

  afterAll(async () => {
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await database?.drop();
  });

  it('runs 100 runs of one batch trigger one at a time, in order, none failed', async () => {
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'narrow-api');
    const { executor, observed } = await startNarrowExecutor(admin, 'narrow-api', token, 10);
    executors.push(executor);
    const jobId = await createJob(client, groupId, 'slow');
    const params = Array.from({ length: 100 }, (_, index) => String(index));

    const { runs } = await client.triggerJobRuns({ jobId, runs: params.map(param => ({ param })) });
    expect(runs.flatMap(run => run.logIds)).toHaveLength(100);
    const logs = await waitFor(
      async () => {
        const all = await logsOfGroup(client, groupId);
        return all.length === 100 && all.every(log => log.status !== LogStatus.LOG_STATUS_RUNNING)
          ? all
          : undefined;
      },
      { what: 'the 100 runs to finish' },
    );

    expect(
      logs
        .filter(log => log.status !== LogStatus.LOG_STATUS_SUCCEEDED)
        .map(log => `${log.status}: ${log.triggerMessage} ${log.handleMessage}`),
    ).toEqual([]);
    expect(logs.every(log => log.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED)).toBe(true);
    expect(observed.started).toEqual(params);
    expect(observed.mostAtOnce).toBe(1);
  });

  it('runs 100 fires due at the same instant one at a time, each once, none failed', async () => {
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'narrow-cron');
    const { executor, observed } = await startNarrowExecutor(admin, 'narrow-cron', token, 20);
    executors.push(executor);
    // Every job fires at the same second of the minute, far enough ahead to create them all.
    const second = new Date(Date.now() + 6_000).getUTCSeconds();
    const jobIds: string[] = [];
    for (let index = 0; index < 100; index += 1) {
      jobIds.push(
        await createJob(client, groupId, 'slow', {
          param: `job ${index}`,
          scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
          scheduleConf: `${second} * * * * ?`,
          timeZone: 'UTC',
        }),
      );
    }
    for (const id of jobIds) await client.startJob({ id });

    const logs = await waitFor(
      async () => {
        const all = await logsOfGroup(client, groupId);
        return all.length >= 100 && all.every(log => log.status !== LogStatus.LOG_STATUS_RUNNING)
          ? all
          : undefined;
      },
      { what: 'the 100 fires to finish' },
    );
    for (const id of jobIds) await client.stopJob({ id });

    expect(logs).toHaveLength(100);
    expect(
      logs
        .filter(log => log.status !== LogStatus.LOG_STATUS_SUCCEEDED)
        .map(log => `${log.status}: ${log.triggerMessage} ${log.handleMessage}`),
    ).toEqual([]);
    // Each job's fire ran once, and the executor never held more than its one slot.
    expect([...observed.started].sort()).toEqual(jobIds.map((_, index) => `job ${index}`).sort());
    expect(observed.mostAtOnce).toBe(1);
    // They ran in the order the admin sent them.
    const sentOrder = [...logs]
      .sort((a, b) => a.triggeredAt!.getTime() - b.triggeredAt!.getTime() || Number(a.id) - Number(b.id))
      .map(log => log.param);
    expect(observed.started).toEqual(sentOrder);
  });

  it('sends the runs waiting for a replaced executor process to its successor, none failed', async () => {
    // A deadline shorter than the runs wait: before, a run that waited for a slot past its
    // deadline and then saw its stream end failed as "disconnected" instead of going to
    // the executor's new stream.
    const quick = await startTestAdmin(database.url, { requestDeadlineMs: 1_000 });
    const children: ChildTs[] = [];
    try {
      const { client } = quick;
      const { groupId, token } = await createGroup(client, 'narrow-restart');
      const processOptions = {
        adminAddresses: [quick.address],
        appName: 'narrow-restart',
        accessToken: token,
        instanceName: 'narrow-restart-1',
        // One run held at a time: the others wait at the admin, not in the executor's queue.
        capacity: 1,
        pipelineWindow: 0,
      };
      const first = await startExecutorProcess({ ...processOptions, dataDir: await tempDir('restart-a') });
      children.push(first);
      const jobId = await createJob(client, groupId, 'work', { param: '600' });
      const triggering = client.triggerJobRuns({ jobId, runs: Array.from({ length: 10 }, () => ({})) });
      const started = (child: ChildTs) =>
        child.lines
          .filter(line => line.includes('"run-started"'))
          .map(line => (JSON.parse(line) as { logId: string }).logId);
      await waitFor(() => (started(first).length >= 3 ? true : undefined), { what: 'three runs to start' });

      // A rolling restart: the new process registers as the same instance, which replaces
      // the old one's stream; the old one is then killed.
      const second = await startExecutorProcess({ ...processOptions, dataDir: await tempDir('restart-b') });
      children.push(second);
      await first.kill('SIGKILL');
      const { runs } = await triggering;
      const logIds = runs.flatMap(run => run.logIds);

      const logs = await waitFor(
        async () => {
          const all = await Promise.all(logIds.map(async id => (await client.getLog({ id })).log!));
          return all.every(log => log.status !== LogStatus.LOG_STATUS_RUNNING) ? all : undefined;
        },
        { what: 'the 10 runs to end' },
      );
      // Only runs the old process had when it was replaced (running, or its request on the
      // way) may have failed: lost with it. Every run still waiting at the admin ran on the
      // new process.
      const ranOnFirst = new Set(started(first));
      const failed = logs.filter(log => log.status !== LogStatus.LOG_STATUS_SUCCEEDED);
      for (const log of failed) {
        expect(`${log.id}: ${log.handleMessage}`).toMatch(
          new RegExp(`^${log.id}: lost: (the run request went to )?executor narrow-restart-1 \\(process `),
        );
      }
      expect(failed.map(log => `${log.id}: ${log.handleMessage} | ${log.triggerMessage}`).slice(2)).toEqual(
        [],
      );
      for (const log of logs) {
        if (log.status === LogStatus.LOG_STATUS_SUCCEEDED && !ranOnFirst.has(log.id)) {
          expect(started(second)).toContain(log.id);
        }
      }
      expect(started(second).length).toBeGreaterThan(0);
    } finally {
      await Promise.all(children.map(child => child.kill('SIGKILL')));
      await quick.stop();
    }
  });

  it('pauses claiming while its executors have not answered the fires it holds', async () => {
    // Ten jobs firing every second for an executor that runs one 500 ms run at a time: a
    // fifth of what is due. Claiming stops at the bound instead of queueing every fire.
    // A database of its own: the other admin of this file would claim these jobs too.
    const ownDatabase = await createTestDatabase();
    const bounded = await startTestAdmin(ownDatabase.url, { maxFiresInFlight: 5 });
    let executor: Executor | undefined;
    try {
      const { client } = bounded;
      const { groupId, token } = await createGroup(client, 'narrow-claims');
      // No pipelining window: what the executor cannot run waits at the admin.
      executor = (await startNarrowExecutor(bounded, 'narrow-claims', token, 500, 0)).executor;
      const jobIds: string[] = [];
      for (let index = 0; index < 10; index += 1) {
        jobIds.push(
          await createJob(client, groupId, 'slow', {
            param: `job ${index}`,
            scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
            scheduleConf: '* * * * * ?',
            timeZone: 'UTC',
          }),
        );
      }
      for (const id of jobIds) await client.startJob({ id });
      let mostWaiting = 0;
      const gauges = { firesInFlight: 0, runsWaitingForSlot: 0 };
      const gauge = async (name: string): Promise<number> => {
        const metric = await bounded.app.metrics.registry.getSingleMetric(name)?.get();
        return metric?.values[0]?.value ?? 0;
      };
      const until = Date.now() + 8_000;
      while (Date.now() < until) {
        const page = await client.listLogs({ groupId, status: LogStatus.LOG_STATUS_RUNNING, pageSize: 500 });
        mostWaiting = Math.max(mostWaiting, page.logs.length);
        gauges.firesInFlight = Math.max(
          gauges.firesInFlight,
          await gauge('jobstream_scheduler_fires_in_flight'),
        );
        gauges.runsWaitingForSlot = Math.max(
          gauges.runsWaitingForSlot,
          await gauge('jobstream_runs_waiting_for_executor_slot'),
        );
        await delay(200);
      }
      // What an operator sees on /metrics: the admin at its bound, runs waiting for the slot.
      expect(gauges.firesInFlight).toBeGreaterThanOrEqual(5);
      expect(gauges.runsWaitingForSlot).toBeGreaterThan(0);
      for (const id of jobIds) await client.stopJob({ id });
      // The bound (5), plus what one claim of the jobs with room may record ahead (a job's
      // fires within the 2 s lookahead); without the pause this grows by ~18 a second.
      expect(mostWaiting).toBeLessThanOrEqual(20);
      const logs = await logsOfGroup(client, groupId);
      expect(logs.filter(log => log.status === LogStatus.LOG_STATUS_FAILED)).toEqual([]);
    } finally {
      await executor?.stop();
      await bounded.stop();
      await ownDatabase.drop();
    }
  });
});
