import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome } from '@jobstream/proto/admin';
import { RejectReason } from '@jobstream/proto/executor';
import { ScheduleType } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * An executor's answer to a run request is a fact the log must end up with. When the
 * database fails just as the answer is written (a PostgreSQL restart ends every
 * connection), the write used to be dropped: the dispatch threw, and a scheduled fire's
 * log stayed PENDING and claimed by its live admin, where nothing ever settles it (no
 * result comes for a rejected run, no session is recorded to declare a run lost). The
 * failure is made deterministic here: the log's row is locked while the executor answers,
 * and the admin's connection writing the answer is terminated, as a restart would.
 */

describe('an executor answer whose write fails', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let admin: TestAdmin;
  const raws: RawExecutor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 3 });
    // An idle connection the server ends (a restart, a forced drop) must not become an
    // unhandled error of the test run; the next query opens a new one.
    pool.on('error', () => undefined);
    // The test holds the reply while it locks the log's row: never past the deadline.
    admin = await startTestAdmin(database.url, { requestDeadlineMs: 60_000 });
  });

  afterAll(async () => {
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await pool?.end();
    await database?.drop();
  });

  it('is written once the database is back: the log does not stay PENDING', async () => {
    const { groupId, token } = await createGroup(admin.client, 'record');
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'record', instanceName: 'record-1' });
    raw.keepBeating(100);
    await raw.next('welcome');

    const jobId = await createJob(admin.client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
      scheduleConf: '1',
    });
    await admin.client.startJob({ id: jobId });
    const request = await raw.next('runRequest', 1, 20_000);
    await admin.client.stopJob({ id: jobId });

    const locker = await pool.connect();
    try {
      await locker.query('begin');
      await locker.query('select id from trigger_log where id = $1 for update', [request.logId]);
      raw.send({
        kind: {
          $case: 'reply',
          value: {
            requestId: request.requestId,
            accepted: false,
            rejectReason: RejectReason.REJECT_REASON_BUSY,
            message: 'no room',
          },
        },
      });
      // The admin's write of that answer, waiting for the row: its connection ends.
      const writer = await waitFor(
        async () => {
          // Not on the locking connection: within a transaction, pg_stat_activity keeps
          // showing what it showed first.
          const { rows } = await pool.query<{ pid: number }>(
            `select pid from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'
                and query like '%update trigger_log as l%'`,
          );
          return rows[0];
        },
        { timeoutMs: 20_000, intervalMs: 20, what: "the admin's write of the answer" },
      );
      await locker.query('select pg_terminate_backend($1)', [writer.pid]);
      await locker.query('rollback');
    } finally {
      locker.release();
    }

    const log = await waitFor(
      async () => {
        // A call that draws the pooled connection just terminated fails once; ask again.
        const current = await admin.client
          .getLog({ id: request.logId })
          .then(({ log: found }) => found)
          .catch(() => undefined);
        return current && current.dispatchOutcome !== DispatchOutcome.DISPATCH_OUTCOME_PENDING
          ? current
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the rejection to be recorded' },
    );
    expect(log.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_FAILED);
    expect(log.triggerMessage).toContain('rejected by record-1 (REJECT_REASON_BUSY): no room');
    // Sent once (fires taken before the stop may follow it, each once).
    const sent = raw.received.filter(
      message => message.kind?.$case === 'runRequest' && message.kind.value.logId === request.logId,
    );
    expect(sent).toHaveLength(1);
  }, 120_000);
});
