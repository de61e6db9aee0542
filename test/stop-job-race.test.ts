import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStatus } from '../admin/src/gen/jobstream/v1/admin.js';
import { RunOutcome, ScheduleType } from '../admin/src/gen/jobstream/v1/types.js';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';
import { cancelPendingFires, renewAdminLease, takeFires } from '../admin/src/db/scheduler.repository.js';

/**
 * StopJob withdraws fires the scheduler claimed but has not sent. It used to delete every
 * such fire still before its time, including one the scheduler had already taken for
 * sending (taken a few milliseconds early): the run request then went out for a log that
 * no longer existed, a run nobody could see. The scheduler is held right after it took
 * the fire (a test-only hook) while StopJob runs.
 */
describe('StopJob while a fire is being sent', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let admin: TestAdmin | undefined;
  let raw: RawExecutor | undefined;

  afterAll(async () => {
    await raw?.close();
    await admin?.stop();
    await database?.drop();
  });

  it('never withdraws a fire already taken for sending: the run that goes out has its log', async () => {
    database = await createTestDatabase();
    let stopDuringTake: (() => Promise<void>) | undefined;
    admin = await startTestAdmin(
      database.url,
      {},
      {
        afterTake: async logIds => {
          if (logIds.length === 0 || !stopDuringTake) return;
          const stop = stopDuringTake;
          stopDuringTake = undefined;
          await stop();
        },
      },
    );
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'race');
    raw = new RawExecutor(admin.address, token);
    raw.register({ appName: 'race', instanceName: 'race-1' });
    raw.keepBeating(100);
    await raw.next('welcome');

    const fireAt = new Date(Date.now() + 3_000);
    const jobId = await createJob(client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
      // Once, at fireAt (and next year).
      scheduleConf: `${fireAt.getUTCSeconds()} ${fireAt.getUTCMinutes()} ${fireAt.getUTCHours()} ${fireAt.getUTCDate()} ${fireAt.getUTCMonth() + 1} ?`,
      timeZone: 'UTC',
    });
    let stopped = false;
    stopDuringTake = async () => {
      await client.stopJob({ id: jobId });
      stopped = true;
    };
    await client.startJob({ id: jobId });

    const request = await raw.next('runRequest', 1, 30_000);
    expect(stopped).toBe(true);
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    raw.send({
      kind: {
        $case: 'runResult',
        value: {
          logId: request.logId,
          attempt: request.attempt,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'ran after the stop',
          startedAt: new Date(Date.now() - 10),
          finishedAt: new Date(),
        },
      },
    });
    // The run that went out is recorded: its log exists and stores its result.
    const log = await waitFor(
      async () => {
        const { log: current } = await client.getLog({ id: request.logId }).catch(() => ({ log: undefined }));
        return current?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : current;
      },
      {
        timeoutMs: 30_000,
        what: `the log of the run that went out (log ${request.logId}) to store its result`,
      },
    );
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      handleMessage: 'ran after the stop',
    });

    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ id: string }>('select id from trigger_log where job_id = $1', [
        jobId,
      ]);
      expect(rows.map(row => row.id)).toEqual([request.logId]);
    } finally {
      await db.end();
    }
  }, 90_000);

  it('withdraws a fire not yet taken, and never one taken for sending, whatever its time', async () => {
    const db = admin!.app.db;
    const { groupId } = await createGroup(admin!.client, 'race-db');
    const jobId = await createJob(admin!.client, groupId, 'echo');
    // Claimed by an admin that is alive (so nobody takes its fires over), well ahead of
    // their time: the take's own timing must not be what protects a taken fire.
    await renewAdminLease(db, 'holder', '127.0.0.1:1', 60_000);
    const inserted = await db
      .insertInto('trigger_log')
      .values(
        [60_000, 61_000].map(aheadMs => ({
          job_id: jobId,
          group_id: groupId,
          trigger_type: 'SCHEDULE' as const,
          handler: 'echo',
          param: '',
          shard_index: 0,
          shard_total: 1,
          retry_of_log_id: null,
          scheduled_at: new Date(Date.now() + aheadMs),
          triggered_at: new Date(Date.now() + aheadMs),
          dispatch_outcome: 'PENDING' as const,
          claimed_by: 'holder',
          executor_instance: null,
          executor_session_id: null,
          started_at: null,
          finished_at: null,
          outcome: null,
          result_received_at: null,
        })),
      )
      .returning('id')
      .execute();
    const [taken, notTaken] = inserted.map(row => row.id);
    expect([...(await takeFires(db, [taken!], 'holder'))]).toEqual([taken]);
    expect(await cancelPendingFires(db, jobId)).toBe(1);
    const left = await db.selectFrom('trigger_log').select('id').where('job_id', '=', jobId).execute();
    expect(left.map(row => row.id)).toEqual([taken]);
    expect(notTaken).toBeDefined();
  });
});
