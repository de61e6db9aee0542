import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Status } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, LogStatus, UserRole, type JobSpec } from '@jobstream/proto/admin';
import { RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import { GLUE_TYPE, SCRIPTS } from './conformance/scripts.js';
import type { ConformanceScriptKind } from './conformance/sdks.js';
import { adminClient, finishedLog, TEST_ADMIN_TOKEN, waitFor, type AdminClient } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { jobSpec, tempDir } from './support/fixtures.js';
import { processAlive, processGone } from './support/process-alive.js';
import { startAdminProcess, startExecutorProcess, type ChildTs } from './support/processes.js';
import { DEBIAN_PYTHON } from './support/python-reflection.js';

/**
 * Script (GLUE) jobs end to end: a real admin process and real executor processes (the Node
 * SDK), driven only through the operator API. Two executors opted into every kind, in a group
 * allowing them all, with one that did not opt in beside them; another group whose only
 * executor did not opt in. The SDK conformance suite checks each request an executor can get;
 * test/glue-admin.test.ts the admin's side (permission, versions, limits) in detail.
 */

const KINDS: readonly ConformanceScriptKind[] = ['SHELL', 'PYTHON', 'NODEJS'];
const APP = 'glue-e2e';
const OFF_APP = 'glue-e2e-off';
const PASSWORD = 'glue-e2e-password-0123';
/** The line a hold script (SCRIPTS[kind].hold) names its grandchild's pid with. */
const GRANDCHILD = /^grandchild (\d+)$/;

describe('script jobs end to end (real admin and executor processes)', () => {
  let database: TestDatabase;
  let adminAddress: string;
  let client: AdminClient;
  const children: ChildTs[] = [];
  const closers: (() => void)[] = [];
  let groupId: string;
  let offGroupId: string;
  let markers: string;

  function scriptSpec(
    group: string,
    kind: ConformanceScriptKind,
    source: string,
    more: Partial<JobSpec> = {},
  ) {
    return jobSpec(group, '', { glueType: GLUE_TYPE[kind], glueSource: source, ...more });
  }

  async function scriptJob(kind: ConformanceScriptKind, source: string, more: Partial<JobSpec> = {}) {
    const { job } = await client.createJob({ spec: scriptSpec(groupId, kind, source, more) });
    return job!.id;
  }

  async function trigger(jobId: string, param?: string, executorInstances: string[] = []): Promise<string[]> {
    return (await client.triggerJob({ jobId, executorInstances, ...(param === undefined ? {} : { param }) }))
      .logIds;
  }

  /** The run's log as the executor that ran it has it (ReadExecutorLog), without the time stamps. */
  async function output(logId: string): Promise<{ lines: string[]; end: boolean }> {
    const chunk = await client.readExecutorLog({ logId, fromLine: 1, maxLines: 1000 });
    return { lines: chunk.lines.map(line => line.slice(line.indexOf(' ') + 1)), end: chunk.end };
  }

  /**
   * Reads a running hold script's log (SCRIPTS[kind].hold) until it names its grandchild and
   * has ticked twice, and checks the run was still RUNNING after that read: its output came
   * live, not at its end.
   */
  async function grandchildOf(logId: string): Promise<number> {
    const read = await waitFor(
      async () => {
        const { lines, end } = await output(logId);
        const named = lines.find(line => GRANDCHILD.test(line));
        const ticks = lines.filter(line => line === 'tick').length;
        return named !== undefined && ticks >= 2
          ? { pid: Number(GRANDCHILD.exec(named)![1]), end }
          : undefined;
      },
      { intervalMs: 50, what: `log ${logId} to name its grandchild and tick` },
    );
    expect(read.end).toBe(false);
    const { log } = await client.getLog({ id: logId });
    expect(log!.status).toBe(LogStatus.LOG_STATUS_RUNNING);
    expect(processAlive(read.pid)).toBe(true);
    return read.pid;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    const admin = await startAdminProcess({
      databaseUrl: database.url,
      adminToken: TEST_ADMIN_TOKEN,
      // Three missed beats close a stream: slow enough for a loaded machine.
      beatIntervalMs: 1_000,
    });
    children.push(admin.child);
    adminAddress = admin.address;
    const connected = adminClient(admin.address);
    client = connected.client;
    closers.push(() => connected.channel.close());

    const scriptKinds = KINDS.map(kind => GLUE_TYPE[kind]);
    const group = await client.createExecutorGroup({ spec: { appName: APP, title: APP, scriptKinds } });
    const offGroup = await client.createExecutorGroup({
      spec: { appName: OFF_APP, title: OFF_APP, scriptKinds },
    });
    groupId = group.group!.id;
    offGroupId = offGroup.group!.id;
    markers = await tempDir('glue-e2e-markers');

    const scripts = {
      kinds: KINDS,
      interpreters: { PYTHON: existsSync(DEBIAN_PYTHON) ? DEBIAN_PYTHON : 'python3' },
      killGraceMs: 2_000,
    };
    const start = async (instanceName: string, token: string, appName: string, withScripts: boolean) => {
      const child = await startExecutorProcess({
        adminAddresses: [admin.address],
        appName,
        accessToken: token,
        instanceName,
        dataDir: await tempDir(instanceName),
        ...(withScripts ? { scripts } : {}),
      });
      children.push(child);
    };
    await Promise.all([
      start('scripts-1', group.accessToken, APP, true),
      start('scripts-2', group.accessToken, APP, true),
      start('plain-1', group.accessToken, APP, false),
      start('plain-2', offGroup.accessToken, OFF_APP, false),
    ]);
  });

  afterAll(async () => {
    for (const close of closers) close();
    await Promise.all(children.map(child => child.kill('SIGKILL')));
    await database?.drop();
  });

  it('lists the script kinds each executor opted into, none without the option', async () => {
    const { executors } = await client.listExecutors({});
    const kinds = Object.fromEntries(
      executors.map(executor => [executor.instanceName, executor.scriptKinds]),
    );
    const all = KINDS.map(kind => GLUE_TYPE[kind]);
    expect(kinds).toEqual({ 'scripts-1': all, 'scripts-2': all, 'plain-1': [], 'plain-2': [] });
  });

  it('runs a Shell, a Python and a Node.js script: exit 0 SUCCEEDED with its output in the log, exit 3 FAILED with its stderr tail', async () => {
    await Promise.all(
      KINDS.map(async kind => {
        const reportJob = await scriptJob(kind, SCRIPTS[kind].report);
        const failJob = await scriptJob(kind, SCRIPTS[kind].fail);
        const [reported] = await trigger(reportJob, 'two words');
        const [failed] = await trigger(failJob);

        const report = await finishedLog(client, reported!);
        expect(report, kind).toMatchObject({
          status: LogStatus.LOG_STATUS_SUCCEEDED,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          handleMessage: 'exit code 0',
          // First in instance-name order among those that opted in (plain-1 comes first).
          executorInstance: 'scripts-1',
        });
        const { lines, end } = await output(reported!);
        expect(end, kind).toBe(true);
        expect(lines, kind).toEqual(
          expect.arrayContaining([
            'argv=two words|0|1',
            `env=two words|0|1|${reportJob}|${reported!}`,
            'to stderr',
            '[jobstream] script exit code 0',
          ]),
        );

        const failure = await finishedLog(client, failed!);
        expect(failure, kind).toMatchObject({
          status: LogStatus.LOG_STATUS_FAILED,
          outcome: RunOutcome.RUN_OUTCOME_FAILED,
        });
        // The last 20 lines of stderr (the SDK's default), not its stdout.
        expect(failure.handleMessage.split('\n'), kind).toEqual(
          Array.from({ length: 20 }, (_, index) => `problem ${81 + index}`),
        );
        const failedOutput = await output(failed!);
        expect(failedOutput.lines, kind).toEqual(
          expect.arrayContaining(['problem 1', 'some output', '[jobstream] script exit code 3']),
        );
      }),
    );
  });

  it('SHARDING_BROADCAST gives each opted-in executor its shard index and total, in argv and environment', async () => {
    await Promise.all(
      KINDS.map(async kind => {
        const jobId = await scriptJob(kind, SCRIPTS[kind].report, {
          routeStrategy: RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST,
          param: 'sharded',
        });
        const logIds = await trigger(jobId);
        // plain-1 is online in the group but did not opt in: the broadcast is over the other two.
        expect(logIds, kind).toHaveLength(2);
        const logs = await Promise.all(logIds.map(logId => finishedLog(client, logId)));
        const shards = await Promise.all(
          logs.map(async log => {
            const { lines } = await output(log.id);
            const index = log.shardIndex;
            expect(lines, `${kind} shard ${index}`).toEqual(
              expect.arrayContaining([
                `argv=sharded|${index}|2`,
                `env=sharded|${index}|2|${jobId}|${log.id}`,
              ]),
            );
            return [log.executorInstance, index, log.shardTotal, log.status];
          }),
        );
        expect(
          shards.sort((a, b) => Number(a[1]) - Number(b[1])),
          kind,
        ).toEqual([
          ['scripts-1', 0, 2, LogStatus.LOG_STATUS_SUCCEEDED],
          ['scripts-2', 1, 2, LogStatus.LOG_STATUS_SUCCEEDED],
        ]);
      }),
    );
  });

  it('streams a running script’s output to ReadExecutorLog; KillRun ends it and its grandchild: KILLED', async () => {
    await Promise.all(
      KINDS.map(async kind => {
        const jobId = await scriptJob(kind, SCRIPTS[kind].hold);
        const [logId] = await trigger(jobId);
        const grandchild = await grandchildOf(logId!);
        await client.killRun({ logId: logId! });
        expect(await finishedLog(client, logId!), kind).toMatchObject({
          status: LogStatus.LOG_STATUS_FAILED,
          outcome: RunOutcome.RUN_OUTCOME_KILLED,
        });
        await processGone(grandchild);
      }),
    );
  });

  it('ends a script and its grandchild at the job timeout: TIMED_OUT', async () => {
    await Promise.all(
      KINDS.map(async kind => {
        // 2 s, not 1: the script must have started its grandchild (an interpreter's start on
        // a loaded machine) before the timeout, or there is nothing to look for.
        const jobId = await scriptJob(kind, SCRIPTS[kind].hold, { timeoutSeconds: 2 });
        const [logId] = await trigger(jobId);
        const log = await finishedLog(client, logId!);
        expect(log, kind).toMatchObject({
          status: LogStatus.LOG_STATUS_FAILED,
          outcome: RunOutcome.RUN_OUTCOME_TIMED_OUT,
        });
        expect(log.finishedAt!.getTime() - log.startedAt!.getTime(), kind).toBeGreaterThanOrEqual(1_950);
        const { lines } = await output(logId!);
        const named = lines.find(line => GRANDCHILD.test(line));
        expect(named, `${kind}: the script started its grandchild before the timeout`).toBeDefined();
        await processGone(Number(GRANDCHILD.exec(named!)![1]));
      }),
    );
  });

  it('never runs a script on an executor that did not opt in: the trigger fails saying so, nothing runs', async () => {
    const sent: { kind: ConformanceScriptKind; marker: string; logId: string; group: string }[] = [];
    for (const kind of KINDS) {
      // Alone in its group, and named explicitly in the other group.
      for (const [group, instances] of [
        [offGroupId, []],
        [groupId, ['plain-1']],
      ] as const) {
        const marker = path.join(markers, `${kind}-${group}`);
        const { job } = await client.createJob({
          spec: scriptSpec(group, kind, SCRIPTS[kind].marker(marker)),
        });
        const [logId] = await trigger(job!.id, undefined, [...instances]);
        sent.push({ kind, marker, logId: logId!, group: group === offGroupId ? OFF_APP : APP });
      }
    }
    for (const { kind, logId, group } of sent) {
      const log = await finishedLog(client, logId);
      expect(log, kind).toMatchObject({
        status: LogStatus.LOG_STATUS_FAILED,
        dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
        executorInstance: '',
      });
      expect(log.triggerMessage, kind).toContain(
        `no executor of group ${group} runs ${kind} scripts (none opted in; 1 online)`,
      );
    }
    // Both are connected and run handler jobs of their groups.
    for (const [group, instance] of [
      [offGroupId, 'plain-2'],
      [groupId, 'plain-1'],
    ] as const) {
      const { job } = await client.createJob({ spec: jobSpec(group, 'echo') });
      const [logId] = await trigger(job!.id, 'still here', [instance]);
      expect(await finishedLog(client, logId!)).toMatchObject({
        status: LogStatus.LOG_STATUS_SUCCEEDED,
        executorInstance: instance,
        handleMessage: 'echo: still here',
      });
    }
    // Anything started would have written its marker by now.
    await delay(300);
    for (const { marker } of sent) expect(existsSync(marker), marker).toBe(false);
  });

  it('refuses a script job to an operator without the script permission; a restored version is what runs next', async () => {
    const { user } = await client.createUser({
      username: 'no-scripts',
      password: PASSWORD,
      role: UserRole.USER_ROLE_OPERATOR,
      groupIds: [groupId],
      canEditScripts: false,
    });
    expect(user!.canEditScripts).toBe(false);
    const { token } = await client.login({ username: 'no-scripts', password: PASSWORD });
    const operator = adminClient(adminAddress, token);
    closers.push(() => operator.channel.close());
    await expect(
      operator.client.createJob({ spec: scriptSpec(groupId, 'SHELL', 'echo not allowed') }),
    ).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });

    const jobId = await scriptJob('SHELL', 'echo "old version"');
    await client.updateJob({ id: jobId, spec: scriptSpec(groupId, 'SHELL', 'echo "new version"') });
    const ran = async (): Promise<string[]> => {
      const [logId] = await trigger(jobId);
      expect((await finishedLog(client, logId!)).status).toBe(LogStatus.LOG_STATUS_SUCCEEDED);
      return (await output(logId!)).lines;
    };
    expect(await ran()).toContain('new version');
    const { versions } = await client.listJobScriptVersions({ jobId, includeSource: true });
    expect(versions.map(version => version.source)).toEqual(['echo "new version"', 'echo "old version"']);
    await client.restoreJobScriptVersion({ jobId, versionId: versions[1]!.id, remark: '' });
    // The executor caches the script file of the version it ran: a restore is a new version.
    const lines = await ran();
    expect(lines).toContain('old version');
    expect(lines).not.toContain('new version');
  });
});
