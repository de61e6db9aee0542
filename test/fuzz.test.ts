import { randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { createChannel, createClient, Status } from 'nice-grpc';
import { HealthDefinition } from 'nice-grpc-server-health';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApp } from '../admin/src/app.js';
import { loadConfig } from '../admin/src/config.js';
import { createLogger } from '../admin/src/logger.js';
import {
  AddressType,
  AdminServiceDefinition,
  LogStatus,
  TriggerStatus,
  UserRole,
} from '@jobstream/proto/admin';
import {
  AdminMessage,
  ExecutorMessage,
  ExecutorServiceDefinition,
  RejectReason,
} from '@jobstream/proto/executor';
import {
  BlockStrategy,
  MisfireStrategy,
  RouteStrategy,
  RunOutcome,
  ScheduleType,
} from '@jobstream/proto/types';
import { adminClient, TEST_ADMIN_TOKEN, waitFor, type AdminClient } from './support/admin.js';
import { EVENT_CEILING_MS, TEST_CEILING_MS } from './support/ceiling.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, jobSpec } from './support/fixtures.js';
import { mutateBytes, mutateValue, Prng, randomBytes } from './support/mutations.js';
import { RawExecutor } from './support/raw-executor.js';

/**
 * Fuzzes both services with random and mutated messages and checks that the admin stays
 * up and healthy, answers every call with a deliberate status, logs no error, and that
 * the stored data changes only through requests the admin accepted.
 *
 * FUZZ_SEED reproduces a run (the seed is printed); FUZZ_ITERATIONS scales it (calls and
 * streams in all; each stream carries several messages).
 *
 * Undecodable protobuf is INVALID_ARGUMENT "malformed message: …" (see
 * admin/src/grpc/malformed-messages.ts: left to grpc-js it would be INTERNAL "Error
 * deserializing request", and on a stream a call that never ends). So any INTERNAL or
 * UNKNOWN is a failure, as is a call the admin never ends.
 */

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31);
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 4_000);
/**
 * Each call and stream must end well before this: a call still open then is a hang. Far
 * above anything a loaded machine needs, and above the admin's request deadline below.
 */
const CALL_DEADLINE_MS = 2 * EVENT_CEILING_MS;
/**
 * Work scales with FUZZ_ITERATIONS, and a loaded two-core machine is several times
 * slower than an idle one: the test's timeout only catches a hang.
 */
const FUZZ_TEST_TIMEOUT_MS = 600_000;
/** grpc-js's own words when the connection, not the service, failed. */
const TRANSPORT_FAILURE =
  /Connection dropped|No connection established|ECONNRESET|ECONNREFUSED|Deadline exceeded/;
/**
 * Tables the admin changes on its own, whatever the requests: presence rows (checked
 * separately: none may be left), leases, the derived daily report, migration bookkeeping.
 */
const VOLATILE_TABLES = new Set([
  'executor_registry',
  'admin_instance',
  'log_report',
  'kysely_migration',
  'kysely_migration_lock',
]);
/** Methods that need no token: a valid request succeeds (and may write) without one. */
const TOKENLESS = new Set(['login']);
/** Methods that cannot change stored data: fuzzed concurrently, checked once per phase. */
const READ_ONLY = /^(get|list|nextTriggerTimes$|readExecutorLog$|whoAmI$)/;

interface MethodInfo {
  name: string;
  requestType: {
    encode(message: never): { finish(): Uint8Array };
    fromPartial(object: never): unknown;
  };
}

interface Outcome {
  code: Status;
  details: string;
}

const identity = (value: Buffer): Buffer => value;

function hex(bytes: Uint8Array, max = 96): string {
  const text = Buffer.from(bytes.subarray(0, max)).toString('hex');
  return bytes.length > max ? `${text}… (${bytes.length} bytes)` : text;
}

