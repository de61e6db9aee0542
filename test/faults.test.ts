import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../admin/src/db/embedded-postgres.js';
import { RouteStrategy, ScheduleType } from '@jobstream/proto/types';
import { adminClient, TEST_ADMIN_TOKEN, waitFor, type AdminClient } from './support/admin.js';
import { EVENT_CEILING_MS } from './support/ceiling.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import { startAdminProcess, startExecutorProcess, type ChildTs } from './support/processes.js';

/**
 * Fault tests with real processes and real signals: PostgreSQL restarted under a running
 * admin, an admin SIGKILLed while results are in flight, an executor SIGKILLed mid-run, an
 * executor frozen with SIGSTOP (a stall without a close), and graceful SIGTERMs. Each test
 * counts run starts from the executors' output (the `work` handler prints one line per
 * start) and reads the trigger logs from the database: nothing is lost, nothing runs twice,
 * and every log ends with exactly one result.
 */

interface LogRow {
  id: string;
  job_id: string;
  trigger_type: string;
  attempt: number;
  retry_of_log_id: string | null;
  scheduled_at: Date;
  dispatch_outcome: string;
  trigger_message: string;
  executor_instance: string | null;
  outcome: string | null;
  handle_message: string;
  started_at: Date | null;
  finished_at: Date | null;
  result_received_at: Date | null;
}

/**
 * Executors beat this often. Three missed beats close a stream, and at 300 ms (as it was)
 * a loaded machine missed three and the admin closed live streams, producing reconnects
 * these tests count as failures.
 */
const BEAT_MS = 1_000;

