import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import { DispatchOutcome, LogStatus, type Log } from '@jobstream/proto/admin';
import { RouteStrategy } from '@jobstream/proto/types';
import {
  finishedLog as finishedLogOf,
  startTestAdmin,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/** FAILOVER waits this long for the silent executor before trying the next one. */
const DEADLINE_MS = 1_000;
const EXECUTORS = ['routing-1', 'routing-2', 'routing-3'];

describe('routing strategies end to end (real PostgreSQL, real gRPC on loopback)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let groupId: string;
  let failoverGroupId: string;
  const executors: Executor[] = [];
  let silent: RawExecutor | undefined;
  /** Log ids whose handler has started, by the instance that runs them. */
  const started = new Map<string, string>();

  async function startExecutor(appName: string, token: string, instanceName: string): Promise<void> {
    executors.push(
      await startFixtureExecutor({
        adminAddresses: [admin.address],
        appName,
        accessToken: token,
        instanceName,
        onEvent: event => {
          if (event.event === 'run-started') started.set(String(event.logId), instanceName);
        },
      }),
    );
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { requestDeadlineMs: DEADLINE_MS });
    client = admin.client;
    const group = await createGroup(client, 'routing');
    groupId = group.groupId;
    await Promise.all(EXECUTORS.map(name => startExecutor('routing', group.token, name)));

    const failover = await createGroup(client, 'failover');
    failoverGroupId = failover.groupId;
    // Registers but never answers; its name sorts first, so FAILOVER asks it first.
    silent = new RawExecutor(admin.address, failover.token);
    silent.register({ appName: 'failover', instanceName: 'failover-0-silent' });
    await silent.next('welcome');
    // Alive (it beats) but answering nothing: a silent stream would be closed instead.
    silent.keepBeating(100);
    await startExecutor('failover', failover.token, 'failover-1');
  });

  afterAll(async () => {
    await silent?.close();
    await Promise.all(executors.map(executor => executor.stop()));
    await admin?.stop();
    await database?.drop();
  });

  const finishedLog = (logId: string): Promise<Log> => finishedLogOf(client, logId);

  function job(routeStrategy: RouteStrategy, handler = 'echo', param = ''): Promise<string> {
    return createJob(client, groupId, handler, { routeStrategy, param });
  }

  /** Triggers the job and returns its finished log, which must have run successfully. */
  async function run(jobId: string, executorInstances: string[] = []): Promise<Log> {
    const { logIds } = await client.triggerJob({ jobId, executorInstances });
    expect(logIds).toHaveLength(1);
    const log = await finishedLog(logIds[0]!);
    expect(log, log.triggerMessage).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
    });
    expect(started.get(log.id)).toBe(log.executorInstance);
    return log;
  }

  async function ranOn(jobId: string, times: number, executorInstances: string[] = []): Promise<string[]> {
    const names: string[] = [];
    for (let index = 0; index < times; index += 1) {
      names.push((await run(jobId, executorInstances)).executorInstance);
    }
    return names;
  }

  it('FIRST always picks the first executor by instance name, LAST the last', async () => {
    expect(await ranOn(await job(RouteStrategy.ROUTE_STRATEGY_FIRST), 3)).toEqual(Array(3).fill('routing-1'));
    expect(await ranOn(await job(RouteStrategy.ROUTE_STRATEGY_LAST), 3)).toEqual(Array(3).fill('routing-3'));
  });

  it('ROUND cycles through all three executors in order', async () => {
    const names = await ranOn(await job(RouteStrategy.ROUTE_STRATEGY_ROUND), 6);
    const start = EXECUTORS.indexOf(names[0]!);
    expect(names).toEqual(Array.from({ length: 6 }, (_, index) => EXECUTORS[(start + index) % 3]));
  });

  it('CONSISTENT_HASH keeps sending a job to the same executor', async () => {
    const jobId = await job(RouteStrategy.ROUTE_STRATEGY_CONSISTENT_HASH);
    const names = await ranOn(jobId, 4);
    expect(new Set(names).size).toBe(1);
    expect(EXECUTORS).toContain(names[0]);
  });

  it.each([
    ['LEAST_FREQUENTLY_USED', RouteStrategy.ROUTE_STRATEGY_LEAST_FREQUENTLY_USED],
    ['LEAST_RECENTLY_USED', RouteStrategy.ROUTE_STRATEGY_LEAST_RECENTLY_USED],
  ])('%s spreads three triggers over all three executors', async (_, strategy) => {
    const names = await ranOn(await job(strategy), 3);
    expect([...names].sort()).toEqual(EXECUTORS);
  });

  it('SHARDING_BROADCAST runs one shard on each executor, indexed in instance-name order', async () => {
    const jobId = await job(RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST);
    const { logIds } = await client.triggerJob({ jobId });
    expect(logIds).toHaveLength(3);
    const logs = await Promise.all(logIds.map(finishedLog));
    expect(
      logs
        .map(log => [log.executorInstance, log.shardIndex, log.shardTotal, log.status])
        .sort((x, y) => Number(x[1]) - Number(y[1])),
    ).toEqual(EXECUTORS.map((name, index) => [name, index, 3, LogStatus.LOG_STATUS_SUCCEEDED]));
  });

  it('BUSYOVER passes over an executor already running the job', async () => {
    const jobId = await job(RouteStrategy.ROUTE_STRATEGY_BUSYOVER, 'sleep', '60000');
    const first = (await client.triggerJob({ jobId })).logIds[0]!;
    await waitFor(() => started.get(first), { what: 'the first run to start' });
    expect(started.get(first)).toBe('routing-1');

    const second = (await client.triggerJob({ jobId })).logIds[0]!;
    await waitFor(() => started.get(second), { what: 'the second run to start' });
    // A running run's acceptance, with the route's trace, is stored when the hold ends.
    const log = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: second });
        return log!.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED ? log : undefined;
      },
      { what: "the second run's acceptance" },
    );
    expect(log.executorInstance).toBe('routing-2');
    expect(log.triggerMessage).toContain(
      'route BUSYOVER: routing-1: refused (REJECT_REASON_BUSY: job ' +
        `${jobId} has a run running or queued on this executor); routing-2: ok`,
    );

    await Promise.all([first, second].map(logId => client.killRun({ logId })));
    await Promise.all([first, second].map(finishedLog));
  });

  it('FAILOVER passes over an executor that does not answer its beat', async () => {
    const jobId = await createJob(client, failoverGroupId, 'echo', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_FAILOVER,
    });

    const log = await run(jobId);
    expect(log.executorInstance).toBe('failover-1');
    expect(log.triggerMessage).toContain(
      `route FAILOVER: failover-0-silent: no answer within ${DEADLINE_MS} ms; failover-1: ok; accepted by failover-1`,
    );
    expect(silent!.count('beatRequest')).toBe(1);
    expect(silent!.count('runRequest')).toBe(0);
  });

  it('records a trigger failure with a clear message when no executor of the group is online', async () => {
    const empty = await createGroup(client, 'routing-empty');
    for (const strategy of [RouteStrategy.ROUTE_STRATEGY_FIRST, RouteStrategy.ROUTE_STRATEGY_FAILOVER]) {
      const jobId = await createJob(client, empty.groupId, 'echo', { routeStrategy: strategy });
      const { logIds } = await client.triggerJob({ jobId });
      const { log } = await client.getLog({ id: logIds[0]! });
      expect(log).toMatchObject({
        status: LogStatus.LOG_STATUS_FAILED,
        dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
        executorInstance: '',
        triggerMessage: 'trigger failed: no executor of the group is online',
      });
    }
  });

  it('routes an explicit executor list over that list only, in its order, among connected group members', async () => {
    const first = await job(RouteStrategy.ROUTE_STRATEGY_FIRST);
    expect(await ranOn(first, 2, ['routing-3', 'routing-2'])).toEqual(['routing-3', 'routing-3']);
    expect(await ranOn(first, 1, ['not-connected', 'routing-2'])).toEqual(['routing-2']);

    const round = await job(RouteStrategy.ROUTE_STRATEGY_ROUND);
    const names = await ranOn(round, 4, ['routing-1', 'routing-3']);
    expect(new Set(names)).toEqual(new Set(['routing-1', 'routing-3']));

    // failover-1 is connected, but to another group: it must not run this group's job.
    const { logIds } = await client.triggerJob({
      jobId: first,
      executorInstances: ['failover-1', 'not-connected'],
    });
    const { log } = await client.getLog({ id: logIds[0]! });
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_FAILED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
      executorInstance: '',
      triggerMessage:
        'trigger failed: none of the requested executors (failover-1, not-connected) is connected to group routing',
    });
  });
});
