import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DispatchOutcome, LogStatus, type Log } from '@jobstream/proto/admin';
import { BlockStrategy, RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import { adminClient, TEST_ADMIN_TOKEN, waitFor, type AdminClient } from '../support/admin.js';
import { EVENT_CEILING_MS, PROCESS_START_CEILING_MS } from '../support/ceiling.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { createGroup, createJob, tempDir } from '../support/fixtures.js';
import { freePort, startAdminProcess, type ChildTs } from '../support/processes.js';
import { scriptSuite } from './script-suite.js';
import type { ConformanceExecutorConfig, SdkUnderTest } from './sdks.js';

/**
 * The executor contract (docs/protocol.md), checked against one SDK through what a user
 * sees: the operator API of a real admin process, the executor program's own events
 * (test/conformance/executors/), its spool file, and process faults (SIGKILL, SIGSTOP,
 * SIGTERM). Every SDK runs the same checks; CI runs them for each SDK and a missing
 * toolchain fails there instead of skipping.
 */
export function defineConformanceSuite(sdk: SdkUnderTest): void {
  const missing = sdk.missing();
  if (missing !== undefined && process.env.CI === 'true') {
    describe(`${sdk.name} SDK conformance`, () => {
      it('has its toolchain installed (CI never skips an SDK)', () => {
        throw new Error(missing);
      });
    });
    return;
  }
  describe.skipIf(missing !== undefined)(
    `${sdk.name} SDK conformance${missing === undefined ? '' : ` (SKIPPED: ${missing})`}`,
    () => suite(sdk),
  );
  describe.skipIf(missing !== undefined)(
    `${sdk.name} SDK conformance: scripts${missing === undefined ? '' : ` (SKIPPED: ${missing})`}`,
    () => scriptSuite(sdk),
  );
}

interface Admin {
  child: ChildTs;
  address: string;
  client: AdminClient;
  close(): void;
}

/** The admin's answer deadline; short, so runs in doubt are settled within a test. */
const REQUEST_DEADLINE_MS = 2_000;
/**
 * The admin closes a stream silent for three beats. At 1 s a loaded machine took longer than
 * that to send the run request of the answer_by check to the stopped executor, so the stream
 * was gone before the request could go out (and no run was ever in doubt).
 */
const BEAT_INTERVAL_MS = 2_000;

function suite(sdk: SdkUnderTest): void {
  const app = `conformance-${sdk.name}`;
  let database: TestDatabase;
  let port: number;
  let admin: Admin;
  let groupId: string;
  let token: string;
  /** Two executors of the SDK, on the one admin: `<app>-1` (routing order first) and `-2`. */
  let first: ChildTs;
  let second: ChildTs;
  const children = new Set<ChildTs>();
  const closers: (() => void)[] = [];

  async function startAdmin(onPort = port): Promise<Admin> {
    const started = await startAdminProcess({
      databaseUrl: database.url,
      adminToken: TEST_ADMIN_TOKEN,
      port: onPort,
      beatIntervalMs: BEAT_INTERVAL_MS,
      env: {
        JOBSTREAM_REQUEST_DEADLINE_MS: String(REQUEST_DEADLINE_MS),
        // Executors restarted on a loaded machine come back late; their runs must not be
        // declared lost meanwhile (this suite is about delivery, not the grace period).
        JOBSTREAM_LOST_RUN_GRACE_MS: String(10 * EVENT_CEILING_MS),
        JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS: '200',
      },
    });
    children.add(started.child);
    const { client, channel } = adminClient(started.address);
    closers.push(() => channel.close());
    return { ...started, client, close: () => channel.close() };
  }

  async function startExecutor(
    instanceName: string,
    options: Partial<ConformanceExecutorConfig> = {},
  ): Promise<ChildTs> {
    const child = sdk.spawn({
      adminAddresses: [admin.address],
      appName: app,
      accessToken: token,
      instanceName,
      dataDir: await tempDir(instanceName),
      capacity: 4,
      ...options,
    });
    children.add(child);
    try {
      await child.waitForJson(record => record.event === 'ready', PROCESS_START_CEILING_MS);
    } catch (error) {
      await child.kill('SIGKILL');
      throw error;
    }
    return child;
  }

  async function job(handler: string, overrides: Parameters<typeof createJob>[3] = {}): Promise<string> {
    return createJob(admin.client, groupId, handler, overrides);
  }

  async function trigger(jobId: string, param: string, executors: string[] = [`${app}-1`]): Promise<string> {
    const { logIds } = await admin.client.triggerJob({ jobId, param, executorInstances: executors });
    expect(logIds).toHaveLength(1);
    return logIds[0]!;
  }

  async function getLog(logId: string): Promise<Log> {
    const { log } = await admin.client.getLog({ id: logId });
    return log!;
  }

  /** Waits for the log's outcome: its status is no longer RUNNING and its dispatch settled. */
  async function ended(logId: string): Promise<Log> {
    return waitFor(
      async () => {
        const log = await getLog(logId);
        return log.status !== LogStatus.LOG_STATUS_RUNNING &&
          log.dispatchOutcome !== DispatchOutcome.DISPATCH_OUTCOME_PENDING
          ? log
          : undefined;
      },
      { what: `log ${logId} to end` },
    );
  }

  function started(child: ChildTs, logId: string): Promise<Record<string, unknown>> {
    return child.waitForJson(
      record => record.event === 'run-started' && record.logId === logId,
      EVENT_CEILING_MS,
    );
  }

  function runsOf(child: ChildTs, logId: string): number {
    return child.records(record => record.event === 'run-started' && record.logId === logId).length;
  }

  async function sessionOf(instanceName: string): Promise<string | undefined> {
    const { executors } = await admin.client.listExecutors({ appName: app });
    return executors.find(executor => executor.instanceName === instanceName)?.sessionId;
  }

  /** After SIGCONT: the executor replaced the stream the admin gave up on, and is routable again. */
  async function reconnected(instanceName: string, oldSession: string | undefined): Promise<void> {
    await waitFor(
      async () => {
        const session = await sessionOf(instanceName);
        return session !== undefined && session !== oldSession ? true : undefined;
      },
      { what: `${instanceName} to register a new stream after SIGCONT` },
    );
  }

  async function listed(): Promise<string[]> {
    const { executors } = await admin.client.listExecutors({ appName: app });
    return executors.map(executor => executor.instanceName).sort();
  }

  /** Reads a log to its end the way an operator console does: from line 1, chunk by chunk. */
  async function readWholeLog(logId: string, maxLines = 0): Promise<{ lines: string[]; reads: number }> {
    const lines: string[] = [];
    let fromLine = 1;
    for (let reads = 1; ; reads += 1) {
      const chunk = await admin.client.readExecutorLog({ logId, fromLine, maxLines });
      expect(chunk.fromLine).toBe(fromLine);
      expect(chunk.toLine).toBe(fromLine + chunk.lines.length - 1);
      lines.push(...chunk.lines);
      if (chunk.end) return { lines, reads };
      expect(reads).toBeLessThan(100);
      fromLine = chunk.toLine + 1;
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    admin = await startAdmin();
    ({ groupId, token } = await createGroup(admin.client, app));
    [first, second] = await Promise.all([startExecutor(`${app}-1`), startExecutor(`${app}-2`)]);
  });

  afterEach(() => {
    // A failed check may leave a process stopped: nothing after it must hang on that.
    for (const child of children) child.signal('SIGCONT');
  });

  afterAll(async () => {
    await Promise.all([...children].map(child => child.kill('SIGKILL')));
    for (const close of closers) close();
    await database?.drop();
  });

  it('registers with its name, handlers and capacity, and is listed while connected', async () => {
    const { executors } = await admin.client.listExecutors({ appName: app });
    const one = executors.find(executor => executor.instanceName === `${app}-1`);
    expect(one).toBeDefined();
    expect([...one!.handlers].sort()).toEqual(['echo', 'fail', 'ignore-abort', 'log-lines', 'sleep']);
    expect(one!.capacity).toBe(4);
    expect(one!.pid).toBe(first.process.pid);
    expect(await listed()).toEqual([`${app}-1`, `${app}-2`]);
  });

  it('runs a handler and records its success message, and a thrown error as a failure', async () => {
    const [echo, fail] = await Promise.all([job('echo'), job('fail')]);
    const [ok, bad] = await Promise.all([trigger(echo, 'hello'), trigger(fail, 'it broke')]);
    expect(await ended(ok)).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      handleMessage: 'echo: hello',
      executorInstance: `${app}-1`,
    });
    expect(await ended(bad)).toMatchObject({
      status: LogStatus.LOG_STATUS_FAILED,
      outcome: RunOutcome.RUN_OUTCOME_FAILED,
      handleMessage: expect.stringContaining('it broke') as unknown,
    });
  });

  it('times a run out at the job timeout: TIMED_OUT, recorded once', async () => {
    const jobId = await job('sleep', { timeoutSeconds: 1 });
    const logId = await trigger(jobId, '60000');
    const log = await ended(logId);
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_FAILED,
      outcome: RunOutcome.RUN_OUTCOME_TIMED_OUT,
    });
    expect(log.finishedAt!.getTime() - log.startedAt!.getTime()).toBeLessThan(30_000);
  });

  it('kills a run on KillRun: KILLED, even when the handler ignores its abort, and its log ends with the result', async () => {
    const [sleeping, stubborn] = await Promise.all([job('sleep'), job('ignore-abort')]);
    const [killed, ignoring] = await Promise.all([trigger(sleeping, '60000'), trigger(stubborn, '4000')]);
    await Promise.all([started(first, killed), started(first, ignoring)]);
    await admin.client.killRun({ logId: killed });
    await admin.client.killRun({ logId: ignoring });
    expect(await ended(killed)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_KILLED });
    // Recorded at the kill, not when the handler returns (it is still sleeping).
    expect(await ended(ignoring)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_KILLED });
    expect(first.records(r => r.event === 'run-finishing' && r.logId === ignoring)).toHaveLength(0);
    // The log ended with the result: a rolling read reaches its end while the handler runs on.
    const { lines } = await readWholeLog(ignoring);
    expect(lines.at(-1)).toContain('KILLED');
    // An unknown log cannot be killed.
    await expect(admin.client.killRun({ logId: killed })).rejects.toThrow();
  });

  it('serves rolling log reads: every line once, in order, in chunks, with max_lines 0 meaning the default', async () => {
    const jobId = await job('log-lines');
    const logId = await trigger(jobId, '1500');
    expect(await ended(logId)).toMatchObject({ handleMessage: 'logged 1500 lines' });
    const whole = await readWholeLog(logId);
    const handlerLines = whole.lines.filter(line => / line \d+ of 1500$/.test(line));
    expect(handlerLines.map(line => Number(/ line (\d+) of/.exec(line)![1]))).toEqual(
      Array.from({ length: 1500 }, (_, i) => i + 1),
    );
    expect(whole.reads).toBeGreaterThan(1); // no chunk carries more than 1000 lines
    const small = await readWholeLog(logId, 400);
    expect(small.lines).toEqual(whole.lines);
    expect(small.reads).toBeGreaterThanOrEqual(4);
  });

  it('applies block strategies: SERIAL_EXECUTION queues, DISCARD_LATER refuses, COVER_EARLY aborts the earlier run', async () => {
    const [serial, discard, cover] = await Promise.all([
      job('sleep', { blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION }),
      job('sleep', { blockStrategy: BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER }),
      job('sleep', { blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY }),
    ]);
    const serial1 = await trigger(serial, '700');
    const serial2 = await trigger(serial, '10');
    const discard1 = await trigger(discard, '1500');
    const cover1 = await trigger(cover, '60000');
    await Promise.all([started(first, serial1), started(first, discard1), started(first, cover1)]);
    const discard2 = await trigger(discard, '10');
    const cover2 = await trigger(cover, '200');

    const [s1, s2] = [await ended(serial1), await ended(serial2)];
    expect([s1.outcome, s2.outcome]).toEqual([
      RunOutcome.RUN_OUTCOME_SUCCEEDED,
      RunOutcome.RUN_OUTCOME_SUCCEEDED,
    ]);
    expect(s2.startedAt!.getTime()).toBeGreaterThanOrEqual(s1.finishedAt!.getTime() - 5);

    expect(await ended(discard2)).toMatchObject({
      status: LogStatus.LOG_STATUS_FAILED,
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_FAILED,
    });
    expect(runsOf(first, discard2)).toBe(0);
    expect(await ended(discard1)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });

    expect(await ended(cover1)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_COVERED });
    expect(await ended(cover2)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });
  });

  it('runs a SHARDING_BROADCAST job once per executor with its shard index and total', async () => {
    const jobId = await job('echo', { routeStrategy: RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST });
    const { logIds } = await admin.client.triggerJob({ jobId, param: 'sharded' });
    expect(logIds).toHaveLength(2);
    const logs = await Promise.all(logIds.map(ended));
    const byExecutor = new Map(logs.map(log => [log.executorInstance, log]));
    for (const [index, child] of [first, second].entries()) {
      const log = byExecutor.get(`${app}-${index + 1}`)!;
      expect(log).toMatchObject({
        outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
        shardIndex: index,
        shardTotal: 2,
      });
      expect(await started(child, log.id)).toMatchObject({ shardIndex: index, shardTotal: 2 });
    }
  });

  it('answers BUSYOVER idle beats (busy with the job) and FAILOVER beats (a stopped executor does not answer)', async () => {
    const busyover = await job('sleep', { routeStrategy: RouteStrategy.ROUTE_STRATEGY_BUSYOVER });
    const running = await trigger(busyover, '60000');
    await started(first, running);
    const { logIds: next } = await admin.client.triggerJob({ jobId: busyover, param: '10' });
    expect(await ended(next[0]!)).toMatchObject({
      executorInstance: `${app}-2`,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
    });
    await admin.client.killRun({ logId: running });
    await ended(running);

    const failover = await job('echo', { routeStrategy: RouteStrategy.ROUTE_STRATEGY_FAILOVER });
    first.signal('SIGSTOP');
    try {
      const { logIds } = await admin.client.triggerJob({ jobId: failover, param: 'failover' });
      expect(await ended(logIds[0]!)).toMatchObject({
        executorInstance: `${app}-2`,
        outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      });
    } finally {
      first.signal('SIGCONT');
    }
    // Awake again, and still (or again, with a new stream) connected.
    await waitFor(async () => ((await listed()).includes(`${app}-1`) ? true : undefined), {
      what: `${app}-1 to be back after SIGCONT`,
    });
  });

  it('never starts a run request read after its answer_by (stopped by SIGSTOP); the run is sent again and runs once', async () => {
    const jobId = await job('echo');
    const stoppedSession = await sessionOf(`${app}-1`);
    first.signal('SIGSTOP');
    let logId: string;
    try {
      logId = await trigger(jobId, 'late');
      // No reply by answer_by plus the grace period: the admin holds the run in doubt and
      // ends the stream. Only then does the executor wake up and read the request.
      await waitFor(
        async () => ((await getLog(logId)).triggerMessage.includes('in doubt') ? true : undefined),
        {
          what: `log ${logId} to be in doubt`,
        },
      );
    } finally {
      first.signal('SIGCONT');
      await reconnected(`${app}-1`, stoppedSession);
    }
    expect(await ended(logId)).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      handleMessage: 'echo: late',
      executorInstance: `${app}-1`,
    });
    expect(runsOf(first, logId)).toBe(1);
  });

  it('answers a repeated run request for a run it has "already accepted" and does not run it twice', async () => {
    // What an executor sees when the admin that sent a run request stopped before it
    // recorded the answer (killed, or stalled past its lease): a peer takes the fire over
    // and asks the executor it names again, with the same (log, attempt). The stopped
    // admin is simulated in the database, exactly as its take-over finds it: the run's
    // log is PENDING again, claimed by an admin whose lease has lapsed.
    const jobId = await job('sleep');
    // Long enough to outlast the admin's hold on the acceptance (3 s, see HeldAcceptances):
    // the take-over below has to find the run accepted and still running.
    const logId = await trigger(jobId, '6000');
    await started(first, logId);
    await waitFor(
      async () =>
        (await getLog(logId)).dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED
          ? true
          : undefined,
      { what: `log ${logId} to be accepted` },
    );
    await withDatabase(database.url, async client => {
      await client.query(
        `insert into admin_instance (id, grpc_address, expires_at)
         values ($1, '127.0.0.1:1', now() - interval '1 minute') on conflict (id) do nothing`,
        [`stopped-${app}`],
      );
      await client.query(
        `update trigger_log set dispatch_outcome = 'PENDING', claimed_by = $2 where id = $1`,
        [logId, `stopped-${app}`],
      );
    });
    const asked = await waitFor(
      async () => {
        const log = await getLog(logId);
        return log.dispatchOutcome === DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED &&
          log.triggerMessage.includes('asked again')
          ? log
          : undefined;
      },
      { what: `log ${logId} to be asked again and accepted` },
    );
    // Asked again with the same (log, attempt), on the stream that runs it: accepted...
    expect(asked.triggerMessage).toMatch(/taken over; accepted by \S+ \(asked again on the same stream/);
    expect(await ended(logId)).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      handleMessage: 'slept',
    });
    expect(runsOf(first, logId)).toBe(1);
  });

  it('gracefully stops on SIGTERM: finishes the running run, delivers its result, leaves the list', async () => {
    const child = await startExecutor(`${app}-3`, { shutdownGracePeriodMs: 20_000 });
    const jobId = await job('sleep');
    const logId = await trigger(jobId, '800', [`${app}-3`]);
    await started(child, logId);
    child.signal('SIGTERM');
    await child.waitForJson(record => record.event === 'stopped', EVENT_CEILING_MS);
    expect(await child.exited).toMatchObject({ code: 0 });
    expect(await getLog(logId)).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      handleMessage: 'slept',
    });
    await waitFor(async () => (!(await listed()).includes(`${app}-3`) ? true : undefined), {
      what: `${app}-3 to leave ListExecutors`,
    });
  });

  it('after an admin restart: reconciles a running run at Register, and stores a spooled result from a restarted executor once', async () => {
    const jobId = await job('sleep');
    // Still running when the admin is back: listed in Register.running, its result accepted.
    const live = await trigger(jobId, '6000', [`${app}-1`]);
    const restartedDir = await tempDir(`${app}-4`);
    let restarted = await startExecutor(`${app}-4`, { dataDir: restartedDir });
    const spooled = await trigger(jobId, '1200', [`${app}-4`]);
    await Promise.all([started(first, live), started(restarted, spooled)]);

    // No admin to acknowledge the results: they can only live in the executors' spools.
    await admin.child.kill('SIGKILL');
    admin.close();
    await restarted.waitForJson(r => r.event === 'run-finishing' && r.logId === spooled, EVENT_CEILING_MS);
    await waitFor(async () => ((await spooledLogIds(restartedDir)).includes(spooled) ? true : undefined), {
      what: `the result of log ${spooled} in the spool`,
    });
    await restarted.kill('SIGKILL');
    const before = restarted;

    admin = await startAdmin();
    restarted = await startExecutor(`${app}-4`, { dataDir: restartedDir });
    for (const logId of [live, spooled]) {
      expect(await ended(logId)).toMatchObject({
        outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
        handleMessage: 'slept',
      });
    }
    // Each ran once: the restarted process did not run the spooled run again.
    expect([runsOf(first, live), runsOf(before, spooled), runsOf(restarted, spooled)]).toEqual([1, 1, 0]);
    const { logs } = await admin.client.listLogs({ jobId, pageSize: 100 });
    expect(logs.map(log => log.id).sort()).toEqual([live, spooled].sort());
    await restarted.kill('SIGKILL');
  });

  it('leaves ListExecutors within 1 s of SIGKILL', async () => {
    const child = await startExecutor(`${app}-5`);
    expect(await listed()).toContain(`${app}-5`);
    await child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(async () => (!(await listed()).includes(`${app}-5`) ? true : undefined), {
      intervalMs: 10,
      what: `${app}-5 to leave ListExecutors`,
    });
    expect(Date.now() - killedAt).toBeLessThan(1_000);
  });

  it('follows Drain when its admin stops (SIGTERM): reconnects to the other admin, and the running run reports there', async () => {
    const otherPort = await freePort();
    const other = await startAdmin(otherPort);
    const adminIdOf = async (client: AdminClient, instance: string) =>
      (await client.listExecutors({ appName: app })).executors.find(e => e.instanceName === instance)
        ?.adminInstanceId;
    const firstAdminId = await adminIdOf(admin.client, `${app}-1`);
    const child = await startExecutor(`${app}-6`, { adminAddresses: [admin.address, other.address] });
    const stoppingId = await adminIdOf(admin.client, `${app}-6`);
    const [stopping, staying] = stoppingId === firstAdminId ? [admin, other] : [other, admin];
    const jobId = await job('sleep');
    const logId = await trigger(jobId, '2000', [`${app}-6`]);
    await started(child, logId);

    stopping.child.signal('SIGTERM');
    expect(await stopping.child.exited).toMatchObject({ code: 0 });
    await waitFor(
      async () => {
        const id = await adminIdOf(staying.client, `${app}-6`);
        return id !== undefined && id !== stoppingId ? true : undefined;
      },
      { what: `${app}-6 to reconnect to the admin left` },
    );
    const log = await waitFor(
      async () => {
        const { log } = await staying.client.getLog({ id: logId });
        return log && log.status !== LogStatus.LOG_STATUS_RUNNING ? log : undefined;
      },
      { what: `log ${logId} to end after the drain` },
    );
    expect(log).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, handleMessage: 'slept' });
    expect(runsOf(child, logId)).toBe(1);
  });
}

/** Log ids of the results in an executor's spool file (written before they are sent). */
async function spooledLogIds(dataDir: string): Promise<string[]> {
  const text = await readFile(path.join(dataDir, 'results.spool.jsonl'), 'utf8').catch(() => '');
  // Whole lines only: the text after the last newline may be a write in progress.
  return text
    .split('\n')
    .slice(0, -1)
    .flatMap(line => {
      const record = JSON.parse(line) as { t?: string; logId?: string };
      return record.t === 'result' && record.logId !== undefined ? [record.logId] : [];
    });
}

async function withDatabase(url: string, use: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await use(client);
  } finally {
    await client.end();
  }
}
