import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { insertLogs, markSending } from '../admin/src/db/logs.repository.js';
import { DispatchOutcome, LogStatus } from '@jobstream/proto/admin';
import { RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Found by the chaos soak (issue 10): an admin whose lease lapsed while it was still
 * alive (stopped, starved, cut from PostgreSQL) went on sending a fire that a peer had
 * taken over, and the peer routed the same fire again, to another executor, or skipped
 * it as late, or failed it ("no executor is idle"): one fire ran twice, or ran under a
 * SKIPPED or FAILED log. A first send now marks the log with its executor while the
 * sender still holds the claim (markSending); a peer asks that executor again instead.
 */
describe('a fire whose admin stopped while sending it', () => {
  let database: TestDatabase;
  let db: Db;
  let admin: TestAdmin;
  const raws: RawExecutor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 2 });
    admin = await startTestAdmin(database.url, { requestDeadlineMs: 2_000 });
  });

  afterAll(async () => {
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await db?.destroy();
    await database?.drop();
  });

  /** A scheduled fire's log, as a claim records it (the caller names its claimer). */
  async function insertFire(jobId: string, groupId: string, scheduledAt: Date): Promise<string> {
    const [log] = await insertLogs(db, [
      {
        jobId,
        groupId,
        triggerType: 'SCHEDULE',
        handler: 'echo',
        param: '',
        shardIndex: 0,
        shardTotal: 1,
        retryOfLogId: null,
        scheduledAt,
        triggeredAt: scheduledAt,
      },
    ]);
    return log!.id;
  }

  function connect(token: string, instanceName: string, appName = 'stalled'): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName, instanceName, capacity: 4 });
    raw.keepBeating(200);
    return raw;
  }

  it('is asked again on the executor it names: not routed elsewhere, not skipped, run once', async () => {
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'stalled');
    const named = connect(token, 'named-1');
    const other = connect(token, 'other-1');
    await named.next('welcome');
    await other.next('welcome');
    // Never started: only the taken-over fire below runs.
    const jobId = await createJob(client, groupId, 'echo');

    // The stalled admin: its lease has lapsed. Its fire is 30 s late (past the misfire
    // threshold) and was being sent to named-1 on a stream since replaced.
    await sql`insert into admin_instance (id, grpc_address, expires_at)
              values ('stalled-admin', '127.0.0.1:1', now() - interval '1 minute')`.execute(db);
    const scheduledAt = new Date(Date.now() - 30_000);
    const logId = await insertFire(jobId, groupId, scheduledAt);
    await sql`update trigger_log set claimed_by = 'stalled-admin' where id = ${logId}`.execute(db);
    const mark = {
      logId,
      executorInstance: 'named-1',
      executorSessionId: 'a-stream-since-replaced',
      // The process behind named-1's stream (hostname/pid as the raw executor registers).
      executorProcess: 'test-host/1',
      triggeredAt: scheduledAt,
    };
    // The fence itself: only the admin holding the claim marks the fire.
    expect(await markSending(db, [{ ...mark, claimedBy: 'another-admin' }])).toEqual([false]);
    // Two sends of one fire marking in the same batch: only the first wins.
    expect(
      await markSending(db, [
        { ...mark, claimedBy: 'stalled-admin' },
        { ...mark, claimedBy: 'stalled-admin', executorInstance: 'other-1' },
      ]),
    ).toEqual([true, false]);

    // The live admin takes the fire over and asks named-1 again with the same (log, attempt).
    const request = await named.next('runRequest');
    expect(request).toMatchObject({ logId, attempt: 1 });
    named.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    const accepted = await waitFor(
      async () => {
        const { log: current } = await client.getLog({ id: logId });
        return current?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? current : undefined;
      },
      { what: 'the taken-over fire to be accepted by the executor it names' },
    );
    expect(accepted.executorInstance).toBe('named-1');
    expect(accepted.triggerMessage).toContain('in doubt: admin stalled-admin stopped while sending');
    named.send({
      kind: {
        $case: 'runResult',
        value: {
          logId,
          attempt: 1,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'ran once',
          startedAt: new Date(Date.now() - 10),
          finishedAt: new Date(),
        },
      },
    });
    await named.next('resultAck');

    const { logs } = await client.listLogs({ jobId, pageSize: 100 });
    expect(logs.map(entry => [entry.id, entry.status])).toEqual([[logId, LogStatus.LOG_STATUS_SUCCEEDED]]);
    expect(named.count('runRequest')).toBe(1);
    expect(other.count('runRequest')).toBe(0);
  });

  it('is sent once when this admin took it over twice (its claim went round while every lease had lapsed)', async () => {
    // Found by the chaos soak: right after a PostgreSQL restart every admin's lease had
    // lapsed, so a fire taken over by admin A was taken over from A by B and then from B by
    // A again. A held it twice, in the same take; both entries looked marked by the take,
    // were routed (ROUND) to two executors and both went out: one fire ran twice.
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'twice');
    const first = connect(token, 'twice-1', 'twice');
    const second = connect(token, 'twice-2', 'twice');
    await first.next('welcome');
    await second.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND,
    });
    await sql`insert into admin_instance (id, grpc_address, expires_at)
              values ('lapsed-1', '127.0.0.1:1', now() - interval '1 minute'),
                     ('lapsed-2', '127.0.0.1:1', now() - interval '1 minute')`.execute(db);
    // Far enough ahead for both take-overs to happen before its time.
    const scheduledAt = new Date(Date.now() + 6_000);
    const logId = await insertFire(jobId, groupId, scheduledAt);
    const claimedBy = async () =>
      (
        await sql<{
          claimed_by: string | null;
        }>`select claimed_by from trigger_log where id = ${logId}`.execute(db)
      ).rows[0]?.claimed_by;
    const takenOver = () =>
      waitFor(
        async () => {
          const owner = await claimedBy();
          return owner && !owner.startsWith('lapsed-') ? owner : undefined;
        },
        { what: 'the live admin to take the fire over' },
      );
    await sql`update trigger_log set claimed_by = 'lapsed-1' where id = ${logId}`.execute(db);
    const live = await takenOver();
    // The peer that took it from the live admin, whose lease lapsed in turn.
    await sql`update trigger_log set claimed_by = 'lapsed-2' where id = ${logId} and claimed_by = ${live}`.execute(
      db,
    );
    await takenOver();
    expect(Date.now()).toBeLessThan(scheduledAt.getTime() - 500);

    const accepted = await waitFor(
      () => {
        for (const raw of [first, second]) {
          const request = raw.received.find(
            message => message.kind?.$case === 'runRequest' && message.kind.value.logId === logId,
          );
          if (request?.kind?.$case === 'runRequest') {
            raw.send({
              kind: {
                $case: 'reply',
                value: {
                  requestId: request.kind.value.requestId,
                  accepted: true,
                  rejectReason: 0,
                  message: '',
                },
              },
            });
            return raw;
          }
        }
        return undefined;
      },
      { intervalMs: 5, what: 'the fire to be sent' },
    );
    await waitFor(
      async () => {
        const { log: current } = await client.getLog({ id: logId });
        return current?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? current : undefined;
      },
      { what: 'the fire to be recorded accepted' },
    );
    // Two entries of one take went out at the same instant: by the time the answer to one
    // is recorded, the other request would have arrived too.
    const requestsFor = (raw: RawExecutor) =>
      raw.received.filter(
        message => message.kind?.$case === 'runRequest' && message.kind.value.logId === logId,
      ).length;
    expect([requestsFor(first) + requestsFor(second), requestsFor(accepted)]).toEqual([1, 1]);
  });
});
