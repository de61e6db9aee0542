import { Status } from 'nice-grpc';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LogStatus } from '@jobstream/proto/admin';
import type { AdminMessage, RunRequest, RunResult } from '@jobstream/proto/executor';
import { RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Protocol 2's batched envelopes: an admin packs the run requests and acknowledgements of
 * one write turn into AdminBatch for executors that registered with protocol_version 2,
 * reads ExecutorBatch from them, and keeps speaking single messages to protocol 1.
 */
describe('batched envelopes (protocol 2) next to single messages (protocol 1)', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let client: AdminClient;
  let groupId: string;
  let token: string;
  const raws: RawExecutor[] = [];

  function connect(instanceName: string, protocolVersion: number): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'batched', instanceName, capacity: 200, protocolVersion });
    raw.keepBeating(500);
    return raw;
  }

  /** Every run request the executor received, unpacked from batches, in order. */
  function runRequests(raw: RawExecutor): RunRequest[] {
    return raw.received.flatMap((message: AdminMessage) => {
      const kind = message.kind;
      if (kind?.$case === 'runRequest') return [kind.value];
      if (kind?.$case === 'batch') return kind.value.runRequests;
      return [];
    });
  }

  /** Every run acknowledged to the executor, from ResultAck messages and batches. */
  function acknowledged(raw: RawExecutor): string[] {
    return raw.received.flatMap((message: AdminMessage) => {
      const kind = message.kind;
      const ack =
        kind?.$case === 'resultAck' ? kind.value : kind?.$case === 'batch' ? kind.value.resultAck : undefined;
      return (ack?.results ?? []).map(run => run.logId);
    });
  }

  function succeeded(request: RunRequest): RunResult {
    return {
      logId: request.logId,
      attempt: request.attempt,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: `done ${request.param}`,
      startedAt: new Date(Date.now() - 5),
      finishedAt: new Date(),
    };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
    ({ groupId, token } = await createGroup(client, 'batched'));
  });

  afterEach(async () => {
    await Promise.all(raws.splice(0).map(raw => raw.close()));
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it('sends a protocol-2 executor its runs in batches, reads its batched answers, and still speaks single messages to protocol 1', async () => {
    const batched = connect('speaks-2', 2);
    const single = connect('speaks-1', 1);
    await batched.next('welcome');
    await single.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND,
    });
    const params = Array.from({ length: 120 }, (_, index) => `item-${index}`);
    const call = client.triggerJobRuns({ jobId, runs: params.map(param => ({ param })) });

    // The protocol-2 executor answers everything it has in one ExecutorBatch per turn of
    // the test; the protocol-1 executor one Reply and one RunResult message per run.
    const answered = new Set<string>();
    await waitFor(
      () => {
        const fresh = runRequests(batched).filter(request => !answered.has(request.logId));
        if (fresh.length > 0) {
          for (const request of fresh) answered.add(request.logId);
          batched.send({
            kind: {
              $case: 'batch',
              value: {
                replies: fresh.map(request => ({
                  requestId: request.requestId,
                  accepted: true,
                  rejectReason: 0,
                  message: '',
                })),
                runResults: fresh.map(succeeded),
              },
            },
          });
        }
        for (const request of runRequests(single).filter(request => !answered.has(request.logId))) {
          answered.add(request.logId);
          single.send({
            kind: {
              $case: 'reply',
              value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
            },
          });
          single.send({ kind: { $case: 'runResult', value: succeeded(request) } });
        }
        return answered.size === params.length ? true : undefined;
      },
      { what: 'every run request answered' },
    );
    await call;

    // Both executors got work; only the protocol-2 one ever saw a batch, and it saw
    // several runs in one message.
    const batchSizes = batched.received.flatMap(message =>
      message.kind?.$case === 'batch' ? [message.kind.value.runRequests.length] : [],
    );
    expect(Math.max(0, ...batchSizes)).toBeGreaterThan(1);
    expect(runRequests(single).length).toBeGreaterThan(0);
    expect(single.count('batch')).toBe(0);
    expect(runRequests(batched).length + runRequests(single).length).toBe(params.length);

    // Every result stored once, and acknowledged to the executor that sent it.
    await waitFor(
      async () => {
        const { logs } = await client.listLogs({ jobId, pageSize: 200 });
        return logs.length === params.length &&
          logs.every(log => log.status === LogStatus.LOG_STATUS_SUCCEEDED)
          ? logs
          : undefined;
      },
      { what: 'every run to succeed' },
    );
    await waitFor(
      () =>
        acknowledged(batched).length === runRequests(batched).length &&
        acknowledged(single).length === runRequests(single).length
          ? true
          : undefined,
      { what: 'every result acknowledged' },
    );
    expect(new Set(acknowledged(batched))).toEqual(new Set(runRequests(batched).map(r => r.logId)));
    expect(new Set(acknowledged(single))).toEqual(new Set(runRequests(single).map(r => r.logId)));
  });

  it('refuses a protocol version it does not speak, naming the field', async () => {
    const raw = connect('speaks-4', 4);
    await expect(raw.next('welcome')).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('register.protocol_version 4') as unknown,
    });
  });

  it('ends the stream of an executor sending a batch over the item limit', async () => {
    const raw = connect('oversized', 2);
    await raw.next('welcome');
    const result = {
      logId: '1',
      attempt: 1,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: '',
      startedAt: new Date(),
      finishedAt: new Date(),
    };
    raw.send({
      kind: { $case: 'batch', value: { replies: [], runResults: Array.from({ length: 600 }, () => result) } },
    });
    await raw.done;
    expect(raw.error).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('batch carries 600 items') as unknown,
    });
  });
});
