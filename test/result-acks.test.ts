import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunOutcome } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Results stored in one commit are acknowledged in one ResultAck: a message per result
 * doubled the messages on the stream per run (fast-path notes: the per-message cost is
 * the wall), for no information the executor needs.
 */
describe('result acknowledgements', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let raw: RawExecutor;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
  });

  afterAll(async () => {
    await raw?.close();
    await admin?.stop();
    await database?.drop();
  });

  it('acknowledge every result once, many per message', async () => {
    const { groupId, token } = await createGroup(admin.client, 'acks');
    raw = new RawExecutor(admin.address, token);
    raw.register({ appName: 'acks', instanceName: 'acks-1', capacity: 1_000 });
    raw.keepBeating(500);
    await raw.next('welcome');
    const jobIds = await Promise.all(
      Array.from({ length: 20 }, () => createJob(admin.client, groupId, 'echo')),
    );
    const runs = 200;
    const triggered = Promise.all(
      jobIds.map(jobId =>
        admin.client.triggerJobRuns({ jobId, runs: Array.from({ length: runs / 20 }, () => ({})) }),
      ),
    );
    const requests = await waitFor(
      () => {
        const received = raw.received.flatMap(message =>
          message.kind?.$case === 'runRequest' ? [message.kind.value] : [],
        );
        return received.length >= runs ? received : undefined;
      },
      { what: 'every run request' },
    );
    for (const request of requests) {
      raw.send({
        kind: {
          $case: 'reply',
          value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
    }
    await triggered;
    // Every run ends at once, as a busy executor's results come.
    for (const request of requests) {
      raw.send({
        kind: {
          $case: 'runResult',
          value: {
            logId: request.logId,
            attempt: request.attempt,
            outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
            message: 'done',
            startedAt: new Date(Date.now() - 5),
            finishedAt: new Date(),
          },
        },
      });
    }
    const acks = await waitFor(
      () => {
        const received = raw.received.flatMap(message =>
          message.kind?.$case === 'resultAck' ? [message.kind.value] : [],
        );
        return received.reduce((sum, ack) => sum + ack.results.length, 0) >= runs ? received : undefined;
      },
      { what: 'every result to be acknowledged' },
    );
    const acknowledged = acks.flatMap(ack => ack.results.map(ref => `${ref.logId}/${ref.attempt}`));
    expect(acknowledged.sort()).toEqual(
      requests.map(request => `${request.logId}/${request.attempt}`).sort(),
    );
    expect(acks.every(ack => ack.refused.length === 0)).toBe(true);
    // One message per commit of the admin's result writer, not one per result.
    expect(acks.length).toBeLessThan(runs / 4);
  });
});
