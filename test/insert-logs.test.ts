import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { insertGroup } from '../admin/src/db/groups.repository.js';
import { insertJob } from '../admin/src/db/jobs.repository.js';
import { findLogById, insertLogs, type NewTriggerLog } from '../admin/src/db/logs.repository.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { storedJobSpec } from './support/fixtures.js';

/**
 * insertLogs reads back only the new rows' ids and builds the rest from what it sent and
 * the columns' defaults: each log it returns must be the row as stored, in the order given.
 */
describe('insertLogs', () => {
  let database: TestDatabase;
  let db: Db;
  let jobId: string;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 2 });
    const group = await insertGroup(
      db,
      { appName: 'inserts', title: 'inserts', addressType: 'AUTO', addresses: [], scriptKinds: [] },
      'x',
    );
    groupId = group.id;
    jobId = (await insertJob(db, storedJobSpec(group.id, { description: 'inserted logs' }))).id;
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it('returns each log as the row stored, defaults included, in the order given', async () => {
    const base: NewTriggerLog = {
      jobId,
      groupId,
      triggerType: 'MANUAL',
      handler: 'echo',
      param: 'first',
      shardIndex: 0,
      shardTotal: 1,
      retryOfLogId: null,
      scheduledAt: new Date('2026-12-08T01:02:03.456Z'),
      triggeredAt: new Date('2026-12-08T01:02:03.789Z'),
    };
    const [root] = await insertLogs(db, [base]);
    const batch: NewTriggerLog[] = [
      {
        ...base,
        param: 'named executor',
        sendingTo: { executorInstance: 'exec-1', executorSessionId: 'session-1', executorProcess: 'host/1' },
      },
      { ...base, triggerType: 'RETRY', param: 'a retry', retryOfLogId: root!.id },
      { ...base, param: 'shard 2 of 3', shardIndex: 2, shardTotal: 3, broadcastRootId: root!.id },
      ...Array.from({ length: 50 }, (_, index) => ({ ...base, param: `run ${index}` })),
    ];
    const inserted = await insertLogs(db, batch);
    expect(inserted.map(log => log.param)).toEqual(batch.map(log => log.param));
    for (const log of [root!, ...inserted]) expect(await findLogById(db, log.id)).toEqual(log);
    const ids = inserted.map(log => BigInt(log.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
  });
});
