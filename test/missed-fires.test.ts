import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStatus } from '@jobstream/proto/admin';
import type { RunRequest } from '@jobstream/proto/executor';
import { RunOutcome, ScheduleType } from '@jobstream/proto/types';
import { startTestAdmin, TEST_ADMIN_TOKEN, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { startAdminProcess, type ChildTs } from './support/processes.js';
import { RawExecutor } from './support/raw-executor.js';

const DEADLINE_MS = 400;

/**
 * Issue 10, failure 1: under a CPU hog, a fire the surviving admin claimed stayed PENDING
 * for good. It had forwarded the run request to the admin holding the executor's stream,
 * that admin was too slow to answer within the call's timeout, and the timeout surfaced
 * as a DOMException (TimeoutError) that was not recognised as "no answer": the dispatch
 * threw, nothing was recorded, and the fire, claimed by a live admin, was never looked at
 * again. Reproduced by stopping the peer admin (SIGSTOP) while the fire is forwarded.
 */
describe('a fire forwarded to a peer admin that stalls', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  let admin: TestAdmin | undefined;
  let peer: ChildTs | undefined;
  const raws: RawExecutor[] = [];

  afterAll(async () => {
    peer?.signal('SIGCONT');
    await peer?.kill('SIGKILL');
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await database?.drop();
  });

  it('is held in doubt, not left pending, and runs once when the executor comes back', async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { requestDeadlineMs: DEADLINE_MS });
    const { client } = admin;
    const started = await startAdminProcess({
      databaseUrl: database.url,
      adminToken: TEST_ADMIN_TOKEN,
      // Its lease and its executor's presence outlive the stop: to the other admin it is
      // alive, only slow.
      beatIntervalMs: 20_000,
      env: { JOBSTREAM_ADMIN_LEASE_MS: '60000', JOBSTREAM_REQUEST_DEADLINE_MS: String(DEADLINE_MS) },
    });
    peer = started.child;
    const { groupId, token } = await createGroup(client, 'stall');

    const atPeer = new RawExecutor(started.address, token);
    raws.push(atPeer);
    atPeer.register({ appName: 'stall', instanceName: 'stall-1' });
    atPeer.keepBeating(100);
    await atPeer.next('welcome');

    // Stopped, the peer claims nothing: the fire is claimed by the in-process admin, which
    // reaches the executor only through the peer.
    peer.signal('SIGSTOP');
    const fireAt = new Date(Date.now() + 3_000);
    const jobId = await createJob(client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
      // Once, at fireAt (and next year).
      scheduleConf: `${fireAt.getUTCSeconds()} ${fireAt.getUTCMinutes()} ${fireAt.getUTCHours()} ${fireAt.getUTCDate()} ${fireAt.getUTCMonth() + 1} ?`,
      timeZone: 'UTC',
    });
    await client.startJob({ id: jobId });

    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const fire = async () =>
        (
          await db.query<{
            id: string;
            dispatch_outcome: string;
            claimed_by: string | null;
            executor_session_id: string | null;
            trigger_message: string;
          }>(
            `select id, dispatch_outcome, claimed_by, executor_session_id, trigger_message from trigger_log where job_id = $1`,
            [jobId],
          )
        ).rows;
      // The forwarded call times out (the peer is stopped): the run request may be at
      // the executor, so the fire is held in doubt on the executor's stream.
      const inDoubt = await waitFor(
        async () => {
          const rows = await fire();
          const row = rows[0];
          // Named before it goes out (the mark), and in doubt once the peer's answer is overdue.
          return row && (row.trigger_message.includes('in doubt') || row.dispatch_outcome !== 'PENDING')
            ? row
            : undefined;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: 'the fire forwarded to the stopped peer to be held in doubt (not left PENDING, claimed, unsent)',
        },
      );
      expect(inDoubt, inDoubt.trigger_message).toMatchObject({
        dispatch_outcome: 'PENDING',
        claimed_by: null,
      });
      expect(inDoubt.trigger_message).toContain('in doubt');

      // The peer dies without having sent it; the executor reconnects to the live admin,
      // which has the run sent again there.
      await peer.kill('SIGKILL');
      await atPeer.done;
      const back = new RawExecutor(admin.address, token);
      raws.push(back);
      back.register({ appName: 'stall', instanceName: 'stall-1' });
      back.keepBeating(100);
      const request: RunRequest = await back.next('runRequest', 1, 30_000);
      expect(request.logId).toBe(inDoubt.id);
      back.send({
        kind: {
          $case: 'reply',
          value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
      back.send({
        kind: {
          $case: 'runResult',
          value: {
            logId: request.logId,
            attempt: request.attempt,
            outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
            message: 'ran once',
            startedAt: new Date(Date.now() - 10),
            finishedAt: new Date(),
          },
        },
      });
      await back.next('resultAck', 1, 30_000);
      const { log } = await client.getLog({ id: inDoubt.id });
      expect(log).toMatchObject({ status: LogStatus.LOG_STATUS_SUCCEEDED, handleMessage: 'ran once' });
      expect((await fire()).map(row => row.id)).toEqual([inDoubt.id]);
      expect(back.count('runRequest')).toBe(1);
    } finally {
      await client.stopJob({ id: jobId });
      await db.end();
    }
  }, 90_000);
});
