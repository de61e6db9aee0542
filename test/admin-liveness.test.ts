import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { renewAdminLease } from '../admin/src/db/scheduler.repository.js';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';

/**
 * An admin renews its lease on a connection of its own, which also holds the admin's
 * liveness lock. An admin at full load on a busy machine can renew late: its peers leave
 * its fires alone while the lock shows it alive, instead of taking over thousands of fires
 * it is still sending. A crashed admin's connection closes with it, and its fires are
 * taken over as soon as its lease lapses; a lease lapsed past the grace period is lapsed
 * whatever the lock says.
 */
describe("an admin's liveness", () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let admin: TestAdmin;
  let job: { id: string; groupId: string };
  const sessions: Db[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
    pool.on('error', () => undefined);
    admin = await startTestAdmin(database.url);
    const { groupId } = await createGroup(admin.client, 'liveness');
    job = { id: await createJob(admin.client, groupId, 'echo'), groupId };
  });

  afterAll(async () => {
    await Promise.all(sessions.map(session => session.destroy()));
    await admin?.stop();
    await pool?.end();
    await database?.drop();
  });

  /** A peer admin that renewed its lease (and so took its lock) and claimed one fire. */
  async function peerWithFire(peerId: string): Promise<{ liveness: Db; fireId: string }> {
    const liveness = createDatabase({ connectionString: database.url, maxConnections: 1 });
    sessions.push(liveness);
    await renewAdminLease(liveness, peerId, '127.0.0.1:1', 1_500);
    const { rows } = await pool.query<{ id: string }>(
      `insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at,
                                dispatch_outcome, trigger_message, claimed_by, shard_index, shard_total, attempt)
       values ($1, $2, 'SCHEDULE', 'echo', '', now() + interval '1 minute', now() + interval '1 minute',
               'PENDING', '', $3, 0, 1, 1)
       returning id`,
      [job.id, job.groupId, peerId],
    );
    return { liveness, fireId: rows[0]!.id };
  }

  async function lapse(peerId: string, agoMs: number): Promise<void> {
    await pool.query(
      `update admin_instance set expires_at = now() - $2 * interval '1 millisecond' where id = $1`,
      [peerId, agoMs],
    );
  }

  async function claimedBy(fireId: string): Promise<string | null> {
    const { rows } = await pool.query<{ claimed_by: string | null }>(
      'select claimed_by from trigger_log where id = $1',
      [fireId],
    );
    return rows[0]!.claimed_by;
  }

  /** The admin that took the fire over from `peerId`, once one did. */
  function takenOverFrom(peerId: string, fireId: string): Promise<string | null> {
    return waitFor(
      async () => {
        const owner = await claimedBy(fireId);
        return owner !== peerId ? owner : undefined;
      },
      { what: `the fire to be taken over from ${peerId}` },
    );
  }

  it('keeps the fires of a peer whose lease lapsed while its connection holds the lock, until the connection goes', async () => {
    const { liveness, fireId } = await peerWithFire('slow-peer');
    await lapse('slow-peer', 1_000);
    // Several of the running admin's reclaim passes (every 500 ms).
    await new Promise(resolve => setTimeout(resolve, 2_000));
    expect(await claimedBy(fireId)).toBe('slow-peer');

    // Its connection closes, as a crashed process's does: the fire is taken over.
    await liveness.destroy();
    sessions.splice(sessions.indexOf(liveness), 1);
    expect(await takenOverFrom('slow-peer', fireId)).toBe(admin.app.config.adminInstanceId);
  }, 60_000);

  it('takes over the fires of a peer whose lease lapsed beyond the grace period, lock or not', async () => {
    const { fireId } = await peerWithFire('stuck-peer');
    await lapse('stuck-peer', 11_000);
    expect(await takenOverFrom('stuck-peer', fireId)).toBe(admin.app.config.adminInstanceId);
  }, 60_000);
});
