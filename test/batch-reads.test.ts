import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { insertGroup } from '../admin/src/db/groups.repository.js';
import { insertJob } from '../admin/src/db/jobs.repository.js';
import {
  applyRunResults,
  markSending,
  recordDispatches,
  recordHeldAcceptances,
} from '../admin/src/db/logs.repository.js';
import { reclaimOrphanedFires, takeFires } from '../admin/src/db/scheduler.repository.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { storedJobSpec } from './support/fixtures.js';

/**
 * The statements of the run path write batches of rows named by id. Planned as plain
 * joins, PostgreSQL read far more than the batch whenever the table's statistics said
 * it was small (a young table, autovacuum off, or analyzed while idle): the take hashed
 * every fire its admin held, the result batch scanned the whole table. Under load that
 * was tens of thousands of rows read per batch, and more as the table grew.
 *
 * Here the statistics say the table is empty (analyzed before 20,000 fires were
 * claimed), and each batch of 1,000 must read about 1,000 rows: counted by PostgreSQL for the
 * transaction (pg_stat_xact_user_tables), so the check holds whatever plan is chosen.
 */
describe('batch statements of the run path', () => {
  const ADMIN = 'batch-admin';
  const HELD_FIRES = 20_000;
  const BATCH = 1_000;
  let database: TestDatabase;
  let db: Db;
  let logIds: string[];
  let jobId: string;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 2 });
    const group = await insertGroup(
      db,
      { appName: 'batches', title: 'batches', addressType: 'AUTO', addresses: [], scriptKinds: [] },
      'x',
    );
    const job = await insertJob(
      db,
      storedJobSpec(group.id, {
        description: 'fires every millisecond',
        scheduleType: 'FIX_RATE',
        scheduleConf: '1',
      }),
    );
    jobId = job.id;
    groupId = group.id;
    // Statistics taken while idle, and never again during the test.
    await sql`alter table trigger_log set (autovacuum_enabled = false)`.execute(db);
    await sql`analyze trigger_log`.execute(db);
    // Fires claimed by this admin, as a claim pass records them.
    const { rows } = await sql<{ id: string }>`
      insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at,
                               dispatch_outcome, claimed_by)
      select ${job.id}::bigint, ${group.id}::bigint, 'SCHEDULE', 'work', '',
             now() + n * interval '1 millisecond', now() + n * interval '1 millisecond', 'PENDING', ${ADMIN}
        from generate_series(1, ${HELD_FIRES}) n
      returning id`.execute(db);
    logIds = rows.map(row => String(row.id)).sort((a, b) => Number(a) - Number(b));
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** Rows of trigger_log read in the transaction so far, by sequential and index scans. */
  async function rowsRead(trx: Db): Promise<number> {
    const { rows } = await sql<{ seq: string; idx: string }>`
      select seq_tup_read as seq, coalesce(idx_tup_fetch, 0) as idx
        from pg_stat_xact_user_tables where relname = 'trigger_log'`.execute(trx);
    return Number(rows[0]!.seq) + Number(rows[0]!.idx);
  }

  /** Runs `write` in a transaction and returns its answer and the rows it read. */
  async function measured<T>(write: (trx: Db) => Promise<T>): Promise<{ answer: T; read: number }> {
    return db.transaction().execute(async trx => {
      const before = await rowsRead(trx);
      const answer = await write(trx);
      return { answer, read: (await rowsRead(trx)) - before };
    });
  }

  it('take fires and store results by key, however many fires the admin holds', async () => {
    const batch = logIds.slice(1_000, 1_000 + BATCH);
    const triggeredAt = new Date();
    const take = await measured(trx =>
      takeFires(
        trx,
        batch.map(logId => ({
          logId,
          mark: { executorInstance: 'e1', executorSessionId: 's1', executorProcess: 'p1', triggeredAt },
        })),
        ADMIN,
      ),
    );
    expect([...take.answer.values()]).toEqual(batch.map(() => 'marked'));
    expect(take.read).toBeLessThanOrEqual(4 * BATCH);

    const results = await measured(trx =>
      applyRunResults(
        trx,
        batch.map(logId => ({
          logId,
          attempt: 1,
          outcome: 'SUCCEEDED',
          message: 'done',
          startedAt: triggeredAt,
          finishedAt: triggeredAt,
          acceptance: { triggeredAt, executorInstance: 'e1', executorSessionId: 's1', message: 'accepted' },
        })),
        new Date(),
      ),
    );
    expect(results.answer.filter(stored => stored !== undefined)).toHaveLength(BATCH);
    expect(results.read).toBeLessThanOrEqual(4 * BATCH);
  });

  it('mark sends, record dispatches and acceptances by key', async () => {
    const triggeredAt = new Date();
    const marked = logIds.slice(3_000, 3_000 + BATCH);
    const marks = await measured(trx =>
      markSending(
        trx,
        marked.map(logId => ({
          logId,
          claimedBy: ADMIN,
          executorInstance: 'e1',
          executorSessionId: 's1',
          executorProcess: 'p1',
          triggeredAt,
        })),
      ),
    );
    expect(marks.answer).toEqual(marked.map(() => true));
    expect(marks.read).toBeLessThanOrEqual(4 * BATCH);

    const acceptances = await measured(trx =>
      recordHeldAcceptances(
        trx,
        marked.map(logId => ({
          logId,
          attempt: 1,
          triggeredAt,
          executorInstance: 'e1',
          executorSessionId: 's1',
          message: 'accepted',
        })),
      ),
    );
    expect(acceptances.read).toBeLessThanOrEqual(4 * BATCH);

    const failed = logIds.slice(6_000, 6_000 + BATCH);
    const dispatches = await measured(trx =>
      recordDispatches(
        trx,
        failed.map(logId => ({
          logId,
          outcome: 'FAILED',
          triggeredAt,
          executorInstance: null,
          executorSessionId: null,
          message: 'no executor online',
          claimedBy: ADMIN,
        })),
      ),
    );
    expect(dispatches.read).toBeLessThanOrEqual(4 * BATCH);

    const { rows } = await sql<{ dispatch_outcome: string; n: number }>`
      select dispatch_outcome, count(*)::int as n from trigger_log
       where id = any(${[...marked, ...failed]}::bigint[]) group by dispatch_outcome order by 1`.execute(db);
    expect(rows).toEqual([
      { dispatch_outcome: 'ACCEPTED', n: BATCH },
      { dispatch_outcome: 'FAILED', n: BATCH },
    ]);
  });

  it('look for the fires of dead admins without reading those of living ones', async () => {
    await sql`insert into admin_instance (id, grpc_address, expires_at)
              values (${ADMIN}, '127.0.0.1:1', now() + interval '1 hour')`.execute(db);
    await sql`
      insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at,
                               dispatch_outcome, claimed_by)
      select ${jobId}::bigint, ${groupId}::bigint, 'SCHEDULE', 'work', '',
             now() + n * interval '1 millisecond', now() + n * interval '1 millisecond', 'PENDING', 'dead-admin'
        from generate_series(1, 10) n`.execute(db);

    const reclaim = await measured(trx => reclaimOrphanedFires(trx, 'batch-peer', 1_000));

    expect(reclaim.answer.fires).toHaveLength(10);
    expect(reclaim.answer.inDoubt).toEqual([]);
    // The living admin's 20,000 fires stay its own, and were not read one by one.
    expect(reclaim.read).toBeLessThanOrEqual(200);
  });
});
