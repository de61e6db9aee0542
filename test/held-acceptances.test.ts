import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome } from '@jobstream/proto/admin';
import type { RunRequest } from '@jobstream/proto/executor';
import { RunOutcome, ScheduleType } from '@jobstream/proto/types';
import { createDatabase } from '../admin/src/db/database.js';
import { recordHeldAcceptances } from '../admin/src/db/logs.repository.js';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * A scheduled fire's log row is written when the fire is claimed (inserted), when it is
 * taken for sending (it names its executor), and once more when the run's result comes
 * in: the executor's acceptance is held back and stored with the result, in the same
 * row update. A manual trigger's row names its executor when it is inserted, and its
 * acceptance is held the same way: TriggerJob returns once the executor accepted. Each update of trigger_log writes a new row version and an entry in each
 * of its indexes, so at thousands of runs a second this write is the database's work
 * for a quarter of every run. A run whose result does not come soon still shows as
 * accepted, a few seconds later; and an acceptance that lands late never undoes what
 * the executor's next Register settled meanwhile.
 */
describe('the acceptance of a run', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let admin: TestAdmin;
  const raws: RawExecutor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 3 });
    pool.on('error', () => undefined);
    // Counts the updates of each log row as they happen.
    await pool.query(`
      create table log_updates (log_id bigint not null);
      create function count_log_update() returns trigger language plpgsql as $$
        begin insert into log_updates values (new.id); return new; end $$;
      create trigger count_log_update after update on trigger_log
        for each row execute function count_log_update();`);
    // Fires taken before the stop and never answered must not end the stream meanwhile.
    admin = await startTestAdmin(database.url, { requestDeadlineMs: 60_000 });
  });

  afterAll(async () => {
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await pool?.end();
    await database?.drop();
  });

  async function scheduledRun(appName: string): Promise<{ raw: RawExecutor; request: RunRequest }> {
    const { groupId, token } = await createGroup(admin.client, appName);
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName, instanceName: `${appName}-1` });
    raw.keepBeating(100);
    await raw.next('welcome');
    const jobId = await createJob(admin.client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
      scheduleConf: '1',
    });
    await admin.client.startJob({ id: jobId });
    const request = await raw.next('runRequest', 1, 20_000);
    await admin.client.stopJob({ id: jobId });
    return { raw, request };
  }

  function accept(raw: RawExecutor, request: RunRequest): void {
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
  }

  function succeed(raw: RawExecutor, request: RunRequest): void {
    const now = new Date();
    raw.send({
      kind: {
        $case: 'runResult',
        value: {
          logId: request.logId,
          attempt: request.attempt,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'done',
          startedAt: now,
          finishedAt: now,
        },
      },
    });
  }

  async function updatesOf(logId: string): Promise<number> {
    const { rows } = await pool.query<{ n: number }>(
      'select count(*)::int as n from log_updates where log_id = $1',
      [logId],
    );
    return rows[0]!.n;
  }

  it('is stored with a result that follows at once: the log row is updated twice in all', async () => {
    const { raw, request } = await scheduledRun('held-quick');
    accept(raw, request);
    succeed(raw, request);
    await raw.next('resultAck');

    const { log } = await admin.client.getLog({ id: request.logId });
    expect(log!.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED);
    expect(log!.outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
    expect(log!.triggerMessage).toContain('accepted by held-quick-1');
    // Past the hold: nothing is written later either.
    await new Promise(resolve => setTimeout(resolve, 4_000));
    // Its take (naming the executor), then the result with the acceptance.
    expect(await updatesOf(request.logId)).toBe(2);
  }, 60_000);

  it('of a manual trigger is stored with its result: the log row is inserted and updated once', async () => {
    const { groupId, token } = await createGroup(admin.client, 'held-manual');
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'held-manual', instanceName: 'held-manual-1' });
    raw.keepBeating(100);
    await raw.next('welcome');
    const jobId = await createJob(admin.client, groupId, 'echo');
    const triggered = admin.client.triggerJob({ jobId });
    const request = await raw.next('runRequest');
    accept(raw, request);
    expect((await triggered).logIds).toEqual([request.logId]);
    // Returned on the acceptance: the log names the executor, the acceptance waits.
    const { log: sent } = await admin.client.getLog({ id: request.logId });
    expect(sent).toMatchObject({
      executorInstance: 'held-manual-1',
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_PENDING,
    });
    succeed(raw, request);
    await raw.next('resultAck');
    const { log } = await admin.client.getLog({ id: request.logId });
    expect(log!.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED);
    expect(log!.outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
    expect(log!.triggerMessage).toContain('accepted by held-manual-1');
    await new Promise(resolve => setTimeout(resolve, 4_000));
    expect(await updatesOf(request.logId)).toBe(1);
  }, 60_000);

  it('of a run whose stream ends is stored at once: the run reads as accepted and gone, not unanswered', async () => {
    const { raw, request } = await scheduledRun('held-gone');
    accept(raw, request);
    await new Promise(resolve => setTimeout(resolve, 200));
    const endedAt = Date.now();
    raw.end();
    const row = await waitFor(
      async () => {
        const { rows } = await pool.query<{ dispatch_outcome: string; unroutable: boolean }>(
          `select dispatch_outcome, unroutable_since is not null as unroutable from trigger_log where id = $1`,
          [request.logId],
        );
        return rows[0]?.unroutable ? rows[0] : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 25, what: 'the run to be marked unroutable' },
    );
    expect(row.dispatch_outcome).toBe('ACCEPTED');
    // Well inside the hold (3 s): written because the stream ended, not because time ran out.
    expect(Date.now() - endedAt).toBeLessThan(2_000);
  }, 60_000);

  it('is recorded on its own when the result takes longer, while the run is still running', async () => {
    const { raw, request } = await scheduledRun('held-slow');
    accept(raw, request);
    const accepted = await waitFor(
      async () => {
        const { log } = await admin.client.getLog({ id: request.logId });
        return log?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the acceptance to be recorded' },
    );
    expect(accepted.outcome).toBe(RunOutcome.RUN_OUTCOME_UNSPECIFIED);
    expect(accepted.triggerMessage).toContain('accepted by held-slow-1');

    succeed(raw, request);
    await raw.next('resultAck');
    const { log } = await admin.client.getLog({ id: request.logId });
    expect(log!.outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
    expect(log!.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED);
  }, 60_000);

  it('of a run sent through a peer admin is stored by that peer, with the result it receives', async () => {
    // The executor's stream is at the peer; fires this admin claims go through the peer.
    const peer = await startTestAdmin(database.url, { requestDeadlineMs: 60_000 });
    try {
      const { groupId, token } = await createGroup(admin.client, 'held-peer');
      const raw = new RawExecutor(peer.address, token);
      raws.push(raw);
      raw.register({ appName: 'held-peer', instanceName: 'held-peer-1' });
      raw.keepBeating(100);
      await raw.next('welcome');
      const jobId = await createJob(admin.client, groupId, 'echo', {
        scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
        scheduleConf: '1',
      });
      await admin.client.startJob({ id: jobId });
      const sentBy = async (app: TestAdmin) =>
        (await app.app.metrics.triggers.get()).values
          .filter(value => value.labels.trigger_type === 'SCHEDULE' && value.labels.outcome === 'ACCEPTED')
          .reduce((sum, value) => sum + value.value, 0);
      // Answer every run at once, until this admin (not the peer) has sent some of them.
      const logIds: string[] = [];
      const deadline = Date.now() + 30_000;
      while ((await sentBy(admin)) < 2) {
        if (Date.now() > deadline) throw new Error('no fire went through the peer within 30 s');
        const request = await raw.next('runRequest', logIds.length + 1, 10_000);
        logIds.push(request.logId);
        accept(raw, request);
        succeed(raw, request);
      }
      await admin.client.stopJob({ id: jobId });
      await waitFor(
        async () =>
          (await Promise.all(logIds.map(id => admin.client.getLog({ id })))).every(
            ({ log }) => log?.outcome === RunOutcome.RUN_OUTCOME_SUCCEEDED,
          ) || undefined,
        { timeoutMs: 10_000, intervalMs: 100, what: 'every result to be stored' },
      );
      // Past the hold: nothing is written later either.
      await new Promise(resolve => setTimeout(resolve, 4_000));
      for (const logId of logIds) {
        const { log } = await admin.client.getLog({ id: logId });
        expect(log!.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED);
        expect(log!.triggerMessage).toContain('accepted by held-peer-1');
        expect({ logId, updates: await updatesOf(logId) }).toEqual({ logId, updates: 2 });
      }
      raw.end();
    } finally {
      await peer.stop();
    }
  }, 90_000);

  it('that lands late leaves a log its executor settled on another session alone', async () => {
    const { raw, request } = await scheduledRun('held-fenced');
    // The executor's next Register took the run onto its new session meanwhile.
    await pool.query(
      `update trigger_log set executor_session_id = 'newer-session', dispatch_outcome = 'ACCEPTED',
              trigger_message = 'settled on the new session' where id = $1`,
      [request.logId],
    );
    const db = createDatabase({ connectionString: database.url });
    try {
      const { rows } = await pool.query<{ triggered_at: Date }>(
        'select triggered_at from trigger_log where id = $1',
        [request.logId],
      );
      await recordHeldAcceptances(db, [
        {
          logId: request.logId,
          attempt: request.attempt,
          triggeredAt: new Date(rows[0]!.triggered_at.getTime() + 1_000),
          executorInstance: 'held-fenced-1',
          executorSessionId: 'the-old-session',
          message: 'accepted by held-fenced-1',
        },
      ]);
    } finally {
      await db.destroy();
    }
    const { log } = await admin.client.getLog({ id: request.logId });
    expect(log!.triggerMessage).toBe('settled on the new session');
    raw.end();
  }, 60_000);
});
