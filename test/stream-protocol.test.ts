import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, LogStatus } from '@jobstream/proto/admin';
import { RunOutcome } from '@jobstream/proto/types';
import { finishedLog, startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

const DEADLINE_MS = 400;

describe('the executor stream protocol, admin side', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let groupId: string;
  let token: string;
  const raws: RawExecutor[] = [];

  function connect(instanceName: string, capacity = 4): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'stream', instanceName, capacity });
    return raw;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { requestDeadlineMs: DEADLINE_MS });
    client = admin.client;
    ({ groupId, token } = await createGroup(client, 'stream'));
  });

  afterAll(async () => {
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await database?.drop();
  });

  it('sends a run request again on the executor’s new stream when its stream breaks mid-request', async () => {
    const patient = await startTestAdmin(database.url, { requestDeadlineMs: 5_000 });
    try {
      const { groupId: resendGroup, token: resendToken } = await createGroup(patient.client, 'resend');
      const first = new RawExecutor(patient.address, resendToken);
      raws.push(first);
      first.register({ appName: 'resend', instanceName: 'mover' });
      await first.next('welcome');
      const jobId = await createJob(patient.client, resendGroup, 'echo');
      const triggered = patient.client.triggerJob({ jobId });
      const request = await first.next('runRequest');
      // The stream breaks before the executor answers; the executor comes back at once.
      await first.close();
      const second = new RawExecutor(patient.address, resendToken);
      raws.push(second);
      second.register({ appName: 'resend', instanceName: 'mover' });
      const again = await second.next('runRequest');
      expect({ logId: again.logId, attempt: again.attempt }).toEqual({
        logId: request.logId,
        attempt: request.attempt,
      });
      // A fresh deadline: the first request may never have arrived.
      expect(again.answerBy!.getTime()).toBeGreaterThanOrEqual(request.answerBy!.getTime());
      second.send({
        kind: {
          $case: 'reply',
          value: { requestId: again.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
      const { logIds } = await triggered;
      const log = await waitFor(async () => {
        const { log } = await patient.client.getLog({ id: logIds[0]! });
        return log?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      });
      expect(log).toMatchObject({ executorInstance: 'mover' });
      expect(log.triggerMessage).toMatch(/accepted by mover/);
      expect(second.count('runRequest')).toBe(1);
    } finally {
      await patient.stop();
    }
  });

  it('welcomes a registered executor with a session id and the beat interval', async () => {
    const raw = connect('welcome-1');
    const welcome = await raw.next('welcome');
    expect(welcome.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(welcome.beatInterval).toEqual({ seconds: '2', nanos: 0 });
    expect(welcome.serverTime).toBeInstanceOf(Date);
    await raw.close();
    await waitFor(async () =>
      (await client.listExecutors({ appName: 'stream' })).executors.length === 0 ? true : undefined,
    );
  });

  it('holds a run request the executor does not answer in doubt and ends its stream', async () => {
    const raw = connect('silent-1');
    await raw.next('welcome');
    const jobId = await createJob(client, groupId, 'echo');
    const { logIds } = await client.triggerJob({ jobId });
    const request = await raw.next('runRequest');
    expect(request.logId).toBe(logIds[0]);
    // The executor may have the run: never FAILED (and retried) on a guess.
    const { log } = await client.getLog({ id: logIds[0]! });
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_RUNNING,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_PENDING,
      executorInstance: 'silent-1',
    });
    expect(log!.triggerMessage).toContain(
      `in doubt: executor silent-1 did not answer within ${DEADLINE_MS} ms`,
    );
    // Ended by the admin, so that the executor reconnects and says what it has.
    await raw.done;
    expect(String(raw.error)).toContain('no answer to run request');
  });

  it("never gives an executor more runs than its capacity: the next goes out at the first one's result", async () => {
    const raw = connect('narrow-1', 1);
    await raw.next('welcome');
    const jobId = await createJob(client, groupId, 'echo');
    const first = client.triggerJob({ jobId });
    const second = client.triggerJob({ jobId });
    const request = await raw.next('runRequest');
    await new Promise(resolve => setTimeout(resolve, 150));
    expect(raw.count('runRequest')).toBe(1);
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    // Accepted, the run holds the executor's one slot until its result.
    await new Promise(resolve => setTimeout(resolve, 150));
    expect(raw.count('runRequest')).toBe(1);
    raw.send({
      kind: {
        $case: 'runResult',
        value: {
          logId: request.logId,
          attempt: request.attempt,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'first done',
          startedAt: new Date(Date.now() - 10),
          finishedAt: new Date(),
        },
      },
    });
    const secondRequest = await raw.next('runRequest', 2);
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: secondRequest.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    const triggered = (await Promise.all([first, second])).map(({ logIds }) => logIds[0]);
    expect(triggered.sort()).toEqual([request.logId, secondRequest.logId].sort());
    const firstLog = await finishedLog(client, request.logId);
    expect(firstLog).toMatchObject({
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
    });
    // The second run's acceptance waits for its result; without one it is stored on its own
    // once the hold ends. Meanwhile its log already names the executor it went to.
    const { log: sent } = await client.getLog({ id: secondRequest.logId });
    expect(sent!.executorInstance).toBe('narrow-1');
    await waitFor(
      async () => {
        const { log } = await client.getLog({ id: secondRequest.logId });
        return log!.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      },
      { what: "the second run's acceptance to be stored" },
    );
    await raw.close();
  });

  it('applies a result once per (log, attempt) and acknowledges duplicates too', async () => {
    const raw = connect('results-1');
    await raw.next('welcome');
    const jobId = await createJob(client, groupId, 'echo');
    const triggered = client.triggerJob({ jobId });
    const request = await raw.next('runRequest');
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    await triggered;
    const result = (message: string) => ({
      kind: {
        $case: 'runResult' as const,
        value: {
          logId: request.logId,
          attempt: request.attempt,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message,
          startedAt: new Date(Date.now() - 10),
          finishedAt: new Date(),
        },
      },
    });
    raw.send(result('first delivery'));
    const ack = await raw.next('resultAck');
    expect(ack.results).toEqual([{ logId: request.logId, attempt: request.attempt }]);
    raw.send(result('duplicate delivery'));
    await raw.next('resultAck', 2);
    const { log } = await client.getLog({ id: request.logId });
    expect(log!.handleMessage).toBe('first delivery');
    expect(log!.outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
    await raw.close();
  });

  it('fences presence by session: a replaced stream closing never removes the newer session', async () => {
    const older = connect('twin-1');
    const olderWelcome = await older.next('welcome');
    const newer = connect('twin-1');
    const newerWelcome = await newer.next('welcome');
    expect(newerWelcome.sessionId).not.toBe(olderWelcome.sessionId);
    await older.done; // the admin ends the replaced stream
    await new Promise(resolve => setTimeout(resolve, 200));
    const { executors } = await client.listExecutors({ appName: 'stream' });
    const twins = executors.filter(executor => executor.instanceName === 'twin-1');
    expect(twins).toHaveLength(1);
    expect(twins[0]!.sessionId).toBe(newerWelcome.sessionId);
    await newer.close();
  });

  it("shows an executor's load and event-loop lag from its beats in ListExecutors", async () => {
    const raw = connect('lagging-1');
    await raw.next('welcome');
    const beat = (eventLoopLagMs: number) =>
      raw.send({
        kind: {
          $case: 'beat',
          value: {
            runningCount: 2,
            queuedCount: 5,
            eventLoopLagMs,
            sentAt: new Date(),
            unresponsiveRuns: [],
          },
        },
      });
    const listed = await waitFor(
      async () => {
        // Beats refresh the registry at most every half beat interval: keep beating.
        beat(137);
        const { executors } = await client.listExecutors({ appName: 'stream' });
        const executor = executors.find(candidate => candidate.instanceName === 'lagging-1');
        return executor?.eventLoopLagMs === 137 ? executor : undefined;
      },
      { what: 'the beat to reach the registry', intervalMs: 200 },
    );
    expect(listed).toMatchObject({ runningCount: 2, queuedCount: 5, eventLoopLagMs: 137 });
    await raw.close();
  });

  it('removes presence as soon as a stream ends', async () => {
    const raw = connect('leaver-1');
    await raw.next('welcome');
    expect((await client.listExecutors({ appName: 'stream' })).executors.map(e => e.instanceName)).toContain(
      'leaver-1',
    );
    raw.end();
    await raw.done;
    await waitFor(
      async () => {
        const { executors } = await client.listExecutors({ appName: 'stream' });
        return executors.some(executor => executor.instanceName === 'leaver-1') ? undefined : true;
      },
      { what: 'presence removal' },
    );
  });
});
