import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutorSession } from '../admin/src/executors/executor-session.js';
import type { Executor } from '../executor-sdk/src/index.js';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, startFixtureExecutor } from './support/fixtures.js';

/**
 * An executor's presence row can vanish while its stream lives (it expired and was swept
 * while the database was unreachable, as after a PostgreSQL restart); the next beat puts
 * it back. Beats are handled concurrently, so a slow database lets two beats of one
 * session both find the row missing and both put it back. The second one used to take
 * the first one's row for a newer session's and close the live stream: every run on it
 * in doubt, its results re-sent on a new stream. The overlap is made deterministic here:
 * an uncommitted row of the same instance holds both beats' inserts until both wait.
 */

const BEAT_MS = 500;

describe('a presence row put back by overlapping beats', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let admin: TestAdmin;
  const executors: Executor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 3 });
    // An idle connection the server ends (a restart, a forced drop) must not become an
    // unhandled error of the test run; the next query opens a new one.
    pool.on('error', () => undefined);
    admin = await startTestAdmin(database.url, { beatIntervalMs: BEAT_MS });
  });

  afterAll(async () => {
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await pool?.end();
    await database?.drop();
  });

  /** Backends of this database waiting on a lock to insert into the registry. */
  async function insertsWaiting(): Promise<number> {
    const { rows } = await pool.query<{ waiting: number }>(
      `select count(*)::int as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'
          and query like 'insert into "executor_registry"%'`,
    );
    return rows[0]!.waiting;
  }

  /** The executor's open stream on the admin, with its presence row written. */
  async function liveSession(appName: string): Promise<ExecutorSession> {
    return waitFor(
      async () => {
        const [session] = admin.app.sessions.list(appName);
        if (!session || session.isClosed) return undefined;
        const { rows } = await pool.query('select 1 from executor_registry where session_id = $1', [
          session.sessionId,
        ]);
        return rows.length > 0 ? session : undefined;
      },
      { timeoutMs: 20_000, what: `the stream of ${appName}` },
    );
  }

  /**
   * Removes the instance's row (as a sweep does), then holds an uncommitted row of the same
   * instance under another session id until two beats wait to put their row back, and
   * ends that transaction with `end`. Returns when it ended.
   */
  async function holdRestores(appName: string, end: 'rollback' | 'commit'): Promise<Date> {
    const blocker = await pool.connect();
    try {
      await blocker.query(`create temp table saved as select * from executor_registry where app_name = $1`, [
        appName,
      ]);
      await blocker.query(`delete from executor_registry where app_name = $1`, [appName]);
      // Beats find no row of their session (the uncommitted one is not visible), and
      // their inserts wait on it until two of them are waiting.
      await blocker.query('begin');
      await blocker.query(`update saved set session_id = 'another-session'`);
      await blocker.query('insert into executor_registry select * from saved');
      await waitFor(async () => ((await insertsWaiting()) >= 2 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 20,
        what: 'two beats putting the row back at once',
      });
      await blocker.query(end);
      await blocker.query('drop table saved');
    } finally {
      blocker.release();
    }
    return new Date();
  }

  it('keeps the live stream: both beats put back the same session', async () => {
    const { token } = await createGroup(admin.client, 'restore');
    executors.push(
      await startFixtureExecutor({
        adminAddresses: [admin.address],
        appName: 'restore',
        accessToken: token,
        instanceName: 'restore-1',
      }),
    );
    const session = await liveSession('restore');
    const sessionId = session.sessionId;

    const releasedAt = await holdRestores('restore', 'rollback');

    // Beats after the release are written: the row is current again.
    const row = await waitFor(
      async () => {
        const { rows } = await pool.query<{ session_id: string; last_beat_at: Date }>(
          `select session_id, last_beat_at from executor_registry where app_name = 'restore'`,
        );
        const current = rows[0];
        return current && current.last_beat_at.getTime() > releasedAt.getTime() + 2 * BEAT_MS
          ? current
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50, what: 'beats written after the release' },
    );
    expect(row.session_id, 'the session listed in the registry').toBe(sessionId);
    expect(session.endedByAdmin, 'why the admin closed the stream').toBeUndefined();
    expect(session.isClosed, 'the stream was closed').toBe(false);
    expect(admin.app.sessions.list('restore').map(live => live.sessionId)).toEqual([sessionId]);
  }, 120_000);

  it('still closes the stream when another session of the instance put its row in first', async () => {
    const { token } = await createGroup(admin.client, 'takeover');
    executors.push(
      await startFixtureExecutor({
        adminAddresses: [admin.address],
        appName: 'takeover',
        accessToken: token,
        instanceName: 'takeover-1',
      }),
    );
    const session = await liveSession('takeover');

    await holdRestores('takeover', 'commit');

    await waitFor(() => (session.isClosed ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the stream whose row another session holds to be closed',
    });
    expect(session.endedByAdmin).toBe('presence row taken over by a newer session of the same instance name');
  }, 120_000);
});
