import pg from 'pg';
import { Status } from 'nice-grpc';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import { DispatchOutcome, LogStatus, TriggerStatus, type Log } from '@jobstream/proto/admin';
import { MisfireStrategy, RunOutcome, ScheduleType } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';
import { freePort } from './support/processes.js';
import { RawExecutor } from './support/raw-executor.js';

const FIX_RATE = ScheduleType.SCHEDULE_TYPE_FIX_RATE;
const FIX_DELAY = ScheduleType.SCHEDULE_TYPE_FIX_DELAY;
const CRON = ScheduleType.SCHEDULE_TYPE_CRON;

async function logsOf(client: AdminClient, jobId: string): Promise<Log[]> {
  const { logs } = await client.listLogs({ jobId, pageSize: 500 });
  return [...logs].sort((a, b) => a.scheduledAt!.getTime() - b.scheduledAt!.getTime());
}

async function finishedLogs(client: AdminClient, jobId: string, count: number): Promise<Log[]> {
  return waitFor(
    async () => {
      const logs = (await logsOf(client, jobId)).filter(log => log.status !== LogStatus.LOG_STATUS_RUNNING);
      return logs.length >= count ? logs : undefined;
    },
    { intervalMs: 100, what: `${count} finished fires of job ${jobId}` },
  );
}

/**
 * The request deadline of the one-admin block's admin: a fire held up behind another
 * job's unanswered request would be this late, far later than a loaded machine makes any.
 */
const SLOW_DEADLINE_MS = 20_000;

