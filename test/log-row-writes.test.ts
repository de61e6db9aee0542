import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome } from '@jobstream/proto/admin';
import type { RunRequest } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * A manual run's acceptance and its result are written by two batch writers, and a fast
 * run's result arrives while its acceptance is still being written. Two batched updates
 * that lock the same rows in opposite orders deadlock; PostgreSQL notices only after
 * deadlock_timeout (1 s by default), then aborts one, which is written again: every
 * run of both batches waits a second, under load again and again (TriggerJobRuns ran at
 * 3,000-5,000 runs/s instead of 8,500). The admin writes such batches one at a time.
 *
 * Made deterministic: the test holds a lock on the middle run's row while the acceptances
 * (in request order) and then the results (in reverse order) reach the admin, so both
 * batches would stand half-way through the same rows, from opposite ends.
 */
describe('writing acceptances and results of the same runs', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let sql: pg.Client;
  let raw: RawExecutor | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  });

  afterAll(async () => {
    await raw?.close();
    await sql?.end();
    await admin?.stop();
    await database?.drop();
  });

  async function lockWaits(): Promise<number> {
    const { rows } = await sql.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`,
    );
    return rows[0]!.n;
  }

  async function failedStatements(): Promise<number> {
    const metric = await admin.app.metrics.dbStatements.get();
    return metric.values
      .filter(value => value.labels.outcome === 'error')
      .reduce((sum, value) => sum + value.value, 0);
  }

  it('never deadlock, whatever order the results come in', async () => {
    const { groupId, token } = await createGroup(admin.client, 'lanes');
    raw = new RawExecutor(admin.address, token);
    const executor = raw;
    executor.register({ appName: 'lanes', instanceName: 'lanes-1', capacity: 1_000 });
    executor.keepBeating(500);
    await executor.next('welcome');
    const jobId = await createJob(admin.client, groupId, 'echo');
    const runs = 200;
    const triggered = admin.client.triggerJobRuns({ jobId, runs: Array.from({ length: runs }, () => ({})) });
    const requests = await waitFor(
      () => {
        const received = executor.received.flatMap(message =>
          message.kind?.$case === 'runRequest' ? [message.kind.value] : [],
        );
        return received.length >= runs ? received : undefined;
      },
      { what: 'every run request' },
    );
    const inIdOrder = [...requests].sort((a, b) => Number(BigInt(a.logId) - BigInt(b.logId)));
    const errorsBefore = await failedStatements();

    await sql.query('begin');
    await sql.query('select id from trigger_log where id = $1 for update', [inIdOrder[runs / 2]!.logId]);
    const answer = (request: RunRequest) =>
      executor.send({
        kind: {
          $case: 'reply',
          value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
    for (const request of inIdOrder) answer(request);
    // The acceptances' batch stands at the locked row.
    await waitFor(async () => ((await lockWaits()) >= 1 ? true : undefined), {
      what: 'the acceptances to wait for the locked row',
    });
    for (const request of [...inIdOrder].reverse()) {
      executor.send({
        kind: {
          $case: 'runResult',
          value: {
            logId: request.logId,
            attempt: request.attempt,
            outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
            message: 'done',
            startedAt: new Date(Date.now() - 5),
            finishedAt: new Date(),
          },
        },
      });
    }
    // Time for the results' batch to reach the database, were it written beside the other.
    await new Promise(resolve => setTimeout(resolve, 500));
    await sql.query('commit');
    await triggered;

    await waitFor(
      async () => {
        const { rows } = await sql.query<{ n: number }>(
          `select count(*)::int as n from trigger_log
            where job_id = $1 and dispatch_outcome = 'ACCEPTED' and outcome = 'SUCCEEDED'`,
          [jobId],
        );
        return rows[0]!.n === runs ? true : undefined;
      },
      { what: 'every run accepted and succeeded' },
    );
    const logs = await admin.client.listLogs({ jobId, pageSize: 1 });
    expect(logs.logs[0]?.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED);
    expect(await failedStatements()).toBe(errorsBefore);
    const { rows: deadlocks } = await sql.query<{ n: string }>(
      'select deadlocks as n from pg_stat_database where datname = current_database()',
    );
    expect(Number(deadlocks[0]!.n)).toBe(0);
  });
});
