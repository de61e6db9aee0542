import { Status } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../executor-sdk/src/index.js';
import type { JobSpec } from '@jobstream/proto/admin';
import { adminClient, startTestAdmin, type AdminClient, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, jobSpec, tempDir } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

describe('authentication and validation', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let groupId: string;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
    ({ groupId, token } = await createGroup(client, 'billing'));
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it('refuses AdminService calls without a token or with a wrong one', async () => {
    const wrong = adminClient(admin.address, 'not-the-admin-token-at-all');
    await expect(wrong.client.listJobs({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    wrong.channel.close();
    const anonymous = adminClient(admin.address, '');
    await expect(anonymous.client.listJobs({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    anonymous.channel.close();
  });

  it('refuses an executor stream with a wrong token before it opens', async () => {
    const raw = new RawExecutor(admin.address, 'wrong-token');
    raw.register({ appName: 'billing', instanceName: 'billing-1' });
    await raw.done;
    expect(raw.error).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(raw.received).toHaveLength(0);
    await raw.close();
    const { executors } = await client.listExecutors({ appName: 'billing' });
    expect(executors).toHaveLength(0);
  });

  it('makes the SDK start() fail with UNAUTHENTICATED on a wrong token', async () => {
    const executor = new Executor({
      adminAddresses: [admin.address],
      appName: 'billing',
      accessToken: 'definitely-wrong-token',
      instanceName: 'billing-sdk',
      dataDir: await tempDir('wrong-token'),
    });
    executor.register('echo', () => Promise.resolve('x'));
    await expect(executor.start()).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    await executor.stop();
  });

  it('refuses a token used for another app name', async () => {
    await createGroup(client, 'payroll');
    const raw = new RawExecutor(admin.address, token);
    raw.register({ appName: 'payroll', instanceName: 'sneaky-1' });
    await raw.done;
    expect(raw.error).toMatchObject({ code: Status.PERMISSION_DENIED });
    await raw.close();
  });

  it('refuses a stream whose first message is not Register', async () => {
    const raw = new RawExecutor(admin.address, token);
    raw.send({
      kind: {
        $case: 'beat',
        value: { runningCount: 0, queuedCount: 0, eventLoopLagMs: 0, unresponsiveRuns: [] },
      },
    });
    await raw.done;
    expect(raw.error).toMatchObject({ code: Status.FAILED_PRECONDITION });
    await raw.close();
  });

  it('refuses an invalid Register naming the field', async () => {
    const raw = new RawExecutor(admin.address, token);
    raw.register({ appName: 'billing', instanceName: 'has spaces', capacity: 0 });
    await raw.done;
    expect(raw.error).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(String((raw.error as { details?: string }).details)).toContain('register.instance_name');
    await raw.close();
  });

  it('refuses a pipelining window beyond the limit, naming the field', async () => {
    const raw = new RawExecutor(admin.address, token);
    raw.register({ appName: 'billing', instanceName: 'windowed-1', capacity: 1, pipelineWindow: 10_001 });
    await raw.done;
    expect(raw.error).toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect(String((raw.error as { details?: string }).details)).toContain(
      'register.pipeline_window must be from 0 to 10000',
    );
    await raw.close();
  });

  const invalidJobs: [string, Partial<JobSpec>, string][] = [
    ['empty description', { description: '   ' }, 'spec.description'],
    ['missing handler', { handler: '' }, 'spec.handler'],
    ['unknown route strategy', { routeStrategy: 99 as JobSpec['routeStrategy'] }, 'spec.route_strategy'],
    ['negative timeout', { timeoutSeconds: -1 }, 'spec.timeout_seconds'],
    ['absurd retry count', { failRetryCount: 100_000 }, 'spec.fail_retry_count'],
    ['retry delay over a day', { failRetryDelay: { seconds: '86401', nanos: 0 } }, 'spec.fail_retry_delay'],
    ['negative retry delay', { failRetryDelay: { seconds: '-5', nanos: 0 } }, 'spec.fail_retry_delay'],
    ['bad e-mail', { alarmEmail: 'ops@example.com, not-an-address' }, 'spec.alarm_email'],
    ['bad time zone', { timeZone: 'Mars/Olympus_Mons' }, 'spec.time_zone'],
    ['fix rate not a number', { scheduleType: 3, scheduleConf: 'soon' }, 'spec.schedule_conf'],
    ['cron with 3 fields', { scheduleType: 2, scheduleConf: '* * *' }, 'spec.schedule_conf'],
    ['huge param', { param: 'x'.repeat(5000) }, 'spec.param'],
    ['bad child id', { childJobIds: ['-4'] }, 'spec.child_job_ids[0]'],
    ['zero group id', { groupId: '0' }, 'spec.group_id'],
  ];

  it.each(invalidJobs)(
    'refuses a job with %s (INVALID_ARGUMENT naming the field), storing nothing',
    async (_, fields, field) => {
      const before = await client.listJobs({});
      await expect(
        client.createJob({ spec: { ...jobSpec(groupId, 'echo'), ...fields } }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringContaining(field) as unknown,
      });
      const after = await client.listJobs({});
      expect(after.totalCount).toBe(before.totalCount);
    },
  );

  it('answers NOT_FOUND for missing ids, naming what is missing', async () => {
    await expect(client.getJob({ id: '987654' })).rejects.toMatchObject({ code: Status.NOT_FOUND });
    await expect(client.triggerJob({ jobId: '987654' })).rejects.toMatchObject({ code: Status.NOT_FOUND });
    await expect(client.createJob({ spec: jobSpec('987654', 'echo') })).rejects.toMatchObject({
      code: Status.NOT_FOUND,
      details: expect.stringContaining('spec.group_id') as unknown,
    });
    await expect(client.getLog({ id: '0' })).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
  });

  it('leaves a job unchanged when an update is invalid, and applies field masks', async () => {
    const jobId = await createJob(client, groupId, 'echo', { param: 'original' });
    const { job: before } = await client.getJob({ id: jobId });
    await expect(
      client.updateJob({ id: jobId, spec: { ...before!.spec!, timeoutSeconds: -5 }, updateMask: [] }),
    ).rejects.toMatchObject({ code: Status.INVALID_ARGUMENT });
    expect((await client.getJob({ id: jobId })).job).toEqual(before);

    const { job } = await client.updateJob({
      id: jobId,
      spec: { ...jobSpec(groupId, 'ignored'), param: 'patched' },
      updateMask: ['param'],
    });
    expect(job!.spec!.param).toBe('patched');
    expect(job!.spec!.handler).toBe('echo');
    await expect(
      client.updateJob({ id: jobId, spec: before!.spec!, updateMask: ['no_such_field'] }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('update_mask') as unknown,
    });
  });

  it('refuses a cycle of child jobs', async () => {
    const a = await createJob(client, groupId, 'echo');
    const b = await createJob(client, groupId, 'echo', { childJobIds: [a] });
    const { job } = await client.getJob({ id: a });
    await expect(
      client.updateJob({ id: a, spec: { ...job!.spec!, childJobIds: [b] } }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('cycle') as unknown,
    });
    await expect(
      client.updateJob({ id: a, spec: { ...job!.spec!, childJobIds: [a] } }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
    });
    await expect(client.deleteJob({ id: a })).rejects.toMatchObject({ code: Status.FAILED_PRECONDITION });
  });

  it('refuses a duplicate app name and never returns token hashes', async () => {
    await expect(
      client.createExecutorGroup({ spec: { appName: 'billing', title: 'again' } }),
    ).rejects.toMatchObject({
      code: Status.ALREADY_EXISTS,
    });
    const { groups } = await client.listExecutorGroups({});
    expect(JSON.stringify(groups)).not.toMatch(/hash|token/i);
  });
});
