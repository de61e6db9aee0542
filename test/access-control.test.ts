import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Status } from 'nice-grpc';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApp } from '../admin/src/app.js';
import { loadConfig } from '../admin/src/config.js';
import { UserRole } from '@jobstream/proto/admin';
import { RunOutcome } from '@jobstream/proto/types';
import { createLogger } from '../admin/src/logger.js';
import {
  adminClient,
  startTestAdmin,
  TEST_ADMIN_TOKEN,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, jobSpec, tempDir } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

const PASSWORDS = {
  admin: 'admin-password-0123',
  operator: 'operator-password-0123',
  viewer: 'viewer-password-0123',
};

/** Collects everything the admin logs, to check that no secret ever reaches a log line. */
class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(chunk.toString('utf8'));
    done();
  }
}

async function startAdmin(databaseUrl: string, env: Record<string, string>, capture?: LogCapture) {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    JOBSTREAM_GRPC_PORT: '0',
    JOBSTREAM_METRICS_PORT: 'off',
    JOBSTREAM_CONSOLE_PORT: 'off',
    JOBSTREAM_BEAT_INTERVAL_MS: '500',
    JOBSTREAM_LOG_LEVEL: 'debug',
    ...env,
  });
  const app = new AdminApp(
    config,
    createLogger({ level: 'debug', ...(capture ? { destination: capture } : {}) }),
  );
  await app.start();
  return app;
}

/** Which jobs exist, so a refused call can be shown to have changed nothing. */
async function jobRows(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query('select * from job order by id');
    return JSON.stringify(rows);
  } finally {
    await client.end();
  }
}

