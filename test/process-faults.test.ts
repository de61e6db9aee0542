import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LogStatus } from '@jobstream/proto/admin';
import { RunOutcome } from '@jobstream/proto/types';
import { adminClient, TEST_ADMIN_TOKEN, waitFor, type AdminClient } from './support/admin.js';
import { EVENT_CEILING_MS } from './support/ceiling.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import { freePort, startAdminProcess, startExecutorProcess, type ChildTs } from './support/processes.js';

/**
 * Process-level tests: real admin and executor processes, killed with real signals.
 */
describe('processes killed and restarted', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const children: ChildTs[] = [];
  const channels: { close(): void }[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map(child => child.kill('SIGKILL')));
    for (const channel of channels.splice(0)) channel.close();
  });

  afterAll(async () => {
    await database?.drop();
  });

  async function admin(
    port?: number,
    instanceId?: string,
    // Not the 300 ms it was: a loaded machine misses three of those and the admin closes
    // live streams, which these tests do not expect. Long enough for any machine, short
    // enough for the expiry test.
    beatIntervalMs = 1_000,
  ): Promise<{ child: ChildTs; address: string; client: AdminClient }> {
    const started = await startAdminProcess({
      databaseUrl: database.url,
      adminToken: TEST_ADMIN_TOKEN,
      beatIntervalMs,
      // Restarting an executor process can take longer than the default 30 s grace on a
      // loaded machine, and its run would then rightly be lost; these tests are about
      // delivery, not about the grace period.
      env: { JOBSTREAM_LOST_RUN_GRACE_MS: String(10 * EVENT_CEILING_MS) },
      ...(port === undefined ? {} : { port }),
      ...(instanceId === undefined ? {} : { instanceId }),
    });
    children.push(started.child);
    const { client, channel } = adminClient(started.address);
    channels.push(channel);
    return { ...started, client };
  }

  async function executor(
    address: string[],
    appName: string,
    token: string,
    instanceName: string,
    dataDir: string,
  ) {
    const child = await startExecutorProcess({
      adminAddresses: address,
      appName,
      accessToken: token,
      instanceName,
      dataDir,
    });
    children.push(child);
    return child;
  }

  /** Log ids of the results in an executor's spool file (written before they are sent). */
  async function spooledLogIds(dataDir: string): Promise<string[]> {
    const text = await readFile(path.join(dataDir, 'results.spool.jsonl'), 'utf8').catch(() => '');
    // Only whole lines: the text after the last newline may be a write in progress.
    return text
      .split('\n')
      .slice(0, -1)
      .flatMap(line => {
        const record = JSON.parse(line) as { t?: string; logId?: string };
        return record.t === 'result' && record.logId !== undefined ? [record.logId] : [];
      });
  }

  async function logCount(jobId: string): Promise<number> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ count: string }>(
        'select count(*) from trigger_log where job_id = $1',
        [jobId],
      );
      return Number(rows[0]!.count);
    } finally {
      await client.end();
    }
  }

  it('lists an executor while it lives and drops it when SIGKILL breaks its stream, not by missed beats', async () => {
    // Beats so slow that expiry by missed beats (three of them) would outlast the wait:
    // only the broken stream can take the executor off the list in time.
    const { address, client } = await admin(undefined, undefined, EVENT_CEILING_MS);
    const { token } = await createGroup(client, 'presence');
    const child = await executor([address], 'presence', token, 'presence-1', await tempDir('presence'));
    const listed = await client.listExecutors({ appName: 'presence' });
    expect(listed.executors.map(e => e.instanceName)).toEqual(['presence-1']);
    expect(listed.executors[0]!.pid).toBe(child.process.pid);

    await child.kill('SIGKILL');
    await waitFor(
      async () =>
        (await client.listExecutors({ appName: 'presence' })).executors.length === 0 ? true : undefined,
      { intervalMs: 10, what: 'the killed executor to leave ListExecutors' },
    );
  });

  it('delivers a result exactly once when the admin is restarted while the handler runs', async () => {
    const port = await freePort();
    const first = await admin(port);
    const { groupId, token } = await createGroup(first.client, 'restart');
    const jobId = await createJob(first.client, groupId, 'sleep', { param: '1500' });
    const child = await executor([first.address], 'restart', token, 'restart-1', await tempDir('restart'));

    const { logIds } = await first.client.triggerJob({ jobId });
    const logId = logIds[0]!;
    await child.waitForJson(record => record.event === 'run-started' && record.logId === logId);
    await first.child.kill('SIGKILL');

    const second = await admin(port);
    await child.waitForJson(record => record.event === 'run-finishing' && record.logId === logId);
    const log = await waitFor(
      async () => {
        const { log } = await second.client.getLog({ id: logId });
        return log?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : log;
      },
      { what: 'the result after the admin restart' },
    );
    expect(log).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'slept' });
    // The executor re-registered with the admin that came back.
    expect(
      (await second.client.listExecutors({ appName: 'restart' })).executors.map(e => e.instanceName),
    ).toEqual(['restart-1']);
    expect(await logCount(jobId)).toBe(1);
  });

  it('delivers a spooled result after the executor process restarts', async () => {
    const port = await freePort();
    const first = await admin(port);
    const { groupId, token } = await createGroup(first.client, 'spool');
    const jobId = await createJob(first.client, groupId, 'sleep', { param: '800' });
    const dataDir = await tempDir('spool');
    const firstExecutor = await executor([first.address], 'spool', token, 'spool-1', dataDir);

    const { logIds } = await first.client.triggerJob({ jobId });
    const logId = logIds[0]!;
    await firstExecutor.waitForJson(record => record.event === 'run-started' && record.logId === logId);
    // No admin to acknowledge the result: it can only live in the executor's spool.
    await first.child.kill('SIGKILL');
    await firstExecutor.waitForJson(record => record.event === 'run-finishing' && record.logId === logId);
    await waitFor(async () => ((await spooledLogIds(dataDir)).includes(logId) ? true : undefined), {
      what: `the result of log ${logId} in the executor's spool`,
    });
    await firstExecutor.kill('SIGKILL');

    const second = await admin(port);
    const { log: beforeRestart } = await second.client.getLog({ id: logId });
    expect(beforeRestart!.status).toBe(LogStatus.LOG_STATUS_RUNNING);

    await executor([second.address], 'spool', token, 'spool-1', dataDir);
    const log = await waitFor(
      async () => {
        const { log } = await second.client.getLog({ id: logId });
        return log?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : log;
      },
      { what: 'the spooled result' },
    );
    expect(log).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'slept' });
    expect(await logCount(jobId)).toBe(1);
  });

  it('expires presence rows left by an admin that died, after about three missed beats', async () => {
    const dying = await admin(undefined, 'dying-admin');
    const survivor = await admin(undefined, 'surviving-admin');
    const { token } = await createGroup(survivor.client, 'orphan');
    await executor([dying.address], 'orphan', token, 'orphan-1', await tempDir('orphan'));
    const seen = await survivor.client.listExecutors({ appName: 'orphan' });
    expect(seen.executors.map(e => e.adminInstanceId)).toEqual(['dying-admin']);

    await dying.child.kill('SIGKILL');
    // Nothing but the missed beats can remove the row: its executor is still connected
    // (to nobody) and the admin that wrote it is gone.
    await waitFor(
      async () =>
        (await survivor.client.listExecutors({ appName: 'orphan' })).executors.length === 0
          ? true
          : undefined,
      { what: 'the orphaned presence row to expire' },
    );
  });
});
