import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AdminMessage, RunRequest, RunResult } from '@jobstream/proto/executor';
import { ScheduleType, RunOutcome } from '@jobstream/proto/types';
import { Executor } from '../executor-sdk/src/index.js';
import { startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Protocol 3's start_at: a scheduled fire routed ahead goes to an executor that holds
 * requests until their start a few tens of milliseconds early, so that its start waits
 * for nothing on the admin; every other executor still gets it at its time.
 */
describe('run requests sent ahead of their time (protocol 3, start_at)', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let client: AdminClient;
  const raws: RawExecutor[] = [];
  const executors: Executor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
  });

  afterEach(async () => {
    await Promise.all(raws.splice(0).map(raw => raw.close()));
    await Promise.all(executors.splice(0).map(executor => executor.stop()));
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  /** Run requests as they arrived, unpacked from batches, with their arrival times. */
  function arrivals(raw: RawExecutor): { request: RunRequest; at: number }[] {
    return raw.received.flatMap((message: AdminMessage, index) => {
      const at = raw.receivedAt[index]!;
      const kind = message.kind;
      if (kind?.$case === 'runRequest') return [{ request: kind.value, at }];
      if (kind?.$case === 'batch') return kind.value.runRequests.map(request => ({ request, at }));
      return [];
    });
  }

  /** Accepts every request and reports it succeeded, as a raw executor has to. */
  function answerAll(raw: RawExecutor, answered: Set<string>): void {
    for (const { request } of arrivals(raw)) {
      if (answered.has(request.logId)) continue;
      answered.add(request.logId);
      raw.send({
        kind: {
          $case: 'reply',
          value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
      const result: RunResult = {
        logId: request.logId,
        attempt: request.attempt,
        outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
        message: '',
        startedAt: new Date(),
        finishedAt: new Date(),
      };
      raw.send({ kind: { $case: 'runResult', value: result } });
    }
  }

  async function everySecondJob(appName: string, handler: string): Promise<{ jobId: string; token: string }> {
    const { groupId, token } = await createGroup(client, appName);
    const jobId = await createJob(client, groupId, handler, {
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
      scheduleConf: '1',
    });
    return { jobId, token };
  }

  it('sends a protocol-3 executor its scheduled runs ahead with start_at and sent_at, and a protocol-2 executor its runs at their time without them', async () => {
    const ahead = await everySecondJob('ahead-3', 'echo');
    const atTime = await everySecondJob('at-time-2', 'echo');
    const speaks3 = new RawExecutor(admin.address, ahead.token);
    const speaks2 = new RawExecutor(admin.address, atTime.token);
    raws.push(speaks3, speaks2);
    speaks3.register({ appName: 'ahead-3', instanceName: 'speaks-3', capacity: 10, protocolVersion: 3 });
    speaks2.register({ appName: 'at-time-2', instanceName: 'speaks-2', capacity: 10, protocolVersion: 2 });
    speaks3.keepBeating(500);
    speaks2.keepBeating(500);
    await speaks3.next('welcome');
    await speaks2.next('welcome');
    await client.startJob({ id: ahead.jobId });
    await client.startJob({ id: atTime.jobId });

    const answered = new Set<string>();
    await waitFor(
      () => {
        answerAll(speaks3, answered);
        answerAll(speaks2, answered);
        return arrivals(speaks3).length >= 3 && arrivals(speaks2).length >= 3 ? true : undefined;
      },
      { what: 'three scheduled runs on each executor', timeoutMs: 15_000 },
    );
    await client.stopJob({ id: ahead.jobId });
    await client.stopJob({ id: atTime.jobId });

    const sentAhead = arrivals(speaks3);
    for (const { request, at } of sentAhead) {
      expect(request.startAt?.getTime()).toBe(request.scheduledAt!.getTime());
      expect(request.sentAt).toBeInstanceOf(Date);
      expect(request.sentAt!.getTime()).toBeLessThanOrEqual(at);
    }
    // Taken 50 ms ahead of their time and sent then: at least one of them arrived early
    // even on a busy machine (each would have to be 40 ms late for none to).
    expect(sentAhead.some(({ request, at }) => at < request.scheduledAt!.getTime())).toBe(true);

    for (const { request, at } of arrivals(speaks2)) {
      expect(request.startAt).toBeUndefined();
      expect(request.sentAt).toBeUndefined();
      // Sent when its time came (the send timer's clock may differ from Date.now() by a
      // millisecond), never the tens of milliseconds ahead that a protocol-3 request is.
      expect(at).toBeGreaterThanOrEqual(request.scheduledAt!.getTime() - 2);
    }
  });

  it('the SDK (protocol 3) starts a run sent ahead at its time, never before, and the log says it was triggered then', async () => {
    const { jobId, token } = await everySecondJob('sdk-ahead', 'note-start');
    const starts: { scheduledAt: number; startedAt: number; logId: string }[] = [];
    const executor = new Executor({
      adminAddresses: [admin.address],
      appName: 'sdk-ahead',
      accessToken: token,
      instanceName: 'sdk-ahead-1',
      dataDir: await tempDir('sdk-ahead'),
    });
    executors.push(executor);
    executor.register('note-start', ctx => {
      starts.push({ scheduledAt: ctx.scheduledAt!.getTime(), startedAt: Date.now(), logId: ctx.logId });
    });
    await executor.start();
    await client.startJob({ id: jobId });
    await waitFor(() => (starts.length >= 3 ? true : undefined), {
      what: 'three scheduled runs',
      timeoutMs: 15_000,
    });
    await client.stopJob({ id: jobId });

    for (const start of starts) expect(start.startedAt).toBeGreaterThanOrEqual(start.scheduledAt);
    const logs = await Promise.all(starts.map(start => client.getLog({ id: start.logId })));
    for (const { log } of logs) {
      expect(log!.triggeredAt!.getTime()).toBeGreaterThanOrEqual(log!.scheduledAt!.getTime());
    }
  });
});
