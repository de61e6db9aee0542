import { Status } from 'nice-grpc';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAdmin, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';

/**
 * A database connection that goes away (the server restarted, or an operator terminated
 * the backend) is the database being unavailable, not a bug in the admin: callers get
 * UNAVAILABLE, which gRPC clients know to retry, never INTERNAL.
 */
describe('database connections that go away', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let sql: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  });

  afterAll(async () => {
    await sql?.end();
    await admin?.stop();
    await database?.drop();
  });

  it('answer UNAVAILABLE or the result, never INTERNAL', async () => {
    const { groupId } = await createGroup(admin.client, 'terminated');
    const jobId = await createJob(admin.client, groupId, 'echo');
    const codes = new Map<string, number>();
    for (let round = 0; round < 5; round += 1) {
      // Every pooled connection of the admin is cut while idle, as a restart would.
      await sql.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()`,
      );
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, () => admin.client.getJob({ id: jobId })),
      );
      for (const outcome of outcomes) {
        const code =
          outcome.status === 'fulfilled' ? 'OK' : (Status[(outcome.reason as { code: Status }).code] ?? '?');
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    expect([...codes.keys()].filter(code => code !== 'OK' && code !== 'UNAVAILABLE')).toEqual([]);
    // The admin recovers at once: the next calls get fresh connections.
    await expect(admin.client.getJob({ id: jobId })).resolves.toMatchObject({ job: { id: jobId } });
  });
});