describe(`fuzzing both services (FUZZ_SEED=${SEED})`, () => {
  let database: TestDatabase;
  let app: AdminApp;
  let client: AdminClient;
  let closeClient: () => void;
  let raw: grpc.Client;
  let sql: pg.Client;
  const logged: { level: number; msg: string; err?: unknown }[] = [];
  const fixture = {
    groupA: '',
    appA: 'fuzz-a',
    tokenA: '',
    groupB: '',
    emptyGroup: '',
    jobA: '',
    cronJob: '',
    leafJob: '',
    jobB: '',
    failedLog: '',
    runningLog: '',
    user: '',
    apiToken: '',
  };

  beforeAll(async () => {
    console.log(`fuzz seed ${SEED} (rerun with FUZZ_SEED=${SEED}), ${ITERATIONS} iterations`);
    database = await createTestDatabase();
    const config = loadConfig(
      {
        DATABASE_URL: database.url,
        JOBSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        JOBSTREAM_GRPC_PORT: '0',
        JOBSTREAM_METRICS_PORT: 'off',
        JOBSTREAM_CONSOLE_PORT: 'off',
      },
      {
        overrides: {
          // The fixture's runner answers its run request well within this on any machine: a
          // late answer would leave that run in doubt and let fuzzed Registers settle it.
          requestDeadlineMs: EVENT_CEILING_MS / 3,
          registerTimeoutMs: 1_000,
          // The failure monitor and housekeeper pass once at start, then not again within
          // the test (overrides skip the config's bounds): nothing but requests changes the
          // checked tables, however many iterations are asked for.
          failureMonitorIntervalMs: 3_600_000,
          housekeepingIntervalMs: 3_600_000,
          // Every call comes from 127.0.0.1; the limits have their own tests.
          connectRatePerSecond: 0,
          connectFailedAuthPerSecond: 0,
        },
      },
    );
    const sink = {
      write(line: string): void {
        logged.push(JSON.parse(line) as { level: number; msg: string });
      },
    };
    app = new AdminApp(config, createLogger({ level: 'warn', destination: sink }));
    await app.start();
    const admin = adminClient(app.grpcAddress);
    client = admin.client;
    closeClient = () => admin.channel.close();
    raw = new grpc.Client(app.grpcAddress, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    });
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();

    ({ groupId: fixture.groupA, token: fixture.tokenA } = await createGroup(client, fixture.appA));
    fixture.groupB = (await createGroup(client, 'fuzz-b')).groupId;
    fixture.emptyGroup = (await createGroup(client, 'fuzz-empty')).groupId;
    fixture.jobA = await createJob(client, fixture.groupA, 'echo', { param: 'p' });
    fixture.leafJob = await createJob(client, fixture.groupA, 'echo');
    fixture.cronJob = await createJob(client, fixture.groupA, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
      // Far in the future: a job the fuzzer manages to start never fires during the test.
      scheduleConf: '0 0 0 1 1 ? 2099',
      childJobIds: [fixture.jobA],
    });
    fixture.jobB = await createJob(client, fixture.groupB, 'echo');
    fixture.user = (
      await client.createUser({
        username: 'fuzz-operator',
        password: 'fuzz-password-0123',
        role: UserRole.USER_ROLE_OPERATOR,
        groupIds: [fixture.groupA],
      })
    ).user!.id;
    fixture.apiToken = (await client.createApiToken({ name: 'fuzz', userId: fixture.user })).apiToken!.id;
    // No executor is online: the trigger fails at once and its log is final.
    fixture.failedLog = (await client.triggerJob({ jobId: fixture.jobA })).logIds[0]!;
    // A run an executor accepted and then left: RUNNING, and its executor is gone.
    const executor = new RawExecutor(app.grpcAddress, fixture.tokenA);
    executor.register({ appName: fixture.appA, instanceName: 'fuzz-runner' });
    await executor.next('welcome');
    const triggered = client.triggerJob({ jobId: fixture.jobA });
    const request = await executor.next('runRequest');
    executor.send({
      kind: {
        $case: 'reply',
        value: { requestId: request.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    fixture.runningLog = (await triggered).logIds[0]!;
    await executor.close();
    await waitFor(() => (app.sessions.all().length === 0 ? true : undefined), { what: 'runner to leave' });
    // The admin marks the runs of an ended stream after the session left its registry:
    // under load that write came during the first phase, as a change to trigger_log.
    await waitFor(
      async () => {
        const { rows } = await sql.query<{ unroutable: boolean }>(
          'select unroutable_since is not null as unroutable from trigger_log where id = $1',
          [fixture.runningLog],
        );
        return rows[0]?.unroutable === true ? true : undefined;
      },
      { what: "the runner's run to be marked unroutable" },
    );
  }, TEST_CEILING_MS);

  afterAll(async () => {
    raw?.close();
    closeClient?.();
    await sql?.end();
    await app?.stop();
    await database?.drop();
  });

  /** Row counts and a hash of every row of each checked table, in one statement. */
  async function snapshot(): Promise<Map<string, string>> {
    const { rows: tables } = await sql.query<{ name: string }>(
      "select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    );
    const checked = tables.map(table => table.name).filter(name => !VOLATILE_TABLES.has(name));
    const query = checked
      .map(
        name =>
          `select '${name}' as name, count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' order by t::text), '')) as state from ${sql.escapeIdentifier(name)} t`,
      )
      .join(' union all ');
    const { rows } = await sql.query<{ name: string; state: string }>(query);
    return new Map(rows.map(row => [row.name, row.state]));
  }

  async function rowHashes(table: string): Promise<Map<string, string>> {
    const { rows } = await sql.query<{ id: string; hash: string }>(
      `select id::text as id, md5(t::text) as hash from ${sql.escapeIdentifier(table)} t`,
    );
    return new Map(rows.map(row => [row.id, row.hash]));
  }

  function changedTables(before: Map<string, string>, after: Map<string, string>): string[] {
    const names = new Set([...before.keys(), ...after.keys()]);
    return [...names].filter(name => before.get(name) !== after.get(name));
  }

  function unary(path: string, body: Uint8Array, token: string | undefined): Promise<Outcome> {
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    return new Promise(resolve => {
      raw.makeUnaryRequest(
        path,
        identity,
        identity,
        Buffer.from(body),
        metadata,
        { deadline: Date.now() + CALL_DEADLINE_MS },
        (error: grpc.ServiceError | null) =>
          resolve(
            error ? { code: error.code as number, details: error.details } : { code: Status.OK, details: '' },
          ),
      );
    });
  }

  /** Sends `messages` on one Connect stream, half-closes it and waits for the status. */
  function stream(
    messages: readonly Uint8Array[],
    token: string | undefined,
  ): Promise<Outcome & { received: Buffer[] }> {
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    const own = new grpc.Client(app.grpcAddress, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
      'grpc.use_local_subchannel_pool': 1,
    });
    const call = own.makeBidiStreamRequest(
      `/${ExecutorServiceDefinition.fullName}/Connect`,
      identity,
      identity,
      metadata,
      { deadline: Date.now() + CALL_DEADLINE_MS },
    );
    const received: Buffer[] = [];
    call.on('data', (message: Buffer) => received.push(message));
    // Non-OK statuses also arrive as 'error'; 'status' carries every outcome.
    call.on('error', () => undefined);
    const status = new Promise<Outcome & { received: Buffer[] }>(resolve => {
      call.on('status', (s: grpc.StatusObject) => {
        own.close();
        resolve({ code: s.code as number, details: s.details, received });
      });
    });
    for (const message of messages) call.write(Buffer.from(message));
    call.end();
    return status;
  }

  const violations: string[] = [];
  /** How often each status was seen, for the summary: shows what the fuzzer reached. */
  const statuses = new Map<string, number>();

  /** Records a violation unless the status is a deliberate answer of the admin. */
  function checkStatus(what: string, outcome: Outcome, bytes: () => string): void {
    const { code, details } = outcome;
    const key = details.startsWith('malformed message:') ? 'INVALID_ARGUMENT (malformed)' : Status[code];
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    const bad =
      code === Status.UNKNOWN ||
      code === Status.INTERNAL ||
      (code !== Status.OK && TRANSPORT_FAILURE.test(details)) ||
      (code !== Status.OK && details === '');
    if (bad) violations.push(`${what}: ${Status[code]} "${details}" for ${bytes()}`);
  }

  function methods(): [string, MethodInfo][] {
    return Object.entries(AdminServiceDefinition.methods as Record<string, MethodInfo>);
  }

  function samples(): Record<string, unknown> {
    const spec = jobSpec(fixture.groupA, 'echo', {
      description: 'fuzzed',
      author: 'fuzz',
      alarmEmail: 'ops@example.com',
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
      scheduleConf: '60',
      timeZone: 'Europe/Berlin',
      misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_FIRE_ONCE_NOW,
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND,
      param: 'param',
      blockStrategy: BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER,
      timeoutSeconds: 30,
      failRetryCount: 2,
      failRetryDelay: { seconds: '10', nanos: 0 },
      childJobIds: [fixture.leafJob],
    });
    const groupSpec = {
      appName: 'fuzz-new',
      title: 'Fuzzed',
      addressType: AddressType.ADDRESS_TYPE_MANUAL,
      addresses: ['fuzz-1'],
    };
    const token = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    return {
      createExecutorGroup: { spec: groupSpec },
      updateExecutorGroup: { id: fixture.groupB, spec: groupSpec, updateMask: ['title'] },
      deleteExecutorGroup: { id: fixture.emptyGroup },
      getExecutorGroup: { id: fixture.groupA },
      listExecutorGroups: { appNameContains: 'fuzz' },
      rotateExecutorGroupToken: { id: fixture.groupB, previousTokenGrace: { seconds: '60', nanos: 0 } },
      createJob: { spec },
      updateJob: { id: fixture.jobA, spec, updateMask: ['param', 'description'] },
      deleteJob: { id: fixture.leafJob },
      getJob: { id: fixture.jobA },
      listJobs: {
        groupId: fixture.groupA,
        triggerStatus: TriggerStatus.TRIGGER_STATUS_STOPPED,
        descriptionContains: 'runs',
        handlerContains: 'echo',
        authorContains: 'test',
        pageSize: 2,
        pageToken: token({ a: fixture.jobA }),
      },
      startJob: { id: fixture.cronJob },
      stopJob: { id: fixture.cronJob },
      nextTriggerTimes: {
        scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
        scheduleConf: '0 0/5 * * * ?',
        timeZone: 'Europe/Berlin',
        count: 5,
        from: new Date(),
      },
      triggerJob: { jobId: fixture.jobB, param: 'p', executorInstances: ['fuzz-1'] },
      listExecutors: { appName: fixture.appA },
      listLogs: {
        groupId: fixture.groupA,
        jobId: fixture.jobA,
        status: LogStatus.LOG_STATUS_FAILED,
        triggeredAfter: new Date(Date.now() - 3_600_000),
        triggeredBefore: new Date(Date.now() + 3_600_000),
        pageSize: 5,
        pageToken: token({ t: Date.now(), i: fixture.failedLog }),
      },
      getLog: { id: fixture.failedLog },
      readExecutorLog: { logId: fixture.runningLog, fromLine: 1, maxLines: 10 },
      killRun: { logId: fixture.runningLog },
      getDashboard: { fromDay: '2026-01-01', toDay: '2026-01-31' },
      login: { username: 'fuzz-operator', password: 'fuzz-password-0123' },
      changePassword: { currentPassword: 'fuzz-password-0123', newPassword: 'fuzz-password-4567' },
      createUser: {
        username: 'fuzz-viewer',
        password: 'fuzz-password-0123',
        role: UserRole.USER_ROLE_VIEWER,
        groupIds: [fixture.groupA],
      },
      updateUser: {
        id: fixture.user,
        role: UserRole.USER_ROLE_VIEWER,
        groupIds: [fixture.groupB],
        replaceGroupIds: true,
        password: '',
      },
      deleteUser: { id: fixture.user },
      getUser: { id: fixture.user },
      createApiToken: { name: 'fuzzed', userId: fixture.user, ttl: { seconds: '3600', nanos: 0 } },
      listApiTokens: { userId: fixture.user },
      revokeApiToken: { id: fixture.apiToken },
    };
  }

  /** A request for `method`: random bytes, or a mutation (of the encoding or of the values) of a valid one. */
  function fuzzedRequest(rng: Prng, method: MethodInfo, sample: unknown): { bytes: Uint8Array; how: string } {
    const type = method.requestType;
    const valid = type.fromPartial((sample ?? {}) as never);
    const roll = rng.next();
    if (roll < 0.002) {
      // Over the admin's 4 MiB message limit: grpc-js refuses it before decoding.
      const encoded = type.encode(valid as never).finish();
      const copies = Math.ceil((4 * 1024 * 1024 + 1) / Math.max(1, encoded.length));
      const huge = new Uint8Array(copies * encoded.length);
      for (let i = 0; i < copies; i++) huge.set(encoded, i * encoded.length);
      return { bytes: huge, how: 'over the size limit' };
    }
    if (roll < 0.1) return { bytes: randomBytes(rng), how: 'random bytes' };
    if (roll < 0.6) {
      try {
        const mutated = type.fromPartial(mutateValue(rng, valid) as never);
        return { bytes: type.encode(mutated as never).finish(), how: 'mutated values' };
      } catch {
        // A value the encoder refuses (an int64 that is not a number): mutate bytes instead.
      }
    }
    return mutateBytes(rng, type.encode(valid as never).finish());
  }

  async function inParallel<T>(
    items: readonly T[],
    width: number,
    run: (item: T) => Promise<void>,
  ): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < items.length) await run(items[next++]!);
      }),
    );
  }

  const healthFailures: string[] = [];
  let healthChecks = 0;

  /** Polls the health service while `work` runs. */
  async function whileHealthy(work: () => Promise<void>): Promise<void> {
    const channel = createChannel(app.grpcAddress);
    const health = createClient(HealthDefinition, channel);
    let done = false;
    const poller = (async () => {
      while (!done) {
        try {
          const { status } = await health.check(
            { service: '' },
            { signal: AbortSignal.timeout(EVENT_CEILING_MS) },
          );
          // 1 is SERVING (the enum is not exported by nice-grpc-server-health's entry point).
          if (Number(status) !== 1) healthFailures.push(`health status ${status}`);
        } catch (error) {
          healthFailures.push(`health check failed: ${String(error)}`);
        }
        healthChecks++;
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    })();
    try {
      await work();
    } finally {
      done = true;
      await poller;
      channel.close();
    }
  }

  it(
    'keeps the admin up, healthy and its data unchanged under random and mutated input',
    async () => {
      const rng = new Prng(SEED);
      const started = Date.now();
      const all = methods();
      const allSamples = samples();
      const share = (fraction: number): number => Math.max(all.length, Math.round(ITERATIONS * fraction));
      let accepted = 0;

      await whileHealthy(async () => {
        // 1. No token or a wrong one: every call is refused and nothing changes. Methods
        // that need no token (Login) are fuzzed with those that may write, in step 4.
        const before = await snapshot();
        const guarded = all.filter(([name]) => !TOKENLESS.has(name));
        const anonymous = Array.from({ length: share(0.15) }, (_, i) => {
          const [name, method] = guarded[i % guarded.length]!;
          return {
            name,
            method,
            request: fuzzedRequest(rng, method, allSamples[name]),
            token: rng.pick([undefined, 'wrong-token-0123456789']),
          };
        });
        await inParallel(anonymous, 16, async ({ name, method, request, token }) => {
          const outcome = await unary(
            `/${AdminServiceDefinition.fullName}/${method.name}`,
            request.bytes,
            token,
          );
          checkStatus(`anonymous ${name} (${request.how})`, outcome, () => hex(request.bytes));
          if (outcome.code === Status.OK) violations.push(`anonymous ${name} succeeded`);
        });
        expect(changedTables(before, await snapshot()), 'tables changed by refused anonymous calls').toEqual(
          [],
        );

        // 2. Read-only methods with the token, concurrently: nothing may change.
        const readers = all.filter(([name]) => READ_ONLY.test(name));
        const reads = Array.from({ length: share(0.25) }, (_, i) => {
          const [name, method] = readers[i % readers.length]!;
          return { name, method, request: fuzzedRequest(rng, method, allSamples[name]) };
        });
        await inParallel(reads, 16, async ({ name, method, request }) => {
          const outcome = await unary(
            `/${AdminServiceDefinition.fullName}/${method.name}`,
            request.bytes,
            TEST_ADMIN_TOKEN,
          );
          checkStatus(`${name} (${request.how})`, outcome, () => hex(request.bytes));
        });
        expect(changedTables(before, await snapshot()), 'tables changed by read-only calls').toEqual([]);

        // 3. Connect: random and mutated messages before and after a valid Register.
        const logsBefore = await rowHashes('trigger_log');
        const resultLogIds = new Set<string>();
        await fuzzStreams(rng, share(0.3), resultLogIds);
        await waitFor(() => (app.sessions.all().length === 0 ? true : undefined), {
          what: 'every fuzzed session to end',
        });
        // A session leaves the registry before its presence row is deleted.
        const presence = await waitFor(
          async () => {
            const { rows } = await sql.query<{ instance_name: string }>(
              'select instance_name from executor_registry',
            );
            return rows.length === 0 ? rows : undefined;
          },
          { what: 'presence rows of ended streams to go' },
        ).catch(
          async () => (await sql.query<{ instance_name: string }>('select * from executor_registry')).rows,
        );
        expect(presence, 'presence rows left by ended streams').toEqual([]);
        const after = await snapshot();
        // A mutated RunResult may still be a valid result for a log that has none: the only
        // change allowed is to logs named by a result sent on a welcomed stream.
        expect(changedTables(before, after).filter(name => name !== 'trigger_log')).toEqual([]);
        const logsAfter = await rowHashes('trigger_log');
        const changedLogs = [...new Set([...logsBefore.keys(), ...logsAfter.keys()])].filter(
          id => logsBefore.get(id) !== logsAfter.get(id),
        );
        expect(
          changedLogs.filter(id => !resultLogIds.has(id)),
          'logs changed without a result',
        ).toEqual([]);

        // 4. Methods that may write, one at a time: a refused call must leave every table
        // as it was; an accepted one (a mutation that is still valid) sets a new baseline.
        const writers = all.filter(([name]) => !READ_ONLY.test(name));
        let baseline = await snapshot();
        for (let i = 0; i < share(0.3); i++) {
          const [name, method] = writers[i % writers.length]!;
          const request = fuzzedRequest(rng, method, allSamples[name]);
          const outcome = await unary(
            `/${AdminServiceDefinition.fullName}/${method.name}`,
            request.bytes,
            TEST_ADMIN_TOKEN,
          );
          checkStatus(`${name} (${request.how})`, outcome, () => hex(request.bytes));
          if (outcome.code === Status.OK) {
            accepted++;
            await quiesce();
            baseline = await snapshot();
            continue;
          }
          const changed = changedTables(baseline, await snapshot());
          if (changed.length > 0) {
            violations.push(
              `${name} (${request.how}) was refused with ${Status[outcome.code]} "${outcome.details}" but changed ${changed.join(', ')}: ${hex(request.bytes)}`,
            );
            baseline = await snapshot();
          }
        }
      });

      // The admin is still serving, for real: a valid request works end to end.
      expect((await client.getJob({ id: fixture.jobA })).job?.id).toBe(fixture.jobA);
      expect(app.state).toBe('running');
      console.log(
        `fuzz seed ${SEED}: ${ITERATIONS} iterations in ${Date.now() - started} ms, ${accepted} mutated writes accepted, ${healthChecks} health checks; statuses: ${[
          ...statuses,
        ]
          .sort((a, b) => b[1] - a[1])
          .map(([name, count]) => `${name} ${count}`)
          .join(', ')}`,
      );
      expect(healthFailures, 'health checks').toEqual([]);
      expect(healthChecks).toBeGreaterThan(0);
      expect(violations.slice(0, 20), `violations (FUZZ_SEED=${SEED})`).toEqual([]);
      // Errors, and input that reached PostgreSQL and failed there (even if only warned about).
      const problems = logged.filter(
        entry => entry.level >= 50 || (entry.err as { type?: unknown } | undefined)?.type === 'DatabaseError',
      );
      expect(
        problems.map(entry => `${entry.msg}: ${JSON.stringify(entry.err)?.slice(0, 300)}`),
        `errors logged by the admin (FUZZ_SEED=${SEED})`,
      ).toEqual([]);
    },
    FUZZ_TEST_TIMEOUT_MS,
  );

  /**
   * After an accepted write: stop any job it started, so the scheduler adds nothing
   * behind the fuzzer's back, then wait until the tables are still.
   */
  async function quiesce(): Promise<void> {
    const { rows } = await sql.query<{ id: string }>(
      "select id::text as id from job where trigger_status = 'RUNNING'",
    );
    for (const { id } of rows) await client.stopJob({ id });
    let previous = await snapshot();
    for (;;) {
      await new Promise(resolve => setTimeout(resolve, 20));
      const current = await snapshot();
      if (changedTables(previous, current).length === 0) return;
      previous = current;
    }
  }

  async function fuzzStreams(rng: Prng, count: number, resultLogIds: Set<string>): Promise<void> {
    const encode = (message: ExecutorMessage): Uint8Array => ExecutorMessage.encode(message).finish();
    const register = (instanceName: string): ExecutorMessage => ({
      kind: {
        $case: 'register',
        value: {
          appName: fixture.appA,
          instanceName,
          hostname: 'fuzz-host',
          pid: 1,
          sdkName: 'fuzz',
          sdkVersion: '0',
          handlers: ['echo'],
          capacity: 4,
          labels: { zone: 'a' },
          running: [{ logId: fixture.runningLog, attempt: 1 }],
          unacknowledgedResults: [{ logId: fixture.failedLog, attempt: 1 }],
          protocolVersion: 1,
          pipelineWindow: 0,
          scriptKinds: [],
        },
      },
    });
    const followUps: ExecutorMessage[] = [
      {
        kind: {
          $case: 'beat',
          value: {
            runningCount: 1,
            queuedCount: 0,
            eventLoopLagMs: 3,
            unresponsiveRuns: [{ logId: fixture.runningLog, attempt: 1 }],
          },
        },
      },
      {
        kind: {
          $case: 'reply',
          value: {
            requestId: '1',
            accepted: false,
            rejectReason: RejectReason.REJECT_REASON_BUSY,
            message: 'busy',
            logChunk: { fromLine: 1, toLine: 2, lines: ['a', 'b'], end: true },
          },
        },
      },
      {
        kind: {
          $case: 'runResult',
          value: {
            logId: '999999999',
            attempt: 1,
            outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
            message: 'done',
            startedAt: new Date(Date.now() - 1_000),
            finishedAt: new Date(),
          },
        },
      },
    ];
    const mutate = (message: ExecutorMessage): Uint8Array => {
      if (rng.chance(0.1)) return randomBytes(rng);
      if (rng.chance(0.5)) {
        try {
          return encode(ExecutorMessage.fromPartial(mutateValue(rng, message) as ExecutorMessage));
        } catch {
          // Not encodable: mutate its bytes instead.
        }
      }
      return mutateBytes(rng, encode(message)).bytes;
    };
    const streams = Array.from({ length: count }, (_, index) => index);
    await inParallel(streams, 8, async index => {
      const instance = `fuzz-${index}`;
      const scenario = rng.int(3);
      const messages: Uint8Array[] = [];
      let token: string | undefined = fixture.tokenA;
      if (scenario === 0) {
        // Without a valid token: refused whatever follows.
        token = rng.pick([undefined, 'wrong-token-0123456789']);
        messages.push(encode(register(instance)), mutate(rng.pick(followUps)));
      } else if (scenario === 1) {
        // Anything but a valid Register first: a mutated one, another kind, random bytes.
        messages.push(mutate(rng.pick([register(instance), ...followUps])));
        if (rng.chance(0.5)) messages.push(mutate(rng.pick(followUps)));
      } else {
        messages.push(encode(register(instance)));
        const more = 1 + rng.int(8);
        for (let i = 0; i < more; i++) messages.push(mutate(rng.pick([...followUps, register(instance)])));
      }
      const outcome = await stream(messages, token);
      const what = `Connect scenario ${scenario}`;
      checkStatus(what, outcome, () => messages.map(message => hex(message, 48)).join(' | '));
      if (scenario === 0 && outcome.code === Status.OK)
        violations.push(`${what} without a valid token succeeded`);
      const welcomed = outcome.received.some(bytes => {
        try {
          return AdminMessage.decode(bytes).kind?.$case === 'welcome';
        } catch {
          return false;
        }
      });
      if (!welcomed) return;
      for (const bytes of messages) {
        try {
          const kind = ExecutorMessage.decode(bytes).kind;
          if (kind?.$case === 'runResult') resultLogIds.add(kind.value.logId);
        } catch {
          // Undecodable: the admin ended the stream on it.
        }
      }
    });
  }
});