describe('process faults', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  const children: ChildTs[] = [];
  const channels: { close(): void }[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 2 });
    // An idle connection the server ends (a restart, a forced drop) must not become an
    // unhandled error of the test run; the next query opens a new one.
    pool.on('error', () => undefined);
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map(child => child.kill('SIGKILL')));
    for (const channel of channels.splice(0)) channel.close();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  interface RunningAdmin {
    id: string;
    child: ChildTs;
    address: string;
    client: AdminClient;
  }

  async function startAdmin(options: {
    id: string;
    databaseUrl?: string;
    beatIntervalMs?: number;
    env?: Record<string, string>;
  }): Promise<RunningAdmin> {
    const started = await startAdminProcess({
      databaseUrl: options.databaseUrl ?? database.url,
      adminToken: TEST_ADMIN_TOKEN,
      beatIntervalMs: options.beatIntervalMs ?? BEAT_MS,
      instanceId: options.id,
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    children.push(started.child);
    const { client, channel } = adminClient(started.address);
    channels.push(channel);
    return { id: options.id, ...started, client };
  }

  async function startExecutor(options: {
    addresses: string[];
    appName: string;
    token: string;
    instanceName: string;
    shutdownGracePeriodMs?: number;
  }): Promise<ChildTs> {
    const child = await startExecutorProcess({
      adminAddresses: options.addresses,
      appName: options.appName,
      accessToken: options.token,
      instanceName: options.instanceName,
      dataDir: await tempDir(options.instanceName),
      ...(options.shutdownGracePeriodMs === undefined
        ? {}
        : { shutdownGracePeriodMs: options.shutdownGracePeriodMs }),
    });
    children.push(child);
    return child;
  }

  async function logsOf(jobIds: readonly string[], on: pg.Pool = pool): Promise<LogRow[]> {
    const { rows } = await on.query<LogRow>(
      `select id, job_id, trigger_type, attempt, retry_of_log_id, scheduled_at, dispatch_outcome,
              trigger_message, executor_instance, outcome, handle_message, started_at, finished_at,
              result_received_at
         from trigger_log where job_id = any($1::bigint[]) order by id`,
      [jobIds],
    );
    return rows;
  }

  /** A log is settled once it has a result, or its trigger failed or was skipped. */
  const settled = (log: LogRow): boolean =>
    log.outcome !== null || log.dispatch_outcome === 'FAILED' || log.dispatch_outcome === 'SKIPPED';

  async function settledLogs(jobIds: readonly string[], what: string, on?: pg.Pool): Promise<LogRow[]> {
    return waitFor(
      async () => {
        const logs = await logsOf(jobIds, on);
        return logs.length > 0 && logs.every(settled) ? logs : undefined;
      },
      { intervalMs: 100, what },
    );
  }

  /** How many times each log's handler started, over the given executor processes. */
  function startsByLog(...executors: ChildTs[]): Map<string, number> {
    const starts = new Map<string, number>();
    for (const executor of executors) {
      for (const record of executor.records(record => record.event === 'run-started')) {
        const logId = String(record.logId);
        starts.set(logId, (starts.get(logId) ?? 0) + 1);
      }
    }
    return starts;
  }

  /** The result stored for a log is the one its own `work` run returned, not another run's. */
  function expectWorked(log: LogRow): void {
    expect(
      { id: log.id, outcome: log.outcome, message: log.handle_message },
      `result of log ${log.id}`,
    ).toEqual({ id: log.id, outcome: 'SUCCEEDED', message: `worked ${log.id}/${log.attempt}` });
  }

  async function listed(client: AdminClient, appName: string) {
    return (await client.listExecutors({ appName })).executors;
  }

  it('keeps its streams and stores every result once when PostgreSQL restarts under load', async () => {
    const dir = await tempDir('pg-restart');
    // As root the server runs as `postgres`, which must be able to enter this directory.
    await fs.chmod(dir, 0o755);
    const dataDir = path.join(dir, 'data');
    let server: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir });
    cleanups.push(async () => {
      await server.stop();
      await fs.rm(dir, { recursive: true, force: true });
    });
    const url = server.connectionString;
    const db = new pg.Pool({ connectionString: url, max: 2 });
    db.on('error', () => undefined);
    cleanups.push(() => db.end());

    const graceMs = 1_500;
    const admin = await startAdmin({
      id: 'pg-restart-admin',
      databaseUrl: url,
      // Short, so that runs wrongly left unroutable after the outage would be lost here.
      env: { JOBSTREAM_LOST_RUN_GRACE_MS: String(graceMs), JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS: '100' },
    });
    const { groupId, token } = await createGroup(admin.client, 'pgrestart');
    const executor = await startExecutor({
      addresses: [admin.address],
      appName: 'pgrestart',
      token,
      instanceName: 'pgrestart-1',
    });
    const [before] = await listed(admin.client, 'pgrestart');

    const scheduled: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      scheduled.push(
        await createJob(admin.client, groupId, 'work', {
          scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
          scheduleConf: '1',
          param: '200',
        }),
      );
    }
    // Manual runs: four finish while the database is down (their results must wait), one
    // is still running well after it is back (it must not be declared lost meanwhile).
    const manual: string[] = [];
    for (const ms of [400, 900, 1_400, 1_900, 8_000]) {
      manual.push(await createJob(admin.client, groupId, 'work', { param: String(ms) }));
    }
    await Promise.all(scheduled.map(id => admin.client.startJob({ id })));
    await waitFor(
      async () => {
        const logs = await logsOf(scheduled, db);
        return scheduled.every(id => logs.some(log => log.job_id === id && log.outcome === 'SUCCEEDED'))
          ? true
          : undefined;
      },
      { intervalMs: 100, what: 'every scheduled job to have run once' },
    );

    const manualLogIds = await Promise.all(
      manual.map(async jobId => (await admin.client.triggerJob({ jobId })).logIds[0]!),
    );
    await waitFor(() => (manualLogIds.every(id => startsByLog(executor).has(id)) ? true : undefined), {
      what: 'the manual runs to start',
    });

    const stoppedAt = Date.now();
    await server.stop();
    // A trigger is refused while the database is down, and nothing runs for it.
    await expect(admin.client.triggerJob({ jobId: manual[0]! })).rejects.toThrow();
    const finishing = manualLogIds.slice(0, 4);
    await waitFor(
      () =>
        executor.records(r => r.event === 'run-finishing' && finishing.includes(String(r.logId))).length ===
        finishing.length
          ? true
          : undefined,
      { what: 'four manual runs to finish during the outage' },
    );
    // Long enough for the executor's presence row to expire (three beats, and one more).
    const outageMs = 4 * BEAT_MS - (Date.now() - stoppedAt);
    if (outageMs > 0) await new Promise(resolve => setTimeout(resolve, outageMs));
    expect(admin.child.process.exitCode).toBeNull();

    server = await startEmbeddedPostgres({ dataDir, port: Number(new URL(url).port) });
    const restartedAt = new Date();
    // The expired row is gone, as when a peer admin's sweep gets to it first.
    await db.query(`delete from executor_registry where app_name = 'pgrestart'`);
    await waitFor(
      async () =>
        (await listed(admin.client, 'pgrestart'))[0]?.sessionId === before!.sessionId ? true : undefined,
      { what: 'the live stream to be listed again' },
    );

    // Scheduling resumes, and a manual trigger works again.
    await waitFor(
      async () => {
        const logs = await logsOf(scheduled, db);
        return scheduled.every(id =>
          logs.some(
            log => log.job_id === id && log.outcome === 'SUCCEEDED' && log.scheduled_at > restartedAt,
          ),
        )
          ? true
          : undefined;
      },
      { intervalMs: 100, what: 'scheduled fires after the restart' },
    );
    const [afterLogId] = (await admin.client.triggerJob({ jobId: manual[0]! })).logIds;
    await Promise.all(scheduled.map(id => admin.client.stopJob({ id })));

    const logs = await settledLogs([...scheduled, ...manual], 'every log to settle', db);
    const starts = startsByLog(executor);
    const neverStarted = logs
      .filter(log => !starts.has(log.id))
      .map(
        log => `${log.id} ${log.trigger_type} ${log.dispatch_outcome}/${log.outcome}: ${log.trigger_message}`,
      );
    expect([...starts.keys()].sort(), neverStarted.join('\n')).toEqual(logs.map(log => log.id).sort());
    for (const log of logs) {
      // Everything was dispatched to a connected executor: each run started once and its
      // one result is the handler's, whether it arrived before, during or after the outage.
      expect(log.dispatch_outcome, `dispatch of log ${log.id}: ${log.trigger_message}`).toBe('ACCEPTED');
      expect(starts.get(log.id), `starts of log ${log.id}`).toBe(1);
      expectWorked(log);
    }
    expect(logs.map(log => log.id).sort()).toEqual(
      [
        ...logs.filter(log => log.trigger_type !== 'MANUAL').map(log => log.id),
        ...manualLogIds,
        afterLogId!,
      ].sort(),
    );
    const fires = logs.filter(log => log.trigger_type !== 'MANUAL');
    expect(new Set(fires.map(log => `${log.job_id}@${log.scheduled_at.getTime()}`)).size).toBe(fires.length);

    // The admin rode out the outage in the same process, on the same stream.
    expect(admin.child.process.exitCode).toBeNull();
    const [after] = await listed(admin.client, 'pgrestart');
    expect(after?.sessionId).toBe(before!.sessionId);
    expect(executor.records(r => r.msg === 'connected to admin')).toHaveLength(1);
  });

  it('re-delivers results in flight to the surviving admin after a SIGKILL, each stored once', async () => {
    const [first, second] = await Promise.all([
      startAdmin({ id: 'inflight-a' }),
      startAdmin({ id: 'inflight-b' }),
    ]);
    const { groupId, token } = await createGroup(first.client, 'inflight');
    const executor = await startExecutor({
      addresses: [first.address, second.address],
      appName: 'inflight',
      token,
      instanceName: 'inflight-1',
    });
    const holder = (await listed(first.client, 'inflight'))[0]!.adminInstanceId;
    const [doomed, survivor] = holder === first.id ? [first, second] : [second, first];

    // Eight jobs, two runs each (the second queued behind the first): results keep
    // coming for about two seconds, across the kill.
    const jobIds: string[] = [];
    for (let i = 0; i < 8; i += 1) {
      jobIds.push(await createJob(survivor.client, groupId, 'work', { param: String(150 + i * 120) }));
    }
    const logIds: string[] = [];
    for (const jobId of [...jobIds, ...jobIds]) {
      logIds.push(...(await survivor.client.triggerJob({ jobId })).logIds);
    }
    await waitFor(
      async () => ((await logsOf(jobIds)).filter(log => log.outcome !== null).length >= 2 ? true : undefined),
      { intervalMs: 20, what: 'the first results to be stored' },
    );
    const killedAt = new Date();
    await doomed.child.kill('SIGKILL');

    const logs = await settledLogs(jobIds, 'every run to be stored');
    expect(logs.map(log => log.id).sort()).toEqual([...logIds].sort());
    const starts = startsByLog(executor);
    for (const log of logs) {
      expect(starts.get(log.id), `starts of log ${log.id}`).toBe(1);
      expectWorked(log);
    }
    // Results were stored on both sides of the kill: the later ones by the survivor.
    expect(logs.some(log => log.result_received_at! < killedAt)).toBe(true);
    expect(logs.some(log => log.result_received_at! > killedAt)).toBe(true);
    const [now] = await listed(survivor.client, 'inflight');
    expect(now?.adminInstanceId).toBe(survivor.id);
  });

  it('fails a SIGKILLed executor’s runs as lost and leaves the other executor’s runs alone', async () => {
    // Longer than a loaded machine's stream blip (a reconnect of the bystander must not
    // make its runs lost), and short enough to wait for.
    const graceMs = 3_000;
    const admin = await startAdmin({
      id: 'lost-admin',
      env: {
        JOBSTREAM_LOST_RUN_GRACE_MS: String(graceMs),
        JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS: '100',
      },
    });
    const { groupId, token } = await createGroup(admin.client, 'lostrun');
    const [victim, bystander] = (await Promise.all(
      ['lostrun-a', 'lostrun-b'].map(instanceName =>
        startExecutor({ addresses: [admin.address], appName: 'lostrun', token, instanceName }),
      ),
    )) as [ChildTs, ChildTs];
    const [bystanderSession] = (await listed(admin.client, 'lostrun')).filter(
      e => e.instanceName === 'lostrun-b',
    );

    const jobIds: string[] = [];
    for (let i = 0; i < 6; i += 1) {
      jobIds.push(
        await createJob(admin.client, groupId, 'work', {
          param: '2500',
          failRetryCount: 1,
          routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
        }),
      );
    }
    const onVictim: string[] = [];
    const onBystander: string[] = [];
    for (const [index, jobId] of jobIds.entries()) {
      const target = index < 3 ? 'lostrun-a' : 'lostrun-b';
      const [logId] = (await admin.client.triggerJob({ jobId, executorInstances: [target] })).logIds;
      (index < 3 ? onVictim : onBystander).push(logId!);
    }
    await waitFor(
      () =>
        onVictim.every(id => startsByLog(victim).has(id)) &&
        onBystander.every(id => startsByLog(bystander).has(id))
          ? true
          : undefined,
      { what: 'every run to start' },
    );
    const killedAt = Date.now();
    await victim.kill('SIGKILL');

    const logs = await waitFor(
      async () => {
        const all = await logsOf(jobIds);
        const retries = all.filter(log => log.retry_of_log_id !== null);
        return all.every(settled) && retries.length === onVictim.length ? all : undefined;
      },
      { intervalMs: 100, what: 'lost runs declared and retried' },
    );
    const byId = new Map(logs.map(log => [log.id, log]));
    const victimStarts = startsByLog(victim);
    const bystanderStarts = startsByLog(bystander);

    for (const id of onVictim) {
      const log = byId.get(id)!;
      expect(log.outcome, `log ${id}`).toBe('LOST');
      expect(log.handle_message).toMatch(/^lost: executor lostrun-a went away/);
      expect(log.finished_at!.getTime() - killedAt).toBeGreaterThanOrEqual(graceMs - 100);
      expect(victimStarts.get(id)).toBe(1);
      expect(bystanderStarts.has(id)).toBe(false);
      // Its retry ran on the executor still there, once.
      const retry = logs.find(other => other.retry_of_log_id === id)!;
      expect(retry).toMatchObject({ attempt: 2, executor_instance: 'lostrun-b' });
      expect(bystanderStarts.get(retry.id)).toBe(1);
      expectWorked(retry);
    }
    for (const id of onBystander) {
      const log = byId.get(id)!;
      expectWorked(log);
      expect(bystanderStarts.get(id)).toBe(1);
      expect(victimStarts.has(id)).toBe(false);
      // Ran its full course (2.5 s, give or take timer rounding): not aborted, not restarted.
      expect(log.finished_at!.getTime() - log.started_at!.getTime()).toBeGreaterThanOrEqual(2_450);
    }
    expect([...victimStarts.keys()].sort()).toEqual([...onVictim].sort());
    const [stillThere] = await listed(admin.client, 'lostrun');
    expect(stillThere).toMatchObject({ instanceName: 'lostrun-b', sessionId: bystanderSession!.sessionId });
  });

  it('stops routing to a SIGSTOPped executor within three beats and reconciles its run after SIGCONT', async () => {
    const admin = await startAdmin({
      id: 'stall-admin',
      // Longer than the stall can last on any machine: the frozen executor's run must be
      // reconciled, not lost.
      env: { JOBSTREAM_LOST_RUN_GRACE_MS: String(10 * EVENT_CEILING_MS) },
    });
    const { groupId, token } = await createGroup(admin.client, 'stall');
    const [frozen, healthy] = (await Promise.all(
      ['stall-a', 'stall-b'].map(instanceName =>
        startExecutor({ addresses: [admin.address], appName: 'stall', token, instanceName }),
      ),
    )) as [ChildTs, ChildTs];
    await waitFor(async () => ((await listed(admin.client, 'stall')).length === 2 ? true : undefined), {
      what: 'both executors online',
    });
    // FIRST routing picks stall-a while it is online.
    const jobId = await createJob(admin.client, groupId, 'work', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
      param: '1000',
    });
    const [inFlight] = (await admin.client.triggerJob({ jobId })).logIds;
    await frozen.waitForJson(r => r.event === 'run-started' && r.logId === inFlight);

    frozen.signal('SIGSTOP');
    // Sent before the admin notices: the request waits in the frozen process's socket.
    // The executor must not start it from that stream when it wakes up.
    const stalledTrigger = admin.client.triggerJob({ jobId, param: '50' });
    await waitFor(
      async () =>
        (await listed(admin.client, 'stall')).some(e => e.instanceName === 'stall-a') ? undefined : true,
      { intervalMs: 20, what: 'the frozen executor to leave ListExecutors' },
    );
    // And the admin closed the stream it holds because of the missed beats (where gRPC
    // keepalive alone would take 15 s and every trigger meanwhile would wait out its
    // deadline), so routing skips the executor too.
    await admin.child.waitForJson(
      r =>
        r.msg === 'executor silent for three beat intervals; closing its stream' && r.instance === 'stall-a',
      EVENT_CEILING_MS,
    );

    // New triggers go to the executor that answers (FIRST routing would pick stall-a if
    // the admin still counted it).
    const fresh: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      fresh.push(...(await admin.client.triggerJob({ jobId, param: '50' })).logIds);
    }
    const freshLogs = await waitFor(
      async () => {
        const logs = (await logsOf([jobId])).filter(log => fresh.includes(log.id));
        return logs.length === fresh.length && logs.every(settled) ? logs : undefined;
      },
      { what: 'the triggers made during the stall to finish' },
    );
    for (const log of freshLogs) {
      expect(log.executor_instance, log.trigger_message).toBe('stall-b');
      expectWorked(log);
    }

    const [stalled] = (await stalledTrigger).logIds;

    frozen.signal('SIGCONT');
    await waitFor(
      async () =>
        (await listed(admin.client, 'stall')).some(e => e.instanceName === 'stall-a') ? true : undefined,
      { what: 'the thawed executor to be listed again' },
    );
    const logs = await settledLogs([jobId], 'the in-flight run to be reconciled');
    expectWorked(logs.find(log => log.id === inFlight)!);
    // The stalled request got no answer: in doubt, never failed on a guess. The thawed
    // executor never starts a request read from its dead stream and reconnects without
    // it, so the admin sends it again and it runs exactly once, somewhere.
    const stalledLog = logs.find(log => log.id === stalled)!;
    expect(stalledLog.dispatch_outcome).toBe('ACCEPTED');
    expect(stalledLog.trigger_message).toContain('in doubt');
    expectWorked(stalledLog);
    const frozenStarts = startsByLog(frozen);
    const healthyStarts = startsByLog(healthy);
    const stalledStarts = (frozenStarts.get(stalled!) ?? 0) + (healthyStarts.get(stalled!) ?? 0);
    expect(stalledStarts, 'starts of the stalled trigger').toBe(1);
    frozenStarts.delete(stalled!);
    healthyStarts.delete(stalled!);
    expect([...frozenStarts.entries()]).toEqual([[inFlight, 1]]);
    expect([...healthyStarts.keys()].sort()).toEqual([...fresh].sort());
    expect([...healthyStarts.values()].every(count => count === 1)).toBe(true);
  });

  it('hands scheduling and executors over to the peer when an admin gets SIGTERM', async () => {
    const [first, second] = await Promise.all([startAdmin({ id: 'term-a' }), startAdmin({ id: 'term-b' })]);
    const { groupId, token } = await createGroup(first.client, 'handover');
    const executor = await startExecutor({
      addresses: [first.address, second.address],
      appName: 'handover',
      token,
      instanceName: 'handover-1',
    });
    const holder = (await listed(first.client, 'handover'))[0]!.adminInstanceId;
    const [leaving, staying] = holder === first.id ? [first, second] : [second, first];

    const jobIds: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      jobIds.push(
        await createJob(staying.client, groupId, 'work', {
          scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
          scheduleConf: '1',
          param: '100',
          failRetryCount: 1,
        }),
      );
    }
    await Promise.all(jobIds.map(id => staying.client.startJob({ id })));
    await waitFor(
      async () =>
        (await logsOf(jobIds)).filter(log => log.outcome === 'SUCCEEDED').length >= 6 ? true : undefined,
      { what: 'fires before the shutdown' },
    );

    leaving.child.signal('SIGTERM');
    const { code, signal } = await leaving.child.exited;
    const exitedAt = new Date();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    await executor.waitForJson(r => r.msg === 'admin asked to drain; reconnecting');
    await waitFor(
      async () =>
        (await listed(staying.client, 'handover'))[0]?.adminInstanceId === staying.id ? true : undefined,
      { what: 'the executor to reconnect to the other admin' },
    );
    await waitFor(
      async () => {
        const logs = await logsOf(jobIds);
        return jobIds.every(
          id =>
            logs.filter(
              log => log.job_id === id && log.outcome === 'SUCCEEDED' && log.scheduled_at > exitedAt,
            ).length >= 2,
        )
          ? true
          : undefined;
      },
      { intervalMs: 100, what: 'fires after the shutdown' },
    );
    await Promise.all(jobIds.map(id => staying.client.stopJob({ id })));

    const logs = await waitFor(
      async () => {
        const all = await logsOf(jobIds);
        const retried = new Set(all.map(log => log.retry_of_log_id));
        const failed = all.filter(log => log.dispatch_outcome === 'FAILED');
        return all.every(settled) && failed.every(log => retried.has(log.id)) ? all : undefined;
      },
      { intervalMs: 100, what: 'every fire (and the retry of any that failed) to settle' },
    );
    const starts = startsByLog(executor);
    for (const jobId of jobIds) {
      const fires = logs
        .filter(log => log.job_id === jobId && log.retry_of_log_id === null)
        .map(log => log.scheduled_at.getTime())
        .sort((a, b) => a - b);
      // Every planned second exactly once, across the handover.
      for (let i = 1; i < fires.length; i += 1) {
        expect(fires[i]! - fires[i - 1]!, `job ${jobId} fires ${fires.join(', ')}`).toBe(1_000);
      }
    }
    for (const log of logs) {
      if (log.outcome !== null) {
        expect(starts.get(log.id), `starts of log ${log.id}`).toBe(1);
        expectWorked(log);
        continue;
      }
      // A fire that found no executor during the handover is retried, and the retry ran.
      expect(log.dispatch_outcome, `log ${log.id}: ${log.trigger_message}`).toBe('FAILED');
      const retry = logs.find(other => other.retry_of_log_id === log.id);
      expect(retry, `retry of log ${log.id}`).toBeDefined();
      expectWorked(retry!);
    }
  });

  it('finishes or aborts its runs within the grace period and delivers every result on SIGTERM', async () => {
    const admin = await startAdmin({ id: 'exec-term-admin' });
    const { groupId, token } = await createGroup(admin.client, 'execterm');
    const graceMs = 1_000;
    const executor = await startExecutor({
      addresses: [admin.address],
      appName: 'execterm',
      token,
      instanceName: 'execterm-1',
      shutdownGracePeriodMs: graceMs,
    });
    const quick = await createJob(admin.client, groupId, 'work', { param: '400' });
    const slow = await createJob(admin.client, groupId, 'work', { param: '60000' });
    const stubborn = await createJob(admin.client, groupId, 'stubborn', { param: '60000' });
    const [quickLog] = (await admin.client.triggerJob({ jobId: quick })).logIds;
    const [slowLog] = (await admin.client.triggerJob({ jobId: slow })).logIds;
    // Serial execution: queued behind the slow run, never started.
    const [queuedLog] = (await admin.client.triggerJob({ jobId: slow })).logIds;
    const [stubbornLog] = (await admin.client.triggerJob({ jobId: stubborn })).logIds;
    await waitFor(
      () => ([quickLog, slowLog, stubbornLog].every(id => startsByLog(executor).has(id!)) ? true : undefined),
      { what: 'the runs to start' },
    );

    const termAt = Date.now();
    executor.signal('SIGTERM');
    const { code } = await executor.exited;
    const stopMs = Date.now() - termAt;
    expect(code).toBe(0);
    expect(executor.records(r => r.event === 'stopped')).toHaveLength(1);
    // The slow and stubborn runs kept it for the whole grace period (and the check below
    // shows it then waited for the results to be acknowledged, not for a timeout).
    expect(stopMs).toBeGreaterThanOrEqual(graceMs - 50);

    // Acknowledged before the process exited: stored already, no waiting.
    const logs = new Map((await logsOf([quick, slow, stubborn])).map(log => [log.id, log]));
    expectWorked(logs.get(quickLog!)!);
    expect(logs.get(slowLog!)).toMatchObject({
      outcome: 'SHUTDOWN',
      handle_message: `executor shut down; the run did not finish within the ${graceMs} ms grace period`,
    });
    expect(logs.get(stubbornLog!)).toMatchObject({ outcome: 'SHUTDOWN' });
    expect(logs.get(queuedLog!)).toMatchObject({
      outcome: 'SHUTDOWN',
      handle_message: 'executor shut down before the run started',
    });
    const starts = startsByLog(executor);
    expect(starts.has(queuedLog!)).toBe(false);
    for (const id of [quickLog, slowLog, stubbornLog]) expect(starts.get(id!)).toBe(1);
    await waitFor(async () => ((await listed(admin.client, 'execterm')).length === 0 ? true : undefined), {
      what: 'the stopped executor to leave ListExecutors',
    });
  });
});
