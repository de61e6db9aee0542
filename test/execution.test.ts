import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import type { Log } from '@jobstream/proto/admin';
import { DispatchOutcome, LogStatus, TriggerType } from '@jobstream/proto/admin';
import { BlockStrategy, RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import {
  finishedLog as finishedLogOf,
  startTestAdmin,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';

// Block strategies, timeouts, kills, fail retries and child jobs, end to end: a real admin,
// real PostgreSQL, and executors on loopback running the fixture handlers.
describe('execution semantics', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  const executors: Executor[] = [];
  let groupId: string;
  let emptyGroupId: string;
  /** Log ids whose handler has started, on any executor. */
  const started = new Set<string>();

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { failureMonitorIntervalMs: 100 });
    client = admin.client;
    const group = await createGroup(client, 'exec');
    groupId = group.groupId;
    emptyGroupId = (await createGroup(client, 'nobody-home')).groupId;
    for (const name of ['exec-1', 'exec-2', 'exec-3']) {
      executors.push(
        await startFixtureExecutor({
          adminAddresses: [admin.address],
          appName: 'exec',
          accessToken: group.token,
          instanceName: name,
          onEvent: event => {
            if (event.event === 'run-started') started.add(String(event.logId));
          },
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await database?.drop();
  });

  const finishedLog = (logId: string): Promise<Log> => finishedLogOf(client, logId);

  async function logsOfJob(jobId: string): Promise<Log[]> {
    const { logs } = await client.listLogs({ jobId, pageSize: 100 });
    return [...logs].sort((a, b) => Number(a.id) - Number(b.id));
  }

  async function triggerBurst(jobId: string, params: string[]): Promise<string[]> {
    const ids: string[] = [];
    for (const param of params) ids.push(...(await client.triggerJob({ jobId, param })).logIds);
    return ids;
  }

  it('a handler gets the run as its context: the fields of its request, a log it may take out, a signal, read-only', async () => {
    const jobId = await createJob(client, groupId, 'context');
    const [logId] = (await client.triggerJob({ jobId, param: 'p-1' })).logIds;
    const log = await finishedLog(logId!);
    expect(log.outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
    const seen = JSON.parse(log.handleMessage) as Record<string, unknown>;
    expect(seen).toEqual({
      param: 'p-1',
      jobId,
      logId,
      attempt: 1,
      shardIndex: 0,
      shardTotal: 1,
      handlerName: 'context',
      scheduledAt: log.scheduledAt!.toISOString(),
      signalAborted: false,
      cancelReason: null,
      assignable: false,
      paramAfter: 'p-1',
    });
    const { lines } = await client.readExecutorLog({ logId: logId!, fromLine: 1 });
    expect(lines.join('\n')).toContain('logged through a detached log');
  });

  describe('block strategies under a burst of triggers', () => {
    it('SERIAL_EXECUTION runs the burst one at a time, in trigger order', async () => {
      const jobId = await createJob(client, groupId, 'sleep', {
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
      });
      const ids = await triggerBurst(jobId, ['150', '150', '150', '150']);
      const logs = await Promise.all(ids.map(id => finishedLog(id)));
      expect(logs.map(log => log.outcome)).toEqual(Array(4).fill(RunOutcome.RUN_OUTCOME_SUCCEEDED));
      expect(new Set(logs.map(log => log.executorInstance))).toEqual(new Set(['exec-1']));
      for (let i = 1; i < logs.length; i++) {
        expect(logs[i]!.startedAt!.getTime()).toBeGreaterThanOrEqual(logs[i - 1]!.finishedAt!.getTime());
      }
      expect(await logsOfJob(jobId)).toHaveLength(4);
    });

    it('DISCARD_LATER rejects triggers while a run is running, and logs each discard', async () => {
      const jobId = await createJob(client, groupId, 'sleep', {
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER,
      });
      // The first run lasts until it is killed below, so every later trigger of the burst
      // arrives while it runs, however slowly they come (it slept 800 ms, which a loaded
      // machine's three trigger calls outlasted).
      const ids = await triggerBurst(jobId, ['60000', '10', '10', '10']);
      const discards = await Promise.all(ids.slice(1).map(id => finishedLog(id)));
      await client.killRun({ logId: ids[0]! });
      const logs = [await finishedLog(ids[0]!), ...discards];
      expect(logs[0]).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_KILLED });
      for (const discarded of logs.slice(1)) {
        expect(discarded).toMatchObject({
          status: LogStatus.LOG_STATUS_FAILED,
          dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
        });
        expect(discarded.triggerMessage).toContain('DISCARD');
      }
      expect(await logsOfJob(jobId)).toHaveLength(4);
    });

    it('COVER_EARLY aborts the running run and runs the newest; every trigger gets a result', async () => {
      const jobId = await createJob(client, groupId, 'sleep', {
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY,
      });
      const ids = await triggerBurst(jobId, ['60000', '60000', '60000', '50']);
      const logs = await Promise.all(ids.map(id => finishedLog(id)));
      expect(logs.slice(0, 3).map(log => log.outcome)).toEqual(Array(3).fill(RunOutcome.RUN_OUTCOME_COVERED));
      expect(logs[3]).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'slept' });
      expect(await logsOfJob(jobId)).toHaveLength(4);
    });
  });

  describe('timeouts and kills', () => {
    it('times a run out at the job timeout, even when its handler ignores the signal, and reports that handler', async () => {
      const cooperative = await createJob(client, groupId, 'sleep', { timeoutSeconds: 1 });
      const stubborn = await createJob(client, groupId, 'stubborn', { timeoutSeconds: 1 });
      const [cooperativeLog] = (await client.triggerJob({ jobId: cooperative, param: '60000' })).logIds;
      // Its handler returns after 9 s whatever happens: ending before that is the timeout's doing.
      const stubbornHandlerMs = 9_000;
      const [stubbornLog] = (await client.triggerJob({ jobId: stubborn, param: String(stubbornHandlerMs) }))
        .logIds;
      for (const id of [cooperativeLog!, stubbornLog!]) {
        const log = await finishedLog(id);
        expect(log.outcome).toBe(RunOutcome.RUN_OUTCOME_TIMED_OUT);
        const tookMs = log.finishedAt!.getTime() - log.startedAt!.getTime();
        expect(tookMs).toBeGreaterThanOrEqual(950);
        expect(tookMs).toBeLessThan(stubbornHandlerMs);
      }
      // The stubborn handler keeps running after its timeout; its executor says so in its beats.
      const reporting = await waitFor(
        async () => {
          const { executors: online } = await client.listExecutors({ appName: 'exec' });
          return online.find(executor => executor.unresponsiveLogIds.includes(stubbornLog!));
        },
        { what: 'an executor to report the handler that ignores its signal' },
      );
      expect(reporting.unresponsiveLogIds).not.toContain(cooperativeLog);
    });

    it('kills one run by log id, never the newer queued run of the same job', async () => {
      const jobId = await createJob(client, groupId, 'sleep', {
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
      });
      const [older, newer] = await triggerBurst(jobId, ['60000', '100']);
      await waitFor(() => Promise.resolve(started.has(older!) ? true : undefined), {
        what: 'the older run to start',
      });
      await client.killRun({ logId: older! });
      const killed = await finishedLog(older!);
      expect(killed.outcome).toBe(RunOutcome.RUN_OUTCOME_KILLED);
      const survivor = await finishedLog(newer!);
      expect(survivor).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'slept' });
    });
  });

  describe('fail retry', () => {
    it('retries a failed run with exponential backoff, as new linked logs with the same param', async () => {
      const jobId = await createJob(client, groupId, 'fail', {
        failRetryCount: 2,
        failRetryDelay: { seconds: '0', nanos: 400_000_000 },
      });
      const [firstId] = (await client.triggerJob({ jobId, param: 'boom' })).logIds;
      const logs = await waitFor(
        async () => {
          const all = await logsOfJob(jobId);
          return all.length === 3 && all.every(log => log.status === LogStatus.LOG_STATUS_FAILED)
            ? all
            : undefined;
        },
        { what: 'three failed attempts' },
      );
      const [first, second, third] = logs as [Log, Log, Log];
      expect(first).toMatchObject({ id: firstId, attempt: 1, triggerType: TriggerType.TRIGGER_TYPE_MANUAL });
      expect(second).toMatchObject({
        attempt: 2,
        retryOfLogId: first.id,
        triggerType: TriggerType.TRIGGER_TYPE_RETRY,
        param: 'boom',
        handleMessage: 'boom',
      });
      expect(third).toMatchObject({ attempt: 3, retryOfLogId: second.id, param: 'boom' });
      // 400 ms after the first failure, then twice that after the second.
      expect(second.triggeredAt!.getTime() - first.finishedAt!.getTime()).toBeGreaterThanOrEqual(380);
      expect(third.triggeredAt!.getTime() - second.finishedAt!.getTime()).toBeGreaterThanOrEqual(780);
      // Retries exhausted: nothing more comes.
      await new Promise(resolve => setTimeout(resolve, 1_000));
      expect(await logsOfJob(jobId)).toHaveLength(3);
    });

    it('retries a trigger that failed for want of an executor', async () => {
      const jobId = await createJob(client, emptyGroupId, 'echo', { failRetryCount: 1 });
      const [firstId] = (await client.triggerJob({ jobId })).logIds;
      const logs = await waitFor(
        async () => {
          const all = await logsOfJob(jobId);
          return all.length === 2 && all.every(log => log.status === LogStatus.LOG_STATUS_FAILED)
            ? all
            : undefined;
        },
        { what: 'the retry of a trigger failure' },
      );
      expect(logs[0]).toMatchObject({
        id: firstId,
        dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
      });
      expect(logs[0]!.triggerMessage).toContain('no executor');
      expect(logs[1]).toMatchObject({
        attempt: 2,
        retryOfLogId: firstId,
        triggerType: TriggerType.TRIGGER_TYPE_RETRY,
      });
    });

    it('does not retry a run an operator killed', async () => {
      const jobId = await createJob(client, groupId, 'sleep', { failRetryCount: 3 });
      const [logId] = (await client.triggerJob({ jobId, param: '60000' })).logIds;
      await waitFor(() => Promise.resolve(started.has(logId!) ? true : undefined), {
        what: 'the run to start',
      });
      await client.killRun({ logId: logId! });
      expect((await finishedLog(logId!)).outcome).toBe(RunOutcome.RUN_OUTCOME_KILLED);
      await new Promise(resolve => setTimeout(resolve, 600));
      expect(await logsOfJob(jobId)).toHaveLength(1);
    });
  });

  describe('child jobs', () => {
    it('triggers each child once when the parent succeeds, and records the trace on the parent', async () => {
      const childA = await createJob(client, groupId, 'echo', { param: 'child a' });
      const childB = await createJob(client, groupId, 'echo', { param: 'child b' });
      const parent = await createJob(client, groupId, 'echo', { childJobIds: [childA, childB] });
      const [parentLogId] = (await client.triggerJob({ jobId: parent, param: 'p' })).logIds;
      for (const child of [childA, childB]) {
        const [log] = await waitFor(
          async () => {
            const logs = await logsOfJob(child);
            return logs.length > 0 && logs[0]!.status === LogStatus.LOG_STATUS_SUCCEEDED ? logs : undefined;
          },
          { what: `child job ${child} to run` },
        );
        expect(log).toMatchObject({ triggerType: TriggerType.TRIGGER_TYPE_PARENT });
      }
      await waitFor(
        async () =>
          (await client.getLog({ id: parentLogId! })).log?.handleMessage.includes('child jobs')
            ? true
            : undefined,
        { what: 'the child trace on the parent log' },
      );
      await new Promise(resolve => setTimeout(resolve, 500));
      expect(await logsOfJob(childA)).toHaveLength(1);
      expect(await logsOfJob(childB)).toHaveLength(1);
    });

    it('does not trigger children of a failed parent', async () => {
      const child = await createJob(client, groupId, 'echo');
      const parent = await createJob(client, groupId, 'fail', { childJobIds: [child] });
      const [logId] = (await client.triggerJob({ jobId: parent })).logIds;
      expect((await finishedLog(logId!)).status).toBe(LogStatus.LOG_STATUS_FAILED);
      await new Promise(resolve => setTimeout(resolve, 500));
      expect(await logsOfJob(child)).toHaveLength(0);
    });

    it('fires the child of a broadcast parent once, after every shard succeeded', async () => {
      const child = await createJob(client, groupId, 'echo');
      const parent = await createJob(client, groupId, 'sleep', {
        routeStrategy: RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST,
        childJobIds: [child],
      });
      const shardIds = (await client.triggerJob({ jobId: parent, param: '200' })).logIds;
      expect(shardIds).toHaveLength(3);
      const shards = await Promise.all(shardIds.map(id => finishedLog(id)));
      expect(shards.map(shard => shard.outcome)).toEqual(Array(3).fill(RunOutcome.RUN_OUTCOME_SUCCEEDED));
      await waitFor(async () => ((await logsOfJob(child)).length > 0 ? true : undefined), {
        what: 'the child of the broadcast',
      });
      await new Promise(resolve => setTimeout(resolve, 500));
      expect(await logsOfJob(child)).toHaveLength(1);
    });
  });
});
