import { Status } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogStatus, UserRole, type JobSpec } from '@jobstream/proto/admin';
import { GlueType } from '@jobstream/proto/types';
import {
  adminClient,
  finishedLog,
  startTestAdmin,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { jobSpec } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/** Script (GLUE) jobs, the admin's side: permission, versions, group and size limits, dispatch. */

const PASSWORD = 'glue-password-0123';
const MAX_BYTES = 2_048;
const { GLUE_TYPE_BEAN: BEAN, GLUE_TYPE_SHELL: SHELL, GLUE_TYPE_PYTHON: PYTHON } = GlueType;

function shellSpec(groupId: string, source: string, overrides: Partial<JobSpec> = {}): JobSpec {
  return jobSpec(groupId, '', { glueType: SHELL, glueSource: source, ...overrides });
}

describe('script jobs (admin)', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let peer: TestAdmin;
  let root: AdminClient;
  const closers: (() => unknown)[] = [];
  let scripts: { id: string; token: string };
  let plain: { id: string; token: string };
  /** Operator of both groups, granted the script permission. */
  let scripter: AdminClient;
  /** Operator of both groups, without it. */
  let operator: AdminClient;
  /** Admin user, without it until a test grants it. */
  let boss: AdminClient;
  let bossId: string;
  /** Viewer of both groups. */
  let viewer: AdminClient;

  async function group(appName: string, scriptKinds: GlueType[]) {
    const created = await root.createExecutorGroup({ spec: { appName, title: appName, scriptKinds } });
    return { id: created.group!.id, token: created.accessToken };
  }

  async function user(username: string, role: UserRole, canEditScripts: boolean) {
    const { user: created } = await root.createUser({
      username,
      password: PASSWORD,
      role,
      groupIds: role === UserRole.USER_ROLE_ADMIN ? [] : [scripts.id, plain.id],
      canEditScripts,
    });
    const { token } = await root.login({ username, password: PASSWORD });
    const { client, channel } = adminClient(admin.address, token);
    closers.push(() => channel.close());
    return { client, id: created!.id };
  }

  function raw(target: TestAdmin, token: string, appName: string, instanceName: string, kinds: GlueType[]) {
    const executor = new RawExecutor(target.address, token);
    closers.push(() => executor.close());
    executor.register({ appName, instanceName, scriptKinds: kinds });
    executor.keepBeating(1_000);
    return executor;
  }

  /** Once `instanceName` is in the registry, and the admin's cached view of it (250 ms) has expired. */
  async function registered(instanceName: string): Promise<void> {
    await waitFor(async () => {
      const { executors } = await root.listExecutors({ appName: 'glue-scripts' });
      return executors.some(executor => executor.instanceName === instanceName) || undefined;
    });
    await new Promise(resolve => setTimeout(resolve, 300));
  }

  async function jobCount(): Promise<string> {
    return (await root.listJobs({})).totalCount;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { scriptMaxBytes: MAX_BYTES, requestDeadlineMs: 2_000 });
    root = admin.client;
    scripts = await group('glue-scripts', [SHELL, PYTHON]);
    plain = await group('glue-plain', []);
    ({ client: scripter } = await user('scripter', UserRole.USER_ROLE_OPERATOR, true));
    ({ client: operator } = await user('operator', UserRole.USER_ROLE_OPERATOR, false));
    ({ client: boss, id: bossId } = await user('boss', UserRole.USER_ROLE_ADMIN, false));
    ({ client: viewer } = await user('viewer', UserRole.USER_ROLE_VIEWER, true));
  });

  afterAll(async () => {
    for (const close of closers) await close();
    await peer?.stop();
    await admin?.stop();
    await database?.drop();
  });

  describe('the script permission', () => {
    it('refuses creating a script job to an operator without it, and stores nothing', async () => {
      const before = await jobCount();
      await expect(operator.createJob({ spec: shellSpec(scripts.id, 'echo hi') })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
        details: expect.stringContaining('can_edit_scripts') as unknown,
      });
      expect(await jobCount()).toBe(before);
    });

    it('lets an operator holding it create a script job, stored as version 1 by its name', async () => {
      const { job } = await scripter.createJob({
        spec: shellSpec(scripts.id, 'echo one', { glueRemark: 'first' }),
      });
      expect(job!.spec!.glueType).toBe(SHELL);
      expect(job!.spec!.glueSource).toBe('echo one');
      // Saved without a timeout: the configured default (JOBSTREAM_SCRIPT_DEFAULT_TIMEOUT_SECONDS).
      expect(job!.spec!.timeoutSeconds).toBe(3_600);
      const { versions } = await scripter.listJobScriptVersions({ jobId: job!.id, includeSource: true });
      expect(versions).toHaveLength(1);
      expect(versions[0]).toMatchObject({
        jobId: job!.id,
        glueType: SHELL,
        source: 'echo one',
        remark: 'first',
        author: 'scripter',
        restoredFromId: '0',
      });
      expect(versions[0]!.createdAt).toEqual(job!.glueUpdatedAt);
    });

    it('refuses changing a script (full spec or update mask) without it, but not other fields', async () => {
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo before') });
      const id = job!.id;
      await expect(
        operator.updateJob({ id, spec: shellSpec(scripts.id, 'echo after') }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      await expect(
        operator.updateJob({ id, spec: shellSpec(scripts.id, 'echo after'), updateMask: ['glue_source'] }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      await expect(
        operator.updateJob({
          id,
          spec: jobSpec(scripts.id, 'echo'),
          updateMask: ['glue_type', 'glue_source', 'handler'],
        }),
      ).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
        details: expect.stringContaining('script') as unknown,
      });
      // Operating the job stays open to it: the description changes, the script does not.
      const { job: renamed } = await operator.updateJob({
        id,
        spec: shellSpec(scripts.id, 'ignored', { description: 'renamed' }),
        updateMask: ['description'],
      });
      expect(renamed!.spec!.description).toBe('renamed');
      expect(renamed!.spec!.glueSource).toBe('echo before');
      const { versions } = await root.listJobScriptVersions({ jobId: id, includeSource: false });
      expect(versions).toHaveLength(1);
      expect(versions[0]!.source).toBe('');
    });

    it('refuses turning a handler job into a script job without it', async () => {
      const { job } = await operator.createJob({ spec: jobSpec(scripts.id, 'echo') });
      await expect(
        operator.updateJob({ id: job!.id, spec: shellSpec(scripts.id, 'echo now a script') }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      const { job: converted } = await scripter.updateJob({
        id: job!.id,
        spec: shellSpec(scripts.id, 'echo now a script'),
      });
      expect(converted!.spec!.glueType).toBe(SHELL);
      expect(converted!.spec!.handler).toBe('');
    });

    it('is not part of the admin role: an admin user needs the grant, which UpdateUser keeps when unset', async () => {
      await expect(boss.createJob({ spec: shellSpec(scripts.id, 'echo boss') })).rejects.toMatchObject({
        code: Status.PERMISSION_DENIED,
      });
      await root.updateUser({ id: bossId, canEditScripts: true });
      const { job } = await boss.createJob({ spec: shellSpec(scripts.id, 'echo boss') });
      const { user: kept } = await root.updateUser({ id: bossId });
      expect(kept!.canEditScripts).toBe(true);
      const { versions } = await boss.listJobScriptVersions({ jobId: job!.id, includeSource: false });
      expect(versions[0]!.author).toBe('boss');
      const { user: withdrawn } = await root.updateUser({ id: bossId, canEditScripts: false });
      expect(withdrawn!.canEditScripts).toBe(false);
      await expect(
        boss.updateJob({ id: job!.id, spec: shellSpec(scripts.id, 'echo withdrawn') }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    });

    it('is held by a static admin token, which signs its versions', async () => {
      const { job } = await root.createJob({ spec: shellSpec(scripts.id, 'echo static') });
      const { versions } = await root.listJobScriptVersions({ jobId: job!.id, includeSource: false });
      expect(versions[0]!.author).toBe('static admin token');
    });

    it('lets a viewer read versions but not restore them', async () => {
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo viewed') });
      const { versions } = await viewer.listJobScriptVersions({ jobId: job!.id, includeSource: true });
      expect(versions[0]!.source).toBe('echo viewed');
      await expect(
        viewer.restoreJobScriptVersion({ jobId: job!.id, versionId: versions[0]!.id, remark: '' }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    });
  });

  describe('versions', () => {
    it('lists newest first, keeps the last 30, and restores an older one as a new version', async () => {
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo v1') });
      const id = job!.id;
      for (let n = 2; n <= 32; n += 1) {
        await scripter.updateJob({ id, spec: shellSpec(scripts.id, `echo v${n}`, { glueRemark: `r${n}` }) });
      }
      const { versions } = await scripter.listJobScriptVersions({ jobId: id, includeSource: true });
      expect(versions).toHaveLength(30);
      expect(versions.map(version => version.source)).toEqual(
        Array.from({ length: 30 }, (_, index) => `echo v${32 - index}`),
      );
      const ids = versions.map(version => BigInt(version.id));
      expect([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0))).toEqual(ids);

      const oldest = versions.at(-1)!;
      expect(oldest.source).toBe('echo v3');
      await expect(
        operator.restoreJobScriptVersion({ jobId: id, versionId: oldest.id, remark: '' }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
      const restored = await scripter.restoreJobScriptVersion({
        jobId: id,
        versionId: oldest.id,
        remark: '',
      });
      expect(restored.job!.spec!.glueSource).toBe('echo v3');
      expect(restored.version).toMatchObject({
        source: 'echo v3',
        restoredFromId: oldest.id,
        remark: `restored from version ${oldest.id}`,
        author: 'scripter',
      });
      expect(restored.job!.glueUpdatedAt).toEqual(restored.version!.createdAt);
      const { job: current } = await root.getJob({ id });
      expect(current!.spec!.glueSource).toBe('echo v3');
      // Still 30: the restore pushed the oldest one out.
      const after = await root.listJobScriptVersions({ jobId: id, includeSource: false });
      expect(after.versions).toHaveLength(30);
      expect(after.versions[0]!.id).toBe(restored.version!.id);
      await expect(root.getJobScriptVersion({ jobId: id, versionId: oldest.id })).rejects.toMatchObject({
        code: Status.NOT_FOUND,
      });
    });

    it('does not hand out a version of another job', async () => {
      const { job: a } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo a') });
      const { job: b } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo b') });
      const { versions } = await root.listJobScriptVersions({ jobId: a!.id, includeSource: false });
      const { version } = await root.getJobScriptVersion({ jobId: a!.id, versionId: versions[0]!.id });
      expect(version!.source).toBe('echo a');
      await expect(
        root.getJobScriptVersion({ jobId: b!.id, versionId: versions[0]!.id }),
      ).rejects.toMatchObject({ code: Status.NOT_FOUND });
      await expect(
        scripter.restoreJobScriptVersion({ jobId: b!.id, versionId: versions[0]!.id, remark: '' }),
      ).rejects.toMatchObject({ code: Status.NOT_FOUND });
    });
  });

  describe('limits', () => {
    it('refuses a script job in a group that does not allow its kind', async () => {
      await expect(scripter.createJob({ spec: shellSpec(plain.id, 'echo no') })).rejects.toMatchObject({
        code: Status.FAILED_PRECONDITION,
        details: expect.stringMatching(/^spec\.glue_type: .*scripts are disabled/) as unknown,
      });
      await expect(
        scripter.createJob({
          spec: shellSpec(scripts.id, 'console.log(1)', { glueType: GlueType.GLUE_TYPE_NODEJS }),
        }),
      ).rejects.toMatchObject({
        code: Status.FAILED_PRECONDITION,
        details: expect.stringMatching(/^spec\.glue_type: /) as unknown,
      });
    });

    it('refuses a source over the size limit, an empty source, PHP, and a handler on a script job', async () => {
      await expect(
        scripter.createJob({ spec: shellSpec(scripts.id, 'x'.repeat(MAX_BYTES + 1)) }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.glue_source: /) as unknown,
      });
      // The limit counts UTF-8 bytes, not characters.
      await expect(
        scripter.createJob({ spec: shellSpec(scripts.id, 'é'.repeat(MAX_BYTES / 2 + 1)) }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.glue_source: /) as unknown,
      });
      await scripter.createJob({ spec: shellSpec(scripts.id, 'x'.repeat(MAX_BYTES)) });
      await expect(scripter.createJob({ spec: shellSpec(scripts.id, '') })).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.glue_source: /) as unknown,
      });
      await expect(
        scripter.createJob({
          spec: shellSpec(scripts.id, '<?php echo 1;', { glueType: GlueType.GLUE_TYPE_PHP }),
        }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.glue_type: /) as unknown,
      });
      await expect(
        scripter.createJob({ spec: shellSpec(scripts.id, 'echo', { handler: 'echo' }) }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.handler: /) as unknown,
      });
      await expect(
        scripter.createJob({ spec: jobSpec(scripts.id, 'echo', { glueType: BEAN, glueSource: 'echo' }) }),
      ).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^spec\.glue_source: /) as unknown,
      });
    });

    it('takes only script kinds in a group spec, and script_kinds in an update mask', async () => {
      for (const kind of [BEAN, GlueType.GLUE_TYPE_UNSPECIFIED, GlueType.GLUE_TYPE_PHP]) {
        await expect(
          root.createExecutorGroup({
            spec: { appName: 'glue-bad', title: 'bad', scriptKinds: [SHELL, kind] },
          }),
        ).rejects.toMatchObject({
          code: Status.INVALID_ARGUMENT,
          details: expect.stringMatching(/^spec\.script_kinds\[1\]: /) as unknown,
        });
      }
      const changing = await group('glue-changing', []);
      const { group: changed } = await root.updateExecutorGroup({
        id: changing.id,
        spec: { appName: 'ignored', title: 'ignored', scriptKinds: [PYTHON, SHELL, PYTHON] },
        updateMask: ['script_kinds'],
      });
      expect(changed).toMatchObject({ appName: 'glue-changing', scriptKinds: [SHELL, PYTHON] });
      await expect(
        operator.updateExecutorGroup({
          id: changing.id,
          spec: { appName: 'x', title: 'x', scriptKinds: [] },
          updateMask: ['script_kinds'],
        }),
      ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    });
  });

  describe('dispatch', () => {
    it('never sends a script to an executor that did not opt in: the trigger fails saying so', async () => {
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo refused') });
      const bystander = raw(admin, scripts.token, 'glue-scripts', 'no-scripts', []);
      await bystander.next('welcome');
      const { logIds } = await scripter.triggerJob({ jobId: job!.id, executorInstances: [] });
      const log = await finishedLog(root, logIds[0]!);
      expect(log.status).toBe(LogStatus.LOG_STATUS_FAILED);
      expect(log.triggerMessage).toContain(
        'no executor of group glue-scripts runs SHELL scripts (none opted in',
      );
      // A handler job of the same group still goes to it.
      const { job: bean } = await operator.createJob({ spec: jobSpec(scripts.id, 'echo') });
      await operator.triggerJob({ jobId: bean!.id, executorInstances: [] });
      const request = await bystander.next('runRequest');
      expect(request.glueType).toBe(BEAN);
      expect(request.glueSource).toBe('');
      expect(bystander.count('runRequest')).toBe(1);
      await bystander.close();
    });

    it('sends an opted-in executor the kind, source and version time, and lists its kinds', async () => {
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo "$1"') });
      const runner = raw(admin, scripts.token, 'glue-scripts', 'runs-shell', [
        SHELL,
        BEAN,
        GlueType.GLUE_TYPE_PHP,
      ]);
      await runner.next('welcome');
      const { executors } = await root.listExecutors({ appName: 'glue-scripts' });
      expect(executors.find(executor => executor.instanceName === 'runs-shell')?.scriptKinds).toEqual([
        SHELL,
      ]);
      await scripter.triggerJob({ jobId: job!.id, executorInstances: [] });
      const request = await runner.next('runRequest');
      expect(request).toMatchObject({
        jobId: job!.id,
        glueType: SHELL,
        glueSource: 'echo "$1"',
        handler: '',
      });
      expect(request.glueUpdatedAt).toEqual(job!.glueUpdatedAt);
      expect(request.timeout?.seconds).toBe('3600');
      await runner.close();
    });

    it('routes through a peer admin on the kinds in the presence row', async () => {
      peer = await startTestAdmin(database.url, { scriptMaxBytes: MAX_BYTES, requestDeadlineMs: 2_000 });
      const { job } = await scripter.createJob({ spec: shellSpec(scripts.id, 'echo via peer') });
      const refusing = raw(peer, scripts.token, 'glue-scripts', 'peer-no-scripts', []);
      await refusing.next('welcome');
      await registered('peer-no-scripts');
      const failed = await scripter.triggerJob({ jobId: job!.id, executorInstances: ['peer-no-scripts'] });
      expect((await finishedLog(root, failed.logIds[0]!)).triggerMessage).toContain('none opted in');
      expect(refusing.count('runRequest')).toBe(0);

      const running = raw(peer, scripts.token, 'glue-scripts', 'peer-shell', [SHELL]);
      await running.next('welcome');
      await registered('peer-shell');
      await scripter.triggerJob({ jobId: job!.id, executorInstances: ['peer-shell', 'peer-no-scripts'] });
      const request = await running.next('runRequest');
      expect(request).toMatchObject({ glueType: SHELL, glueSource: 'echo via peer' });
      expect(refusing.count('runRequest')).toBe(0);
    });
  });
});