describe('scheduling on one admin', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let executor: Executor;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { requestDeadlineMs: SLOW_DEADLINE_MS });
    client = admin.client;
    const group = await createGroup(client, 'sched');
    groupId = group.groupId;
    executor = await startFixtureExecutor({
      adminAddresses: [admin.address],
      appName: 'sched',
      accessToken: group.token,
      instanceName: 'sched-1',
    });
  });

  afterAll(async () => {
    await executor?.stop();
    await admin?.stop();
    await database?.drop();
  });

  it('fires FIX_RATE jobs every N seconds anchored to the first planned time', async () => {
    const jobId = await createJob(client, groupId, 'echo', { scheduleType: FIX_RATE, scheduleConf: '1' });
    const before = Date.now();
    const { job } = await client.startJob({ id: jobId });
    const after = Date.now();
    expect(job!.triggerStatus).toBe(TriggerStatus.TRIGGER_STATUS_RUNNING);
    // One period after the start, whenever the call reached the admin.
    const first = job!.nextTriggerAt!.getTime();
    // One period after the moment StartJob ran, which lies somewhere in [before, after].
    expect(first - before).toBeGreaterThanOrEqual(900);
    expect(first - after).toBeLessThanOrEqual(1_100);

    const logs = await finishedLogs(client, jobId, 4);
    await client.stopJob({ id: jobId });
    const planned = logs.slice(0, 4).map(log => log.scheduledAt!.getTime());
    expect(planned).toEqual([first, first + 1_000, first + 2_000, first + 3_000]);
    for (const log of logs.slice(0, 4)) {
      expect(log).toMatchObject({ status: LogStatus.LOG_STATUS_SUCCEEDED, triggerType: 1 });
      expect(log.triggeredAt!.getTime()).toBeGreaterThanOrEqual(log.scheduledAt!.getTime());
    }
  });

  it('fires FIX_DELAY jobs N seconds after the previous run finished', async () => {
    const jobId = await createJob(client, groupId, 'sleep', {
      scheduleType: FIX_DELAY,
      scheduleConf: '1',
      param: '600',
    });
    await client.startJob({ id: jobId });
    const logs = await finishedLogs(client, jobId, 3);
    await client.stopJob({ id: jobId });
    for (let index = 0; index + 1 < 3; index += 1) {
      const finished = logs[index]!.finishedAt!.getTime();
      const nextPlanned = logs[index + 1]!.scheduledAt!.getTime();
      expect(nextPlanned - finished).toBe(1_000);
      expect(nextPlanned - logs[index]!.scheduledAt!.getTime()).toBeGreaterThanOrEqual(1_600);
    }
  });

  it("keeps other jobs on time while one job's executor never answers", async () => {
    const silentGroup = await createGroup(client, 'silent');
    const silent = new RawExecutor(admin.address, silentGroup.token);
    silent.register({ appName: 'silent', instanceName: 'silent-1', capacity: 100 });
    await silent.next('welcome');
    // Alive (it beats) but answering nothing: a silent stream would be closed instead.
    silent.keepBeating(100);
    try {
      const stuck = await createJob(client, silentGroup.groupId, 'echo', {
        scheduleType: FIX_RATE,
        scheduleConf: '1',
      });
      const healthy = await createJob(client, groupId, 'echo', { scheduleType: FIX_RATE, scheduleConf: '1' });
      await client.startJob({ id: stuck });
      await client.startJob({ id: healthy });
      const logs = await finishedLogs(client, healthy, 4);
      await client.stopJob({ id: stuck });
      await client.stopJob({ id: healthy });
      // Each fire of the stuck job waits SLOW_DEADLINE_MS for an answer; the healthy job's
      // fires are sent regardless. Held up behind one, a fire would be that late; half of it
      // is far more than a loaded machine delays a fire (this is about isolation, not speed).
      for (const log of logs) {
        expect(log.triggeredAt!.getTime() - log.scheduledAt!.getTime()).toBeLessThan(SLOW_DEADLINE_MS / 2);
      }
      expect(silent.count('runRequest')).toBeGreaterThanOrEqual(3);
    } finally {
      await silent.close();
    }
  });

  it('stopping a job cancels fires planned but not yet sent', async () => {
    const jobId = await createJob(client, groupId, 'echo', { scheduleType: FIX_RATE, scheduleConf: '1' });
    await client.startJob({ id: jobId });
    await finishedLogs(client, jobId, 1);
    const { job } = await client.stopJob({ id: jobId });
    expect(job).toMatchObject({
      triggerStatus: TriggerStatus.TRIGGER_STATUS_STOPPED,
      nextTriggerAt: undefined,
    });
    const atStop = (await logsOf(client, jobId)).length;
    // Two and a half periods in which a fire that was not cancelled would be sent.
    await new Promise(resolve => setTimeout(resolve, 2_500));
    // A fire already being sent at the moment of the stop may still land (and be answered
    // later on a slow machine); nothing after it, and nothing stays pending.
    const after = await waitFor(
      async () => {
        const logs = await logsOf(client, jobId);
        return logs.some(log => log.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_PENDING)
          ? undefined
          : logs;
      },
      { what: `the fires of job ${jobId} to be answered` },
    );
    expect(after.length).toBeLessThanOrEqual(atStop + 1);
  });

  it('stops a cron job by itself once its year-bounded expression has no more fires', async () => {
    // Far enough ahead that creating and starting the job (slow on a loaded machine) are
    // done before it: the only fire of the expression must still be to come.
    const at = new Date(Date.now() + 8_000);
    const cron = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} ? ${at.getUTCFullYear()}`;
    const jobId = await createJob(client, groupId, 'echo', {
      scheduleType: CRON,
      scheduleConf: cron,
      timeZone: 'UTC',
    });
    const { job } = await client.startJob({ id: jobId });
    expect(job!.nextTriggerAt!.getTime()).toBe(Math.floor(at.getTime() / 1000) * 1000);
    const [log] = await finishedLogs(client, jobId, 1);
    expect(log!.status).toBe(LogStatus.LOG_STATUS_SUCCEEDED);
    const stopped = await waitFor(async () => {
      const { job: current } = await client.getJob({ id: jobId });
      return current?.triggerStatus === TriggerStatus.TRIGGER_STATUS_STOPPED ? current : undefined;
    });
    expect(stopped.nextTriggerAt).toBeUndefined();
    await expect(client.startJob({ id: jobId })).rejects.toMatchObject({ code: Status.FAILED_PRECONDITION });
  });

  it('previews schedules with NextTriggerTimes and refuses invalid ones', async () => {
    const from = new Date('2026-03-28T12:00:00Z');
    const cron = await client.nextTriggerTimes({
      scheduleType: CRON,
      scheduleConf: '0 30 9 ? * MON-FRI',
      timeZone: 'Asia/Shanghai',
      from,
      count: 3,
    });
    expect(cron.times.map(time => time.toISOString())).toEqual([
      '2026-03-30T01:30:00.000Z',
      '2026-03-31T01:30:00.000Z',
      '2026-04-01T01:30:00.000Z',
    ]);
    const rate = await client.nextTriggerTimes({
      scheduleType: FIX_RATE,
      scheduleConf: '90',
      from,
      count: 2,
    });
    expect(rate.times.map(time => time.toISOString())).toEqual([
      '2026-03-28T12:01:30.000Z',
      '2026-03-28T12:03:00.000Z',
    ]);
    await expect(
      client.nextTriggerTimes({ scheduleType: CRON, scheduleConf: '0 0 12 * * *', count: 1 }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('schedule_conf') as unknown,
    });
    await expect(
      client.nextTriggerTimes({ scheduleType: FIX_RATE, scheduleConf: '1', count: 101 }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('count') as unknown,
    });
  });
});

describe('every admin down for longer than the misfire threshold', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const admins: TestAdmin[] = [];
  let executor: Executor | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await executor?.stop();
    await Promise.all(admins.splice(0).map(admin => admin.stop()));
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('skips the missed fires of DO_NOTHING jobs and fires FIRE_ONCE_NOW jobs once', async () => {
    const port = await freePort();
    // Above the lateness of a loaded machine's scheduler, whose ordinary fires must not
    // count as misfires; the outage below is longer than it by three periods.
    const misfireThresholdMs = 3_000;
    const overrides = { grpcPort: port, misfireThresholdMs };
    const first = await startTestAdmin(database.url, overrides);
    admins.push(first);
    const { groupId, token } = await createGroup(first.client, 'misfire');
    executor = await startFixtureExecutor({
      adminAddresses: [first.address],
      appName: 'misfire',
      accessToken: token,
      instanceName: 'misfire-1',
    });
    const schedule = { scheduleType: FIX_RATE, scheduleConf: '1' };
    const skipper = await createJob(first.client, groupId, 'echo', {
      ...schedule,
      misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_DO_NOTHING,
    });
    const catcher = await createJob(first.client, groupId, 'echo', {
      ...schedule,
      misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_FIRE_ONCE_NOW,
    });
    await first.client.startJob({ id: skipper });
    await first.client.startJob({ id: catcher });
    await finishedLogs(first.client, skipper, 2);
    await finishedLogs(first.client, catcher, 2);

    await first.stop();
    admins.length = 0;
    // Fires planned after this instant cannot have been sent by the admin that stopped.
    const downAt = Date.now();
    await new Promise(resolve => setTimeout(resolve, misfireThresholdMs + 3_000));
    // Fires planned before this instant minus the threshold are misfires for the new admin.
    const restartingAt = Date.now();
    const second = await startTestAdmin(database.url, overrides);
    admins.push(second);
    await waitFor(
      async () => {
        const resumed = async (jobId: string) =>
          (await logsOf(second.client, jobId)).some(
            log => log.scheduledAt!.getTime() > restartingAt && log.status === LogStatus.LOG_STATUS_SUCCEEDED,
          );
        return (await resumed(skipper)) && (await resumed(catcher)) ? true : undefined;
      },
      { what: 'both schedules to resume' },
    );

    const inOutage = (log: Log) => {
      const at = log.scheduledAt!.getTime();
      return at > downAt && at < restartingAt - misfireThresholdMs;
    };
    const sent = (log: Log) => log.dispatchOutcome !== DispatchOutcome.DISPATCH_OUTCOME_SKIPPED;

    const skipperOutage = (await logsOf(second.client, skipper)).filter(inOutage);
    expect(skipperOutage.filter(sent)).toEqual([]);
    expect(skipperOutage.length).toBeGreaterThanOrEqual(1);
    expect(skipperOutage.every(log => log.status === LogStatus.LOG_STATUS_SKIPPED)).toBe(true);

    const catcherLogs = await logsOf(second.client, catcher);
    const catcherSent = catcherLogs.filter(inOutage).filter(sent);
    expect(catcherSent).toHaveLength(1);
    expect(catcherSent[0]!.triggeredAt!.getTime()).toBeGreaterThanOrEqual(restartingAt);
    // Whether that one fire reached an executor depends on how fast executors reconnect
    // after the outage, not on the scheduler: it is sent once either way.
  });
});

describe('two admins, one executor connected to only one of them', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let adminA: TestAdmin;
  let adminB: TestAdmin;
  let executor: Executor;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    adminA = await startTestAdmin(database.url);
    adminB = await startTestAdmin(database.url);
    const group = await createGroup(adminA.client, 'remote');
    groupId = group.groupId;
    executor = await startFixtureExecutor({
      adminAddresses: [adminB.address],
      appName: 'remote',
      accessToken: group.token,
      instanceName: 'remote-1',
    });
  });

  afterAll(async () => {
    await executor?.stop();
    await adminA?.stop();
    await adminB?.stop();
    await database?.drop();
  });

  it('runs a job triggered through admin A on the executor connected to admin B', async () => {
    const jobId = await createJob(adminA.client, groupId, 'echo', { param: 'via A' });
    expect(adminA.app.sessions.size).toBe(0);
    const { logIds } = await adminA.client.triggerJob({ jobId });
    const log = await waitFor(async () => {
      const { log: current } = await adminA.client.getLog({ id: logIds[0]! });
      return current?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : current;
    });
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      executorInstance: 'remote-1',
      handleMessage: 'echo: via A',
    });
  });

  it("kills and log-reads that executor's runs through admin A", async () => {
    const jobId = await createJob(adminA.client, groupId, 'steps', { param: '100:100' });
    const { logIds } = await adminA.client.triggerJob({ jobId });
    const logId = logIds[0]!;
    const page = await waitFor(async () => {
      const read = await adminA.client.readExecutorLog({ logId, fromLine: 1, maxLines: 100 });
      return read.lines.some(line => line.includes('step 2 of 100')) ? read : undefined;
    });
    expect(page.lines.find(line => line.includes('step 1 of 100'))).toBeDefined();
    await adminA.client.killRun({ logId });
    const killed = await waitFor(async () => {
      const { log } = await adminA.client.getLog({ id: logId });
      return log?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : log;
    });
    expect(killed.outcome).toBe(RunOutcome.RUN_OUTCOME_KILLED);
  });

  it('runs scheduled fires whichever admin claims them', async () => {
    const jobId = await createJob(adminA.client, groupId, 'echo', {
      scheduleType: FIX_RATE,
      scheduleConf: '1',
    });
    await adminA.client.startJob({ id: jobId });
    const logs = await finishedLogs(adminA.client, jobId, 3);
    await adminA.client.stopJob({ id: jobId });
    expect(logs.slice(0, 3).every(log => log.status === LogStatus.LOG_STATUS_SUCCEEDED)).toBe(true);
  });

  it('records each fire once in the database even when the same fire is recorded twice', async () => {
    const jobId = await createJob(adminA.client, groupId, 'echo');
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const insert = `insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at, dispatch_outcome)
                      values ($1, $2, 'SCHEDULE', 'echo', '', '2030-01-01T00:00:00Z', now(), 'PENDING')`;
      await client.query(insert, [jobId, groupId]);
      await expect(client.query(insert, [jobId, groupId])).rejects.toMatchObject({ code: '23505' });
    } finally {
      await client.end();
    }
  });
});

describe('claiming thousands of due jobs at once', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it('records every fire of a claim batch larger than one statement can bind', async () => {
    const { groupId } = await createGroup(admin.client, 'bulk');
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      // 1,000 jobs (one claim batch) firing every second, found 3 s late (within the
      // misfire threshold) and claimed 2 s ahead: ~6,000 fires of 17 bind parameters in
      // one claim, beyond PostgreSQL's 65,535 per statement.
      await db.query(
        `insert into job (group_id, description, schedule_type, schedule_conf, misfire_strategy, route_strategy,
                          handler, block_strategy, glue_type, trigger_status, next_trigger_at)
         select $1, 'bulk ' || n, 'FIX_RATE', '1', 'DO_NOTHING', 'FIRST', 'echo', 'SERIAL_EXECUTION', 'BEAN',
                'RUNNING', now() - interval '3 seconds'
           from generate_series(1, 1000) as n`,
        [groupId],
      );
      const fired = await waitFor(
        async () => {
          const { rows } = await db.query<{ jobs: string }>(
            `select count(distinct job_id) as jobs from trigger_log where trigger_type = 'SCHEDULE'`,
          );
          return Number(rows[0]!.jobs) === 1000 ? true : undefined;
        },
        { intervalMs: 200, what: 'a fire of every bulk job' },
      );
      expect(fired).toBe(true);
      await db.query(`update job set trigger_status = 'STOPPED', next_trigger_at = null`);
    } finally {
      await db.end();
    }
  });
});
