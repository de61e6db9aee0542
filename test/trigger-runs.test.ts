import { Status } from 'nice-grpc';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, UserRole } from '@jobstream/proto/admin';
import type { RunRequest } from '@jobstream/proto/executor';
import { RouteStrategy } from '@jobstream/proto/types';
import { adminClient, startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * TriggerJobRuns: many runs of one job in one call, for API callers that fan work out.
 * Each run has its own parameter; the logs are written in one transaction; validation
 * and authorization are TriggerJob's.
 */
describe('TriggerJobRuns', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let client: AdminClient;
  let sql: pg.Client;
  let groupId: string;
  let token: string;
  const raws: RawExecutor[] = [];
  const channels: { close(): void }[] = [];

  function connect(instanceName: string): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName: 'fan-out', instanceName, capacity: 100 });
    raw.keepBeating(500);
    return raw;
  }

  /** Accepts every run request the executor got, now and later, and returns them. */
  function acceptAll(raw: RawExecutor): RunRequest[] {
    const requests = raw.received.flatMap(message =>
      message.kind?.$case === 'runRequest' ? [message.kind.value] : [],
    );
    for (const request of requests.slice(answered.get(raw) ?? 0)) {
      raw.send({
        kind: {
          $case: 'reply',
          value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
        },
      });
    }
    answered.set(raw, requests.length);
    return requests;
  }
  const answered = new Map<RawExecutor, number>();

  async function userClient(username: string, role: UserRole, groupIds: string[]): Promise<AdminClient> {
    const password = 'long-enough-password';
    await client.createUser({ username, password, role, groupIds });
    const anonymous = adminClient(admin.address, '');
    channels.push(anonymous.channel);
    const { token: session } = await anonymous.client.login({ username, password });
    const user = adminClient(admin.address, session);
    channels.push(user.channel);
    return user.client;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
    ({ groupId, token } = await createGroup(client, 'fan-out'));
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  });

  afterEach(async () => {
    await Promise.all(raws.splice(0).map(raw => raw.close()));
    answered.clear();
  });

  afterAll(async () => {
    for (const channel of channels) channel.close();
    await sql?.end();
    await admin?.stop();
    await database?.drop();
  });

  it('runs every requested run once with its own parameter, and answers per run in order', async () => {
    const first = connect('fan-1');
    const second = connect('fan-2');
    await first.next('welcome');
    await second.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND,
      param: 'the job parameter',
    });
    const params = Array.from({ length: 50 }, (_, index) => `item-${index}`);
    // Like TriggerJob, the call answers once every run was dispatched (accepted here).
    const call = client.triggerJobRuns({
      jobId,
      runs: [...params.map(param => ({ param })), {}],
    });
    const requests = await waitFor(
      () => {
        const all = [...acceptAll(first), ...acceptAll(second)];
        return all.length >= 51 ? all : undefined;
      },
      { what: 'every run request' },
    );
    const { runs } = await call;
    expect(runs).toHaveLength(51);
    expect(runs.every(run => run.logIds.length === 1)).toBe(true);
    const logIds = runs.map(run => run.logIds[0]!);
    expect(new Set(logIds).size).toBe(51);
    // Routed one by one: ROUND spreads the batch over both executors.
    expect(acceptAll(first).length).toBeGreaterThan(0);
    expect(acceptAll(second).length).toBeGreaterThan(0);
    const paramByLog = new Map(requests.map(request => [request.logId, request.param]));
    expect(paramByLog.size).toBe(51);
    expect(logIds.map(id => paramByLog.get(id))).toEqual([...params, 'the job parameter']);
    await waitFor(
      async () => {
        const { logs } = await client.listLogs({ jobId, pageSize: 100 });
        return logs.length === 51 &&
          logs.every(log => log.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED)
          ? true
          : undefined;
      },
      { what: 'every run to be recorded accepted' },
    );
  });

  it('writes the logs of a broadcast job per run, every shard named by its run', async () => {
    const first = connect('shard-1');
    const second = connect('shard-2');
    await first.next('welcome');
    await second.next('welcome');
    const jobId = await createJob(client, groupId, 'echo', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST,
    });
    const call = client.triggerJobRuns({
      jobId,
      runs: [{ param: 'a' }, { param: 'b' }, { param: 'c' }],
    });
    const requests = await waitFor(
      () => {
        const all = [...acceptAll(first), ...acceptAll(second)];
        return all.length >= 6 ? all : undefined;
      },
      { what: 'every shard of every run' },
    );
    const { runs } = await call;
    expect(runs.map(run => run.logIds.length)).toEqual([2, 2, 2]);
    runs.forEach((run, index) => {
      const shards = run.logIds.map(id => requests.find(request => request.logId === id)!);
      expect(shards.map(shard => [shard.param, shard.shardIndex, shard.shardTotal])).toEqual([
        [['a', 'b', 'c'][index], 0, 2],
        [['a', 'b', 'c'][index], 1, 2],
      ]);
    });
  });

  it('writes all the runs or none: one transaction', async () => {
    const jobId = await createJob(client, groupId, 'echo');
    // The database refuses one row of the batch, after the others were written.
    await sql.query(`
      create function refuse_exploding_param() returns trigger language plpgsql as $$
      begin
        if new.param = 'explode' then raise exception 'refused by the test'; end if;
        return new;
      end $$`);
    await sql.query(`create trigger refuse_exploding_param before insert on trigger_log
                     for each row execute function refuse_exploding_param()`);
    try {
      await expect(
        client.triggerJobRuns({
          jobId,
          runs: [{ param: 'fine' }, { param: 'also fine' }, { param: 'explode' }],
        }),
      ).rejects.toThrow();
    } finally {
      await sql.query('drop trigger refuse_exploding_param on trigger_log');
      await sql.query('drop function refuse_exploding_param()');
    }
    const { rows } = await sql.query('select id from trigger_log where job_id = $1', [jobId]);
    expect(rows).toEqual([]);
  });

  it('refuses bad input with INVALID_ARGUMENT or NOT_FOUND naming the field, and writes nothing', async () => {
    const jobId = await createJob(client, groupId, 'echo');
    const cases: [Parameters<AdminClient['triggerJobRuns']>[0], Status, string][] = [
      [{ jobId, runs: [] }, Status.INVALID_ARGUMENT, 'runs: must list 1 to 1000 runs, got 0'],
      [
        { jobId, runs: Array.from({ length: 1_001 }, () => ({})) },
        Status.INVALID_ARGUMENT,
        'runs: must list 1 to 1000 runs, got 1001',
      ],
      [{ jobId, runs: [{}, { param: 'x'.repeat(4_097) }] }, Status.INVALID_ARGUMENT, 'runs[1].param'],
      [
        { jobId, runs: [{}], executorInstances: ['not a name'] },
        Status.INVALID_ARGUMENT,
        'executor_instances[0]',
      ],
      [{ jobId: '987654', runs: [{}] }, Status.NOT_FOUND, 'job 987654 does not exist'],
      [{ jobId: '0', runs: [{}] }, Status.INVALID_ARGUMENT, 'job_id'],
    ];
    for (const [request, code, field] of cases) {
      await expect(client.triggerJobRuns(request), field).rejects.toMatchObject({
        code,
        details: expect.stringContaining(field) as unknown,
      });
    }
    const { rows } = await sql.query('select id from trigger_log where job_id = $1', [jobId]);
    expect(rows).toEqual([]);
  });

  it("is allowed to whoever may trigger the job, as TriggerJob: not to viewers nor to other groups' operators", async () => {
    const jobId = await createJob(client, groupId, 'echo');
    const other = await createGroup(client, 'fan-out-other');
    const viewer = await userClient('fan-viewer', UserRole.USER_ROLE_VIEWER, [groupId]);
    const outsider = await userClient('fan-outsider', UserRole.USER_ROLE_OPERATOR, [other.groupId]);
    const operator = await userClient('fan-operator', UserRole.USER_ROLE_OPERATOR, [groupId]);
    for (const caller of [viewer, outsider]) {
      await expect(caller.triggerJob({ jobId })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      await expect(caller.triggerJobRuns({ jobId, runs: [{}] })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
    }
    const anonymous = adminClient(admin.address, '');
    channels.push(anonymous.channel);
    await expect(anonymous.client.triggerJobRuns({ jobId, runs: [{}] })).rejects.toMatchObject({
      code: Status.UNAUTHENTICATED,
    });
    // Nobody is connected: the runs are recorded, and fail to dispatch, as TriggerJob's.
    const { runs } = await operator.triggerJobRuns({ jobId, runs: [{}, {}] });
    expect(runs.map(run => run.logIds.length)).toEqual([1, 1]);
    const { rows } = await sql.query<{ n: string }>(
      'select count(*) as n from trigger_log where job_id = $1',
      [jobId],
    );
    expect(rows[0]!.n).toBe('2');
  });
});