describe('users, roles and group grants', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let root: AdminClient;
  const capture = new LogCapture();
  let app: AdminApp;
  let address: string;
  const channels: { close(): void }[] = [];
  let groupA: { groupId: string; token: string };
  let groupB: { groupId: string; token: string };
  let jobA: string;
  let jobB: string;
  const users: Record<'admin' | 'operator' | 'viewer', { id: string; client: AdminClient; token: string }> =
    {} as never;

  function clientFor(token: string): AdminClient {
    const { client, channel } = adminClient(address, token);
    channels.push(channel);
    return client;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    // A static token only to set the scene; every assertion below goes through users.
    app = await startAdmin(database.url, { JOBSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, capture);
    address = app.grpcAddress;
    root = clientFor(TEST_ADMIN_TOKEN);
    admin = { app, address, client: root, stop: () => app.stop() };
    groupA = await createGroup(root, 'grants-a');
    groupB = await createGroup(root, 'grants-b');
    jobA = await createJob(root, groupA.groupId, 'echo');
    jobB = await createJob(root, groupB.groupId, 'echo');
    for (const [name, role, groups] of [
      ['admin', UserRole.USER_ROLE_ADMIN, []],
      ['operator', UserRole.USER_ROLE_OPERATOR, [groupA.groupId]],
      ['viewer', UserRole.USER_ROLE_VIEWER, [groupA.groupId]],
    ] as const) {
      const { user } = await root.createUser({
        username: name,
        password: PASSWORDS[name],
        role,
        groupIds: [...groups],
      });
      const anonymous = clientFor('');
      const login = await anonymous.login({ username: name, password: PASSWORDS[name] });
      users[name] = { id: user!.id, client: clientFor(login.token), token: login.token };
    }
  });

  afterAll(async () => {
    for (const channel of channels) channel.close();
    await admin?.stop();
    await database?.drop();
  });

  it('stores passwords as salted scrypt hashes and never returns them', async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query<{ username: string; password_hash: string }>(
      'select username, password_hash from app_user order by username',
    );
    await client.end();
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.password_hash).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      expect(row.password_hash).not.toContain(PASSWORDS[row.username as keyof typeof PASSWORDS]);
    }
    expect(new Set(rows.map(row => row.password_hash.split('$')[4])).size).toBe(3);

    const reads = JSON.stringify([
      await users.admin.client.listUsers({}),
      await users.admin.client.getUser({ id: users.operator.id }),
      await users.operator.client.whoAmI({}),
      await users.operator.client.listApiTokens({}),
      await root.listExecutorGroups({}),
      await root.getExecutorGroup({ id: groupA.groupId }),
    ]);
    expect(reads).not.toContain('scrypt$');
    for (const secret of [...Object.values(PASSWORDS), groupA.token, users.operator.token]) {
      expect(reads).not.toContain(secret);
    }
  });

  it('refuses wrong passwords, then throttles a username after ten failures', async () => {
    const anonymous = clientFor('');
    await expect(anonymous.login({ username: 'viewer', password: 'not-the-password' })).rejects.toMatchObject(
      {
        code: Status.UNAUTHENTICATED,
      },
    );
    await expect(anonymous.login({ username: 'nobody', password: 'not-the-password' })).rejects.toMatchObject(
      {
        code: Status.UNAUTHENTICATED,
      },
    );
    await root.createUser({
      username: 'guessed',
      password: 'guessed-password-0123',
      role: UserRole.USER_ROLE_VIEWER,
      groupIds: [],
    });
    for (let attempt = 0; attempt < 10; attempt += 1) {
      await expect(
        anonymous.login({ username: 'guessed', password: `guess-${attempt}` }),
      ).rejects.toMatchObject({
        code: Status.UNAUTHENTICATED,
      });
    }
    // Even the right password waits now: a guesser cannot tell when it found it.
    await expect(
      anonymous.login({ username: 'guessed', password: 'guessed-password-0123' }),
    ).rejects.toMatchObject({
      code: Status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/too many failed logins for "guessed"/) as unknown,
    });
  });

  it('lets an operator manage jobs of its granted group only, including child jobs', async () => {
    const operator = users.operator.client;
    const before = await jobRows(database.url);
    await expect(operator.createJob({ spec: jobSpec(groupB.groupId, 'echo') })).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
      details: expect.stringContaining('spec.group_id') as unknown,
    });
    await expect(
      operator.createJob({ spec: jobSpec(groupA.groupId, 'echo', { childJobIds: [jobB] }) }),
    ).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
      details: expect.stringContaining('spec.child_job_ids[0]') as unknown,
    });
    await expect(
      operator.updateJob({ id: jobA, spec: jobSpec(groupB.groupId, 'echo'), updateMask: ['group_id'] }),
    ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    await expect(
      operator.updateJob({ id: jobB, spec: jobSpec(groupB.groupId, 'other') }),
    ).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
      details: expect.stringContaining(`job ${jobB}`) as unknown,
    });
    await expect(operator.deleteJob({ id: jobB })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    await expect(operator.startJob({ id: jobB })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    await expect(operator.triggerJob({ jobId: jobB })).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    expect(await jobRows(database.url)).toBe(before);

    const { job } = await operator.createJob({
      spec: jobSpec(groupA.groupId, 'echo', { description: 'mine' }),
    });
    const { job: updated } = await operator.updateJob({
      id: job!.id,
      spec: jobSpec(groupA.groupId, 'echo', { description: 'still mine' }),
      updateMask: ['description'],
    });
    expect(updated!.spec!.description).toBe('still mine');
    await operator.deleteJob({ id: job!.id });
  });

  it('shows non-admins only their granted groups in every list', async () => {
    for (const who of ['operator', 'viewer'] as const) {
      const client = users[who].client;
      const { jobs, totalCount } = await client.listJobs({});
      expect(jobs.map(job => job.spec!.groupId)).toEqual(jobs.map(() => groupA.groupId));
      expect(jobs.map(job => job.id)).toContain(jobA);
      expect(totalCount).toBe(String(jobs.length));
      expect((await client.listExecutorGroups({})).groups.map(group => group.appName)).toEqual(['grants-a']);
      await expect(client.getJob({ id: jobB })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      await expect(client.listJobs({ groupId: groupB.groupId })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
      await expect(client.listLogs({ jobId: jobB })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
      await expect(client.listExecutors({ appName: 'grants-b' })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
      await expect(client.getExecutorGroup({ id: groupB.groupId })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
    }
    const all = await users.admin.client.listJobs({});
    expect(all.jobs.map(job => job.id)).toEqual(expect.arrayContaining([jobA, jobB]));
  });

  it('keeps logs, log reads and kills of other groups out of reach', async () => {
    const { logIds: logsOfB } = await root.triggerJob({ jobId: jobB });
    const { logIds: logsOfA } = await root.triggerJob({ jobId: jobA });
    const operator = users.operator.client;
    await expect(operator.getLog({ id: logsOfB[0]! })).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    await expect(operator.killRun({ logId: logsOfB[0]! })).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    await expect(operator.readExecutorLog({ logId: logsOfB[0]! })).rejects.toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    expect((await operator.getLog({ id: logsOfA[0]! })).log!.jobId).toBe(jobA);
    const { logs } = await operator.listLogs({});
    expect(logs.map(log => log.id)).toContain(logsOfA[0]);
    expect(logs.map(log => log.id)).not.toContain(logsOfB[0]);
  });

  it('lets a viewer read its groups but change nothing', async () => {
    const viewer = users.viewer.client;
    expect((await viewer.getJob({ id: jobA })).job!.id).toBe(jobA);
    const before = await jobRows(database.url);
    for (const call of [
      () => viewer.triggerJob({ jobId: jobA }),
      () => viewer.startJob({ id: jobA }),
      () => viewer.stopJob({ id: jobA }),
      () => viewer.deleteJob({ id: jobA }),
      () => viewer.createJob({ spec: jobSpec(groupA.groupId, 'echo') }),
      () => viewer.updateJob({ id: jobA, spec: jobSpec(groupA.groupId, 'other') }),
    ]) {
      await expect(call()).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
        details: expect.stringContaining('viewers only read') as unknown,
      });
    }
    expect(await jobRows(database.url)).toBe(before);
  });

  it('reserves groups, users, executor tokens and the dashboard to admins', async () => {
    for (const who of ['operator', 'viewer'] as const) {
      const client = users[who].client;
      for (const call of [
        () => client.createExecutorGroup({ spec: { appName: `${who}-group`, title: 'x' } }),
        () => client.updateExecutorGroup({ id: groupA.groupId, spec: { appName: 'renamed', title: 'x' } }),
        () => client.deleteExecutorGroup({ id: groupA.groupId }),
        () => client.rotateExecutorGroupToken({ id: groupA.groupId }),
        () => client.createUser({ username: 'x', password: 'long-enough-password', role: 1, groupIds: [] }),
        () => client.updateUser({ id: users[who].id, role: UserRole.USER_ROLE_ADMIN }),
        () => client.listUsers({}),
        () => client.getUser({ id: users.admin.id }),
        () => client.getDashboard({}),
        () => client.createApiToken({ name: 'for someone else', userId: users.admin.id }),
      ]) {
        await expect(call()).rejects.toMatchObject({
          code: Status.PERMISSION_DENIED,
          details: expect.stringContaining('USER_ROLE_ADMIN') as unknown,
        });
      }
      expect((await client.getUser({ id: users[who].id })).user!.username).toBe(who);
    }
    expect((await users.admin.client.getDashboard({})).groupCount).toBe('2');
  });

  it('keeps one admin user: the last one can be neither demoted nor deleted, nor delete itself', async () => {
    const adminClient = users.admin.client;
    await expect(adminClient.deleteUser({ id: users.admin.id })).rejects.toMatchObject({
      code: Status.FAILED_PRECONDITION,
    });
    await expect(
      root.updateUser({ id: users.admin.id, role: UserRole.USER_ROLE_VIEWER }),
    ).rejects.toMatchObject({
      code: Status.FAILED_PRECONDITION,
      details: expect.stringContaining('last admin') as unknown,
    });
    await expect(root.deleteUser({ id: users.admin.id })).rejects.toMatchObject({
      code: Status.FAILED_PRECONDITION,
    });
  });

  it('changes grants at once, and validates users naming the field', async () => {
    const { user } = await root.createUser({
      username: 'temp-operator',
      password: 'temp-operator-password',
      role: UserRole.USER_ROLE_OPERATOR,
      groupIds: [groupB.groupId],
    });
    const login = await clientFor('').login({
      username: 'temp-operator',
      password: 'temp-operator-password',
    });
    const temp = clientFor(login.token);
    expect((await temp.getJob({ id: jobB })).job!.id).toBe(jobB);
    await root.updateUser({ id: user!.id, groupIds: [groupA.groupId], replaceGroupIds: true });
    await expect(temp.getJob({ id: jobB })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    expect((await temp.getJob({ id: jobA })).job!.id).toBe(jobA);

    const bad = [
      [{ username: 'Upper', password: 'long-enough-password', role: 2 }, 'username'],
      [{ username: 'short-pass', password: 'short', role: 2 }, 'password'],
      [{ username: 'no-role', password: 'long-enough-password', role: 0 }, 'role'],
      [{ username: 'bad-role', password: 'long-enough-password', role: 99 as UserRole }, 'role'],
    ] as const;
    for (const [request, field] of bad) {
      await expect(root.createUser({ groupIds: [], ...request })).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(new RegExp(`^${field}:`)) as unknown,
      });
    }
    await expect(
      root.createUser({
        username: 'ghost-grant',
        password: 'long-enough-password',
        role: 2,
        groupIds: ['999999'],
      }),
    ).rejects.toMatchObject({
      code: Status.NOT_FOUND,
      details: expect.stringContaining('group_ids') as unknown,
    });
    await expect(
      root.createUser({ username: 'operator', password: 'long-enough-password', role: 2, groupIds: [] }),
    ).rejects.toMatchObject({ code: Status.ALREADY_EXISTS });
  });

  it('issues API tokens that act as their user until revoked or expired, and ends sessions on logout', async () => {
    const operator = users.operator.client;
    const created = await operator.createApiToken({ name: 'nightly script' });
    expect(created.token).toMatch(/^jsa_[A-Za-z0-9_-]{43}$/);
    const script = clientFor(created.token);
    expect((await script.whoAmI({})).user!.username).toBe('operator');
    await expect(script.getJob({ id: jobB })).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    const listed = await operator.listApiTokens({});
    expect(listed.apiTokens.map(token => token.name)).toEqual(['nightly script']);
    expect(JSON.stringify(listed)).not.toContain(created.token);

    await operator.revokeApiToken({ id: created.apiToken!.id });
    await expect(script.whoAmI({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });

    const shortLived = await operator.createApiToken({ name: 'brief', ttl: { seconds: '1', nanos: 0 } });
    const brief = clientFor(shortLived.token);
    expect((await brief.whoAmI({})).role).toBe(UserRole.USER_ROLE_OPERATOR);
    await waitFor(
      async () =>
        brief.whoAmI({}).then(
          () => undefined,
          (error: { code?: Status }) => (error.code === Status.UNAUTHENTICATED ? true : undefined),
        ),
      { what: 'the token to expire', intervalMs: 200 },
    );

    const session = await clientFor('').login({ username: 'viewer', password: PASSWORDS.viewer });
    const viewerSession = clientFor(session.token);
    await viewerSession.logout({});
    await expect(viewerSession.whoAmI({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    expect((await users.viewer.client.whoAmI({})).user!.username).toBe('viewer');
  });

  it('revokes sessions when a password changes, and checks the current one', async () => {
    const login = await clientFor('').login({ username: 'viewer', password: PASSWORDS.viewer });
    const viewer = clientFor(login.token);
    await expect(
      viewer.changePassword({ currentPassword: 'wrong-password', newPassword: 'viewer-password-4567' }),
    ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    await viewer.changePassword({ currentPassword: PASSWORDS.viewer, newPassword: 'viewer-password-4567' });
    await expect(viewer.whoAmI({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    await expect(users.viewer.client.whoAmI({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    const again = await clientFor('').login({ username: 'viewer', password: 'viewer-password-4567' });
    users.viewer = { ...users.viewer, client: clientFor(again.token), token: again.token };
    PASSWORDS.viewer = 'viewer-password-4567';
  });

  it('never writes a password, token or hash to the log', async () => {
    await waitFor(() => (capture.lines.some(line => line.includes('user logged in')) ? true : undefined));
    const logged = capture.lines.join('');
    expect(logged).toContain('"username":"operator"');
    for (const secret of [
      ...Object.values(PASSWORDS),
      'viewer-password-0123',
      users.operator.token,
      users.admin.token,
      groupA.token,
      TEST_ADMIN_TOKEN,
    ]) {
      expect(logged).not.toContain(secret);
    }
    expect(logged).not.toContain('scrypt$');
  });
});

describe('executor tokens and results bound to their session', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let client: AdminClient;
  const raws: RawExecutor[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    client = admin.client;
  });

  afterAll(async () => {
    await Promise.all(raws.map(raw => raw.close()));
    await admin?.stop();
    await database?.drop();
  });

  function connect(token: string, appName: string, instanceName: string): RawExecutor {
    const raw = new RawExecutor(admin.address, token);
    raws.push(raw);
    raw.register({ appName, instanceName });
    return raw;
  }

  it('accepts a result only from the session its run was sent to', async () => {
    const a = await createGroup(client, 'bound-a');
    const b = await createGroup(client, 'bound-b');
    const runner = connect(a.token, 'bound-a', 'runner');
    await runner.next('welcome');
    const jobId = await createJob(client, a.groupId, 'echo');
    const triggered = client.triggerJob({ jobId });
    const request = await runner.next('runRequest');
    runner.send({
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
          outcome: RunOutcome.RUN_OUTCOME_FAILED,
          message,
          startedAt: new Date(),
          finishedAt: new Date(),
        },
      },
    });

    // Another instance of the same group, and an executor of another group, forge results.
    const sibling = connect(a.token, 'bound-a', 'sibling');
    await sibling.next('welcome');
    sibling.send(result('forged by a sibling'));
    expect((await sibling.next('resultAck')).refused).toEqual([
      { logId: request.logId, attempt: request.attempt },
    ]);
    const stranger = connect(b.token, 'bound-b', 'stranger');
    await stranger.next('welcome');
    stranger.send(result('forged by another group'));
    expect((await stranger.next('resultAck')).refused).toHaveLength(1);
    expect((await client.getLog({ id: request.logId })).log!.outcome).toBe(0);

    runner.send({
      ...result('the real one'),
      kind: {
        ...result('').kind,
        value: {
          ...result('').kind.value,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'the real one',
        },
      },
    });
    expect((await runner.next('resultAck')).results).toEqual([
      { logId: request.logId, attempt: request.attempt },
    ]);
    const { log } = await client.getLog({ id: request.logId });
    expect(log).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'the real one' });
  });

  it('accepts on a new session the results the same instance lists at Register', async () => {
    const group = await createGroup(client, 'bound-reconnect');
    const first = connect(group.token, 'bound-reconnect', 'worker');
    await first.next('welcome');
    const jobId = await createJob(client, group.groupId, 'echo');
    const triggered = client.triggerJob({ jobId });
    const request = await first.next('runRequest');
    first.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    await triggered;
    await first.close();

    const run = { logId: request.logId, attempt: request.attempt };
    const impostor = new RawExecutor(admin.address, group.token);
    raws.push(impostor);
    impostor.register({ appName: 'bound-reconnect', instanceName: 'impostor', unacknowledgedResults: [run] });
    await impostor.next('welcome');
    const forged = {
      kind: {
        $case: 'runResult' as const,
        value: {
          ...run,
          outcome: RunOutcome.RUN_OUTCOME_FAILED,
          message: 'impostor',
          startedAt: undefined,
          finishedAt: undefined,
        },
      },
    };
    impostor.send(forged);
    expect((await impostor.next('resultAck')).refused).toEqual([run]);

    const second = new RawExecutor(admin.address, group.token);
    raws.push(second);
    second.register({ appName: 'bound-reconnect', instanceName: 'worker', unacknowledgedResults: [run] });
    await second.next('welcome');
    second.send({
      kind: {
        ...forged.kind,
        value: {
          ...forged.kind.value,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'after reconnect',
        },
      },
    });
    expect((await second.next('resultAck')).results).toEqual([run]);
    expect((await client.getLog({ id: run.logId })).log!.handleMessage).toBe('after reconnect');
  });

  it('never sends a run to an executor of another group, even when a trigger names it', async () => {
    const mine = await createGroup(client, 'named-mine');
    const theirs = await createGroup(client, 'named-theirs');
    const outsider = connect(theirs.token, 'named-theirs', 'outsider');
    await outsider.next('welcome');
    const jobId = await createJob(client, mine.groupId, 'echo');
    const { logIds } = await client.triggerJob({ jobId, executorInstances: ['outsider'] });
    const { log } = await client.getLog({ id: logIds[0]! });
    expect(log!.triggerMessage).toContain('none of the requested executors (outsider)');
    expect(log!.executorInstance).toBe('');
    expect(outsider.count('runRequest')).toBe(0);
  });

  it('kills runs an executor reports at Register that the admin gave up on', async () => {
    const quick = await startTestAdmin(database.url, {
      requestDeadlineMs: 300,
      lostRunGraceMs: 200,
      failureMonitorIntervalMs: 50,
    });
    try {
      const group = await createGroup(quick.client, 'given-up');
      const silent = new RawExecutor(quick.address, group.token);
      raws.push(silent);
      silent.register({ appName: 'given-up', instanceName: 'sleepy' });
      await silent.next('welcome');
      const jobId = await createJob(quick.client, group.groupId, 'echo');
      // The executor never answers and stays away past the lost-run grace period: the
      // admin declares the run lost (and would retry it).
      const { logIds } = await quick.client.triggerJob({ jobId });
      const request = await silent.next('runRequest');
      expect(request.answerBy!.getTime()).toBeGreaterThan(Date.now() - 1_000);
      await silent.done;
      const lost = await waitFor(async () => {
        const { log } = await quick.client.getLog({ id: logIds[0]! });
        return log?.outcome === RunOutcome.RUN_OUTCOME_LOST ? log : undefined;
      });
      expect(lost.triggerMessage).toContain('did not answer within 300 ms');

      // It wakes up, says it is running that run after all, and is told to kill it.
      const run = { logId: request.logId, attempt: request.attempt };
      const woken = new RawExecutor(quick.address, group.token);
      raws.push(woken);
      woken.register({ appName: 'given-up', instanceName: 'sleepy', running: [run] });
      await woken.next('welcome');
      const kill = await woken.next('killRequest');
      expect(kill.logId).toBe(run.logId);
      woken.send({
        kind: {
          $case: 'runResult',
          value: {
            ...run,
            outcome: RunOutcome.RUN_OUTCOME_KILLED,
            message: 'killed',
            startedAt: undefined,
            finishedAt: undefined,
          },
        },
      });
      expect((await woken.next('resultAck')).refused).toEqual([run]);
      expect((await quick.client.getLog({ id: run.logId })).log!.outcome).toBe(RunOutcome.RUN_OUTCOME_LOST);
    } finally {
      await quick.stop();
    }
  });

  it('keeps a rotated token working for its grace period only', async () => {
    const group = await createGroup(client, 'rotating');
    const { accessToken: second } = await client.rotateExecutorGroupToken({
      id: group.groupId,
      previousTokenGrace: { seconds: '60', nanos: 0 },
    });
    const old = connect(group.token, 'rotating', 'old-token');
    await old.next('welcome');
    const fresh = connect(second, 'rotating', 'new-token');
    await fresh.next('welcome');

    await client.rotateExecutorGroupToken({ id: group.groupId });
    const refused = connect(second, 'rotating', 'revoked-token');
    await expect(refused.next('welcome')).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    const refusedOld = connect(group.token, 'rotating', 'oldest-token');
    await expect(refusedOld.next('welcome')).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    await expect(
      client.rotateExecutorGroupToken({ id: group.groupId, previousTokenGrace: { seconds: '-1', nanos: 0 } }),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('previous_token_grace') as unknown,
    });
  });
});

describe('the first admin account', () => {
  let database: TestDatabase;
  const apps: AdminApp[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    for (const app of apps) await app.stop();
    await database?.drop();
  });

  it('has no default: with no token and no user configured, nothing is accepted', async () => {
    const app = await startAdmin(database.url, {});
    apps.push(app);
    for (const token of ['', 'admin', '123456', 'default_token']) {
      const { client, channel } = adminClient(app.grpcAddress, token);
      await expect(client.listJobs({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
      await expect(client.login({ username: 'admin', password: '123456' })).rejects.toMatchObject({
        code: Status.UNAUTHENTICATED,
      });
      channel.close();
    }
    await app.stop();
  });

  it('comes from configuration once, and a restart never resets its password', async () => {
    const dir = await tempDir('initial-admin');
    const passwordFile = path.join(dir, 'password');
    await writeFile(passwordFile, 'configured-password-0123\n', { mode: 0o600 });
    const env = {
      JOBSTREAM_INITIAL_ADMIN_USERNAME: 'root',
      JOBSTREAM_INITIAL_ADMIN_PASSWORD_FILE: passwordFile,
    };
    const first = await startAdmin(database.url, env);
    apps.push(first);
    const { client, channel } = adminClient(first.grpcAddress, '');
    const login = await client.login({ username: 'root', password: 'configured-password-0123' });
    expect(login.user!.role).toBe(UserRole.USER_ROLE_ADMIN);
    channel.close();
    await first.stop();

    await writeFile(passwordFile, 'another-password-456789\n');
    const second = await startAdmin(database.url, env);
    apps.push(second);
    const again = adminClient(second.grpcAddress, '');
    await expect(
      again.client.login({ username: 'root', password: 'another-password-456789' }),
    ).rejects.toMatchObject({
      code: Status.UNAUTHENTICATED,
    });
    await again.client.login({ username: 'root', password: 'configured-password-0123' });
    again.channel.close();
    await second.stop();
  });

  it('can be added with `jobstream-admin create-user`, reading the password from stdin', async () => {
    const child = spawn(
      process.execPath,
      [
        '--conditions=jobstream-source',
        '--import',
        'tsx',
        'admin/src/cli.ts',
        'create-user',
        '--username',
        'cli-operator',
        '--role',
        'operator',
      ],
      { env: { ...process.env, DATABASE_URL: database.url }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end('cli-password-0123456\n');
    const code = await new Promise<number | null>(resolve => child.once('exit', resolve));
    expect(output).toMatch(/created user "cli-operator" \(id \d+, role operator\)/);
    expect(output).not.toContain('cli-password-0123456');
    expect(code).toBe(0);

    const app = await startAdmin(database.url, {});
    apps.push(app);
    const { client, channel } = adminClient(app.grpcAddress, '');
    const login = await client.login({ username: 'cli-operator', password: 'cli-password-0123456' });
    expect(login.user!.role).toBe(UserRole.USER_ROLE_OPERATOR);
    channel.close();

    const refused = spawn(
      process.execPath,
      [
        '--conditions=jobstream-source',
        '--import',
        'tsx',
        'admin/src/cli.ts',
        'create-user',
        '--username',
        'weak',
        '--role',
        'viewer',
      ],
      { env: { ...process.env, DATABASE_URL: database.url }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let refusal = '';
    refused.stderr.on('data', (chunk: Buffer) => (refusal += chunk.toString()));
    refused.stdin.end('short\n');
    expect(await new Promise(resolve => refused.once('exit', resolve))).toBe(1);
    expect(refusal).toContain('the password must be at least 12 characters');
    await app.stop();
  });
});
