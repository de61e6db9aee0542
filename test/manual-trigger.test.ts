import { Status } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import type { Log } from '@jobstream/proto/admin';
import { DispatchOutcome, LogStatus } from '@jobstream/proto/admin';
import { RunOutcome } from '@jobstream/proto/types';
import {
  finishedLog as finishedLogOf,
  startTestAdmin,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';

describe('manual triggers end to end (real PostgreSQL, real gRPC on loopback)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let executor: Executor;
  let groupId: string;
  const started: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
    const group = await createGroup(client, 'orders');
    groupId = group.groupId;
    executor = await startFixtureExecutor({
      adminAddresses: [admin.address],
      appName: 'orders',
      accessToken: group.token,
      instanceName: 'orders-1',
      onEvent: event => {
        if (event.event === 'run-started') started.push(String(event.logId));
      },
    });
  });

  afterAll(async () => {
    await executor?.stop();
    await admin?.stop();
    await database?.drop();
  });

  const finishedLog = (logId: string): Promise<Log> => finishedLogOf(client, logId);

  it('lists the registered executor with its handlers', async () => {
    const { executors } = await client.listExecutors({ appName: 'orders' });
    expect(executors).toHaveLength(1);
    expect(executors[0]).toMatchObject({ appName: 'orders', instanceName: 'orders-1', pid: process.pid });
    expect(executors[0]!.handlers).toEqual(expect.arrayContaining(['echo', 'fail', 'sleep', 'steps']));
    expect(executors[0]!.connectedAt).toBeInstanceOf(Date);
  });

  it('runs the handler and records success with scheduled, trigger, start and finish times', async () => {
    const jobId = await createJob(client, groupId, 'echo', { param: 'stored param' });
    const before = Date.now();
    const { logIds } = await client.triggerJob({ jobId, param: 'override' });
    expect(logIds).toHaveLength(1);
    const log = await finishedLog(logIds[0]!);
    expect(log).toMatchObject({
      jobId,
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      handleMessage: 'echo: override',
      param: 'override',
      executorInstance: 'orders-1',
      attempt: 1,
    });
    expect(log.triggerMessage).toContain('accepted by orders-1');
    const times = [log.scheduledAt, log.triggeredAt, log.startedAt, log.finishedAt];
    for (const time of times) expect(time).toBeInstanceOf(Date);
    expect(log.scheduledAt!.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(log.triggeredAt!.getTime()).toBeGreaterThanOrEqual(log.scheduledAt!.getTime());
    expect(log.startedAt!.getTime()).toBeGreaterThanOrEqual(log.triggeredAt!.getTime() - 50);
    expect(log.finishedAt!.getTime()).toBeGreaterThanOrEqual(log.startedAt!.getTime());
  });

  it('records a throwing handler as a failure with its message', async () => {
    const jobId = await createJob(client, groupId, 'fail', { param: 'disk full on /var' });
    const { logIds } = await client.triggerJob({ jobId });
    const log = await finishedLog(logIds[0]!);
    expect(log.status).toBe(LogStatus.LOG_STATUS_FAILED);
    expect(log.outcome).toBe(RunOutcome.RUN_OUTCOME_FAILED);
    expect(log.handleMessage).toContain('disk full on /var');
  });

  it('KillRun aborts the running handler through ctx.signal and records the kill', async () => {
    const jobId = await createJob(client, groupId, 'sleep', { param: '60000' });
    const { logIds } = await client.triggerJob({ jobId });
    const logId = logIds[0]!;
    await waitFor(() => (started.includes(logId) ? true : undefined), { what: 'the run to start' });
    const { log: running } = await client.getLog({ id: logId });
    expect(running!.status).toBe(LogStatus.LOG_STATUS_RUNNING);

    await client.killRun({ logId });
    const log = await finishedLog(logId);
    expect(log.outcome).toBe(RunOutcome.RUN_OUTCOME_KILLED);
    expect(log.status).toBe(LogStatus.LOG_STATUS_FAILED);
    expect(log.handleMessage).toMatch(/kill/i);

    await expect(client.killRun({ logId })).rejects.toMatchObject({ code: Status.FAILED_PRECONDITION });
  });

  it('ReadExecutorLog returns the lines the handler logged, in order, with rolling reads', async () => {
    const jobId = await createJob(client, groupId, 'steps', { param: '12' });
    const { logIds } = await client.triggerJob({ jobId });
    const logId = logIds[0]!;
    await finishedLog(logId);

    const all = await client.readExecutorLog({ logId, fromLine: 1, maxLines: 1000 });
    const stepLines = all.lines.filter(line => line.includes('step '));
    expect(stepLines.map(line => /step (\d+) of 12/.exec(line)?.[1])).toEqual(
      Array.from({ length: 12 }, (_, index) => String(index + 1)),
    );
    expect(all.end).toBe(true);
    expect(all.toLine).toBe(all.lines.length);

    // Rolling: read in pages of 5 from a line number and get the same lines back.
    const rolled: string[] = [];
    let from = 1;
    for (;;) {
      const page = await client.readExecutorLog({ logId, fromLine: from, maxLines: 5 });
      expect(page.fromLine).toBe(from);
      expect(page.lines.length).toBeLessThanOrEqual(5);
      rolled.push(...page.lines);
      if (page.lines.length === 0 || page.toLine === all.toLine) break;
      from = page.toLine + 1;
    }
    expect(rolled).toEqual(all.lines);

    const tail = await client.readExecutorLog({ logId, fromLine: 4, maxLines: 2 });
    expect(tail.lines).toEqual(all.lines.slice(3, 5));
  });

  it('records a trigger failure when no executor of the group is online', async () => {
    const lonely = await createGroup(client, 'lonely');
    const jobId = await createJob(client, lonely.groupId, 'echo');
    const { logIds } = await client.triggerJob({ jobId });
    const { log } = await client.getLog({ id: logIds[0]! });
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_FAILED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
    });
    expect(log!.triggerMessage).toContain('no executor of the group is online');
  });

  it('routes an explicit executor list only to connected members of the group', async () => {
    const jobId = await createJob(client, groupId, 'echo');
    const { logIds } = await client.triggerJob({ jobId, executorInstances: ['not-connected'] });
    const { log } = await client.getLog({ id: logIds[0]! });
    expect(log!.dispatchOutcome).toBe(DispatchOutcome.DISPATCH_OUTCOME_FAILED);
    const ok = await client.triggerJob({ jobId, executorInstances: ['orders-1'] });
    expect((await finishedLog(ok.logIds[0]!)).executorInstance).toBe('orders-1');
  });

  it('ListLogs filters by job and status and pages newest first', async () => {
    const jobId = await createJob(client, groupId, 'echo');
    const ids: string[] = [];
    for (let index = 0; index < 5; index += 1) ids.push(...(await client.triggerJob({ jobId })).logIds);
    await Promise.all(ids.map(finishedLog));
    const first = await client.listLogs({ jobId, pageSize: 3 });
    expect(first.logs.map(log => log.id)).toEqual([...ids].reverse().slice(0, 3));
    const second = await client.listLogs({ jobId, pageSize: 3, pageToken: first.nextPageToken });
    expect(second.logs.map(log => log.id)).toEqual([...ids].reverse().slice(3));
    expect(second.nextPageToken).toBe('');
    const failed = await client.listLogs({ jobId, status: LogStatus.LOG_STATUS_FAILED });
    expect(failed.logs).toHaveLength(0);
    await expect(client.listLogs({ pageToken: 'garbage!' })).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('page_token') as unknown,
    });
  });
});
