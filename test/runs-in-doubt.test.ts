import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, LogStatus } from '@jobstream/proto/admin';
import type { RunRequest } from '@jobstream/proto/executor';
import { RunOutcome, ScheduleType } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Tests hold replies for part of it and then count on them arriving in time: at 400 ms (as
 * it was) a loaded machine delivered a reply held for 300 ms after the deadline.
 */
const DEADLINE_MS = 4_000;
const FAILURE_MONITOR_INTERVAL_MS = 50;
/**
 * Executors that come back reconnect well within it even on a loaded machine (at 1 s they
 * did not, and runs in doubt were rightly declared lost); one that never comes back is
 * declared lost after it.
 */
const LOST_RUN_GRACE_MS = 15_000;

/**
 * A run request that reached the executor but whose reply did not reach the admin in
 * time is in doubt: the executor may be running it. It must never be recorded FAILED
 * (and retried) while the executor runs it, nor be run twice; the executor's next stream
 * settles it.
 */
describe('run requests in doubt', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let groupId: string;
  let token: string;
  const raws: RawExecutor[] = [];

  function connect(
    instanceName: string,
    running: { logId: string; attempt: number }[] = [],
    capacity = 4,
    pid = 0,
  ): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'doubt', instanceName, running, capacity, hostname: 'doubt-host', pid });
    // Beats keep the admin from closing a stream for silence while the test holds a reply.
    raw.keepBeating(100);
    return raw;
  }

  function accept(raw: RawExecutor, request: RunRequest): void {
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
  }

  function succeed(raw: RawExecutor, request: RunRequest, message: string): void {
    raw.send({
      kind: {
        $case: 'runResult',
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
  }

  /** Every log of the job, after the failure monitor had many chances to retry one. */
  async function logsOfJob(jobId: string) {
    await new Promise(resolve => setTimeout(resolve, 20 * FAILURE_MONITOR_INTERVAL_MS));
    return (await client.listLogs({ jobId, pageSize: 100 })).logs;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, {
      requestDeadlineMs: DEADLINE_MS,
      failureMonitorIntervalMs: FAILURE_MONITOR_INTERVAL_MS,
      lostRunGraceMs: LOST_RUN_GRACE_MS,
    });
    client = admin.client;
    ({ groupId, token } = await createGroup(client, 'doubt'));
  });

  // Each test's executors leave with it: routing must only see the next test's.
  afterEach(async () => {
    await Promise.all(raws.splice(0).map(raw => raw.close()));
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it('takes a reply arriving just after the deadline as what it is: the run ran once and succeeded', async () => {
    const first = connect('late-1');
    await first.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', { failRetryCount: 3 });
    const triggered = client.triggerJob({ jobId });
    const request = await first.next('runRequest');
    // The executor took the run before answer_by; its reply is held in transit until the
    // admin has given up waiting (answer_by plus the grace period).
    expect(request.answerBy).toBeInstanceOf(Date);
    const waitMs = request.answerBy!.getTime() + DEADLINE_MS - Date.now();
    await new Promise(resolve => setTimeout(resolve, Math.max(0, waitMs)));
    accept(first, request);
    // Not knowing whether the executor has the run, the admin ends the stream: the
    // executor reconnects and says what it has.
    await first.done;
    const logId = request.logId;
    const inDoubt = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: logId });
        return log?.triggerMessage.includes('in doubt') === true ? log : undefined;
      },
      { what: 'the run to be recorded in doubt' },
    );
    expect(inDoubt).toMatchObject({
      status: LogStatus.LOG_STATUS_RUNNING,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_PENDING,
      executorInstance: 'late-1',
    });
    expect(inDoubt.triggerMessage).toContain(
      `in doubt: executor late-1 did not answer within ${DEADLINE_MS} ms`,
    );

    const second = connect('late-1', [{ logId: request.logId, attempt: request.attempt }]);
    await second.next('welcome');
    await waitFor(
      async () => {
        const { log } = await client.getLog({ id: logId });
        return log?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      },
      { what: 'the run in doubt to be settled as accepted' },
    );
    succeed(second, request, 'ran once');
    await second.next('resultAck');
    expect((await triggered).logIds).toEqual([logId]);

    const logs = await logsOfJob(jobId);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      id: logId,
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
      handleMessage: 'ran once',
    });
    expect(logs[0]!.triggerMessage).toContain('settled: the executor had the run when it reconnected');
    // The executor that had the run was never asked to run it again.
    expect(second.count('runRequest')).toBe(0);
  });

  it('counts the answer deadline from the moment a request goes out, not while it waits for a run slot', async () => {
    // Capacity 1: the second request waits for the first run's result (its run slot). That
    // wait is longer than the deadline here, and must not count: before, it ate the second
    // request's deadline, and an executor accepting it in time was still recorded FAILED
    // (and the run retried: a second run of the same fire).
    const narrow = connect('narrow-1', [], 1);
    await narrow.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', { failRetryCount: 3 });
    const triggers = [client.triggerJob({ jobId }), client.triggerJob({ jobId })];
    const first = await narrow.next('runRequest');
    await new Promise(resolve => setTimeout(resolve, DEADLINE_MS / 2));
    accept(narrow, first);
    await new Promise(resolve => setTimeout(resolve, DEADLINE_MS));
    expect(narrow.count('runRequest')).toBe(1);
    succeed(narrow, first, `ran ${first.logId}`);
    const second = await narrow.next('runRequest', 2);
    const queuedMs = second.answerBy!.getTime() - first.answerBy!.getTime();
    expect(queuedMs).toBeGreaterThanOrEqual(DEADLINE_MS + DEADLINE_MS / 2 - 50);
    await new Promise(resolve => setTimeout(resolve, DEADLINE_MS / 2));
    accept(narrow, second);
    succeed(narrow, second, `ran ${second.logId}`);
    await narrow.next('resultAck', 2);
    await Promise.all(triggers);

    const logs = await logsOfJob(jobId);
    expect(logs.map(log => [log.dispatchOutcome, log.status])).toEqual([
      [DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED, LogStatus.LOG_STATUS_SUCCEEDED],
      [DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED, LogStatus.LOG_STATUS_SUCCEEDED],
    ]);
    expect(narrow.count('runRequest')).toBe(2);
  });

  it('sends a run in doubt again, once, when the executor comes back without it', async () => {
    const first = connect('lost-reply-1');
    await first.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', { failRetryCount: 3 });
    const triggered = client.triggerJob({ jobId });
    const request = await first.next('runRequest');
    // The request never reached the handler (or the executor never took it): no reply.
    await first.done;
    const second = connect('lost-reply-1');
    await second.next('welcome');
    const again = await second.next('runRequest');
    expect({ logId: again.logId, attempt: again.attempt }).toEqual({
      logId: request.logId,
      attempt: request.attempt,
    });
    accept(second, again);
    succeed(second, again, 'ran on the second stream');
    await second.next('resultAck');
    const [logId] = (await triggered).logIds;
    expect(logId).toBe(request.logId);

    const logs = await logsOfJob(jobId);
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
      executorInstance: 'lost-reply-1',
      handleMessage: 'ran on the second stream',
    });
    expect(second.count('runRequest')).toBe(1);
  });

  it('never sends a run in doubt to the process that replaced the one it went to: lost, then retried', async () => {
    // Found by the chaos soak: an executor SIGKILLed just after starting a run whose reply
    // was lost came back as a new process listing nothing; the run was settled as "never
    // started" and sent again, so attempt 1 ran twice.
    const killed = connect('restarted-1', [], 4, 1001);
    await killed.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', { failRetryCount: 1 });
    const { logIds } = await client.triggerJob({ jobId });
    const request = await killed.next('runRequest');
    await killed.done;
    const restarted = connect('restarted-1', [], 4, 1002);
    await restarted.next('welcome');
    const lost = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: logIds[0]! });
        return log?.status === LogStatus.LOG_STATUS_FAILED ? log : undefined;
      },
      { what: 'the run in doubt to be declared lost' },
    );
    expect(lost.outcome).toBe(RunOutcome.RUN_OUTCOME_LOST);
    // Lost at the new process's Register, not after the grace period.
    expect(lost.handleMessage).toContain(
      'which ended without answering; it came back as process doubt-host/1002',
    );
    // The retry is the next attempt, a new log: attempt 1 was never sent again.
    const retry = await restarted.next('runRequest');
    expect(retry.logId).not.toBe(request.logId);
    expect(
      restarted.received.filter(
        message => message.kind?.$case === 'runRequest' && message.kind.value.logId === request.logId,
      ),
    ).toEqual([]);
  });

  it('declares the runs of an executor process lost when it comes back as another process without them', async () => {
    // Found by the chaos soak: a FIX_DELAY job whose run was on an executor SIGKILLed and
    // started again stayed silent for the whole grace period, waiting for a result that the
    // new process, which does not have the run, could never send.
    const killed = connect('replaced-1', [], 4, 3001);
    await killed.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_DELAY,
      scheduleConf: '1',
    });
    await client.startJob({ id: jobId });
    const first = await killed.next('runRequest');
    accept(killed, first);
    await waitFor(
      async () => {
        const { log } = await client.getLog({ id: first.logId });
        return log?.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      },
      { what: 'the first fire to be accepted' },
    );
    await killed.close();
    const restarted = connect('replaced-1', [], 4, 3002);
    await restarted.next('welcome');
    const lost = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: first.logId });
        return log?.status === LogStatus.LOG_STATUS_FAILED ? log : undefined;
      },
      { what: 'the run of the replaced process to be declared lost' },
    );
    expect(lost.outcome).toBe(RunOutcome.RUN_OUTCOME_LOST);
    expect(lost.handleMessage).toBe(
      'lost: executor replaced-1 (process doubt-host/3001) ended while running it; it came back as process doubt-host/3002 without the run or its result',
    );
    // The FIX_DELAY chain goes on from the lost run, on the new process.
    const next = await restarted.next('runRequest');
    expect(next.logId).not.toBe(first.logId);
    expect(next.scheduledAt!.getTime()).toBeGreaterThan(first.scheduledAt!.getTime());
    await client.stopJob({ id: jobId });
  });

  it('declares a run in doubt lost when its executor never comes back, and only then retries it', async () => {
    const silent = connect('gone-1');
    await silent.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', { failRetryCount: 1 });
    const { logIds } = await client.triggerJob({ jobId });
    await silent.next('runRequest');
    await silent.done;
    const lost = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: logIds[0]! });
        return log?.status === LogStatus.LOG_STATUS_FAILED ? log : undefined;
      },
      { what: 'the run in doubt to be declared lost' },
    );
    expect(lost.outcome).toBe(RunOutcome.RUN_OUTCOME_LOST);
    expect(lost.handleMessage).toContain('lost: the run request to executor gone-1 got no answer');
    const retry = await waitFor(
      async () => (await client.listLogs({ jobId, pageSize: 10 })).logs.find(log => log.id !== logIds[0]),
      { what: 'the retry of the lost run' },
    );
    expect(retry.retryOfLogId).toBe(logIds[0]);
  });
});
