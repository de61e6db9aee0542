import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { markFiresSkipped } from '../admin/src/db/scheduler.repository.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

/**
 * Found by the chaos soak (npm run chaos): a FIX_DELAY job whose fire was taken over from a
 * dead admin and skipped as a misfire stopped firing for good. The skip and the planning of
 * the job's next fire were two writes; an admin killed (or cut from the database) between
 * them left the job RUNNING with no next fire, and nothing ever looks at it again.
 */
describe('skipping a FIX_DELAY fire', () => {
  let database: TestDatabase;
  let db: Db;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 2 });
    const { rows } = await sql<{ id: string }>`
      insert into executor_group (app_name, title, address_type, access_token_hash)
      values ('fixdelay', 'fix delay', 'AUTO', 'not-a-real-token-hash') returning id`.execute(db);
    groupId = rows[0]!.id;
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** A running FIX_DELAY job waiting for its fire's run, and that fire, claimed by a dead admin. */
  async function waitingJob(
    dispatchOutcome: 'PENDING' | 'ACCEPTED',
  ): Promise<{ jobId: string; logId: string }> {
    const { rows: jobs } = await sql<{ id: string }>`
      insert into job (group_id, description, schedule_type, schedule_conf, misfire_strategy, route_strategy,
                       handler, block_strategy, glue_type, trigger_status, next_trigger_at)
      values (${groupId}, 'every 2 s after the run', 'FIX_DELAY', '2', 'DO_NOTHING', 'FIRST',
              'work', 'SERIAL_EXECUTION', 'BEAN', 'RUNNING', null)
      returning id`.execute(db);
    const jobId = jobs[0]!.id;
    const { rows: logs } = await sql<{ id: string }>`
      insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at,
                               dispatch_outcome, claimed_by)
      values (${jobId}, ${groupId}, 'SCHEDULE', 'work', '', now() - interval '10 seconds',
              now() - interval '10 seconds', ${dispatchOutcome}, 'an-admin-that-died')
      returning id`.execute(db);
    return { jobId, logId: logs[0]!.id };
  }

  async function nextFire(jobId: string): Promise<{ next: Date | null; now: Date }> {
    const { rows } = await sql<{ next: Date | null; now: Date }>`
      select next_trigger_at as next, now() as now from job where id = ${jobId}`.execute(db);
    return rows[0]!;
  }

  it('plans the job next fire in the same write, so an admin dying right after cannot stall the job', async () => {
    const { jobId, logId } = await waitingJob('PENDING');

    // Only the skip itself: an admin killed right after it does nothing more.
    await markFiresSkipped(db, [logId], 'misfire: skipped');

    const { rows } = await sql<{ dispatch_outcome: string }>`
      select dispatch_outcome from trigger_log where id = ${logId}`.execute(db);
    expect(rows[0]!.dispatch_outcome).toBe('SKIPPED');
    const { next, now } = await nextFire(jobId);
    expect(next).not.toBeNull();
    // The delay counts from the skip: the next fire is 2 s after it (the skip is in the past now).
    expect(next!.getTime()).toBeGreaterThan(now.getTime());
    expect(next!.getTime()).toBeLessThanOrEqual(now.getTime() + 2_000);
  });

  it('plans nothing for a fire that went out meanwhile: its run plans the next fire when it ends', async () => {
    const { jobId, logId } = await waitingJob('ACCEPTED');

    await markFiresSkipped(db, [logId], 'misfire: skipped');

    const { rows } = await sql<{ dispatch_outcome: string }>`
      select dispatch_outcome from trigger_log where id = ${logId}`.execute(db);
    expect(rows[0]!.dispatch_outcome).toBe('ACCEPTED');
    expect((await nextFire(jobId)).next).toBeNull();
  });
});
