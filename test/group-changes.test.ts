import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import { AddressType } from '@jobstream/proto/admin';
import { finishedLog, startTestAdmin, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';

/**
 * The dispatcher keeps a copy of each executor group for up to a second (every fire reads
 * its group). What an operator observes: a change to a group applies to every trigger made
 * a second after it, however busy the group is.
 */
describe('changes to an executor group, while it is in use', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  const executors: Executor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
  });

  afterAll(async () => {
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await database?.drop();
  });

  it('route every trigger made a second after the change by the changed group', async () => {
    const { client } = admin;
    const { groupId, token } = await createGroup(client, 'switching');
    for (const instanceName of ['switching-a', 'switching-b']) {
      executors.push(
        await startFixtureExecutor({
          adminAddresses: [admin.address],
          appName: 'switching',
          accessToken: token,
          instanceName,
        }),
      );
    }
    const useOnly = (instanceName: string) =>
      client.updateExecutorGroup({
        id: groupId,
        spec: {
          appName: 'switching',
          title: 'switching',
          addressType: AddressType.ADDRESS_TYPE_MANUAL,
          addresses: [instanceName],
        },
        updateMask: ['address_type', 'addresses'],
      });
    await useOnly('switching-a');
    const jobId = await createJob(client, groupId, 'echo');
    const trigger = async (): Promise<string> => {
      const { logIds } = await client.triggerJob({ jobId });
      return (await finishedLog(client, logIds[0]!)).executorInstance;
    };

    // In use for longer than the copy is kept: triggers all along.
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      expect(await trigger()).toBe('switching-a');
      await sleep(50);
    }
    await useOnly('switching-b');
    const changedAt = Date.now();
    const routedTo: { afterMs: number; instance: string }[] = [];
    while (Date.now() - changedAt < 2_500) {
      const afterMs = Date.now() - changedAt;
      routedTo.push({ afterMs, instance: await trigger() });
      await sleep(50);
    }
    const late = routedTo.filter(route => route.afterMs >= 1_000);
    expect(late.length).toBeGreaterThan(0);
    expect(late.filter(route => route.instance !== 'switching-b')).toEqual([]);
  });
});
