import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { removePresence, upsertPresence } from '../admin/src/db/registry.repository.js';
import { renewAdminLease } from '../admin/src/db/scheduler.repository.js';
import type { ExecutorPresence } from '../admin/src/domain.js';
import { ExecutorDirectory } from '../admin/src/executors/executor-directory.js';
import { SessionRegistry } from '../admin/src/executors/session-registry.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const TTL_MS = 50;

/**
 * Routing reads the executors connected to other admins from the shared registry, kept
 * for a TTL. Past it, the whole group is routed over the view a moment older while it is
 * read again (no fire waits for the read), but a group that had no executor in it waits
 * for the read: an executor that just connected through a peer is not missed.
 */
describe('ExecutorDirectory: the view of executors connected to other admins', () => {
  let database: TestDatabase;
  let db: Db;
  let directory: ExecutorDirectory;

  function presence(appName: string, instanceName: string): ExecutorPresence {
    const now = new Date();
    return {
      appName,
      instanceName,
      sessionId: `session-${instanceName}`,
      adminInstanceId: 'peer-admin',
      hostname: 'host',
      pid: 1,
      sdkName: 'test',
      sdkVersion: '0',
      handlers: ['echo'],
      capacity: 16,
      labels: {},
      connectedAt: now,
      lastBeatAt: now,
      runningCount: 0,
      queuedCount: 0,
      unresponsiveLogIds: [],
      eventLoopLagMs: 0,
      scriptKinds: [],
    };
  }

  const names = (list: readonly { instanceName: string }[]) => list.map(handle => handle.instanceName);

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 2 });
    await renewAdminLease(db, 'peer-admin', '127.0.0.1:1', 600_000);
    directory = new ExecutorDirectory({
      db,
      sessions: new SessionRegistry(),
      adminInstanceId: 'this-admin',
      peerToken: 'token',
      cacheTtlMs: TTL_MS,
    });
  });

  afterAll(async () => {
    directory?.close();
    await db?.destroy();
    await database?.drop();
  });

  it('finds an executor that connected through a peer after the group was seen empty', async () => {
    expect(names(await directory.candidates('orders', true))).toEqual([]);
    await upsertPresence(db, presence('orders', 'orders-1'), new Date(Date.now() + 600_000));
    await sleep(3 * TTL_MS);
    expect(names(await directory.candidates('orders', true))).toEqual(['orders-1']);
  });

  it('routes over the previous view without waiting while the registry is read again', async () => {
    await upsertPresence(db, presence('billing', 'billing-1'), new Date(Date.now() + 600_000));
    await sleep(3 * TTL_MS);
    expect(names(await directory.candidates('billing'))).toEqual(['billing-1']);
    const readAt = Date.now();
    await removePresence(db, 'session-billing-1');
    await sleep(3 * TTL_MS);

    const stale = directory.candidates('billing', true);
    // Past the TTL but well within the staleness allowed: the list is at hand, no promise.
    expect(Date.now() - readAt).toBeLessThan(1_500);
    expect(stale).not.toBeInstanceOf(Promise);
    expect(names(await stale)).toEqual(['billing-1']);

    // Meanwhile the registry was read again, and the next route sees the executor gone.
    await expect.poll(async () => names(await directory.candidates('billing', true))).toEqual([]);
  });

  it('gives a caller that does not allow it (one naming executors) no view older than the TTL', async () => {
    await upsertPresence(db, presence('reports', 'reports-1'), new Date(Date.now() + 600_000));
    await sleep(3 * TTL_MS);
    expect(names(await directory.candidates('reports'))).toEqual(['reports-1']);
    await removePresence(db, 'session-reports-1');
    await upsertPresence(db, presence('reports', 'reports-2'), new Date(Date.now() + 600_000));
    await sleep(3 * TTL_MS);
    expect(names(await directory.candidates('reports'))).toEqual(['reports-2']);
  });
});
