import * as grpc from '@grpc/grpc-js';
import { ClientError, ServerError, Status, type CallContext } from 'nice-grpc';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AdminConfig } from '../admin/src/config.js';
import { LogStatus, type AddressType, type JobSpec, type TriggerStatus } from '@jobstream/proto/admin';
import { AdminMessage, ExecutorMessage, RejectReason } from '@jobstream/proto/executor';
import { RunOutcome, ScheduleType } from '@jobstream/proto/types';
import { ConnectLimits, peerHost } from '../admin/src/grpc/connect-limits.js';
import { errorBoundary } from '../admin/src/grpc/error-boundary.js';
import { createLogger } from '../admin/src/logger.js';
import { Executor, MAX_LOG_READ_BYTES, type Logger } from '../executor-sdk/src/index.js';
import {
  finishedLog,
  startTestAdmin,
  TEST_ADMIN_TOKEN,
  waitFor,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, jobSpec, tempDir } from './support/fixtures.js';
import { RawExecutor } from './support/raw-executor.js';

/** What a refused call or stream failed with. */
function refusal(error: unknown): { code: Status; details: string } {
  expect(error).toBeInstanceOf(ClientError);
  const { code, details } = error as ClientError;
  return { code, details };
}

async function refusalOf(call: Promise<unknown>): Promise<{ code: Status; details: string }> {
  return call.then(() => {
    throw new Error('the call succeeded');
  }, refusal);
}

describe('Connect limits (unit)', () => {
  function limits(options: Partial<ConstructorParameters<typeof ConnectLimits>[0]> = {}) {
    const clock = { now: 0 };
    const instance = new ConnectLimits({
      maxStreamsPerGroup: 1_000,
      attemptsPerSecond: 0,
      failedAuthenticationsPerSecond: 0,
      now: () => clock.now,
      ...options,
    });
    return { limits: instance, clock };
  }

  function refused(run: () => unknown): string {
    try {
      run();
    } catch (error) {
      expect(error).toMatchObject({ code: Status.RESOURCE_EXHAUSTED });
      return (error as { details: string }).details;
    }
    throw new Error('not refused');
  }

  it('lets a host burst to twice the rate, then one attempt per 1/rate seconds', () => {
    const { limits: l, clock } = limits({ attemptsPerSecond: 2 });
    for (let i = 0; i < 4; i++) l.admit('10.0.0.1:4000').release();
    expect(refused(() => l.admit('10.0.0.1:4001'))).toBe(
      'too many Connect attempts from 10.0.0.1; retry later',
    );
    // Another host has its own bucket.
    l.admit('10.0.0.2:4000').release();
    clock.now += 500;
    l.admit('10.0.0.1:4002').release();
    expect(refused(() => l.admit('10.0.0.1:4003'))).toContain('too many Connect attempts');
  });

  it('refuses a host that keeps failing to authenticate, before its next attempt costs anything', () => {
    const { limits: l, clock } = limits({ failedAuthenticationsPerSecond: 1 });
    for (let i = 0; i < 2; i++) l.admit('10.0.0.9:1').authenticationFailed();
    expect(refused(() => l.admit('10.0.0.9:2'))).toBe(
      'too many failed Connect authentications from 10.0.0.9; retry later',
    );
    l.admit('10.0.0.10:1').release();
    clock.now += 1_000;
    l.admit('10.0.0.9:3').release();
  });

  it('caps concurrent streams per group and gives slots back on release', () => {
    const { limits: l } = limits({ maxStreamsPerGroup: 2 });
    const group = { id: '7', appName: 'orders' };
    const first = l.admit('10.0.0.1:1');
    first.holdStream(group);
    l.admit('10.0.0.1:2').holdStream(group);
    expect(refused(() => l.admit('10.0.0.1:3').holdStream(group))).toContain(
      'executor group "orders" already holds 2 streams on this admin',
    );
    l.admit('10.0.0.1:4').holdStream({ id: '8', appName: 'billing' });
    first.release();
    first.release();
    expect(l.streamsOf('7')).toBe(1);
    l.admit('10.0.0.1:5').holdStream(group);
  });

  it('keeps memory bounded: idle buckets are dropped and at most maxTrackedHosts are kept', () => {
    const { limits: l, clock } = limits({
      attemptsPerSecond: 5,
      failedAuthenticationsPerSecond: 1,
      maxTrackedHosts: 100,
    });
    for (let i = 0; i < 10_000; i++) {
      const admission = l.admit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:1`);
      admission.authenticationFailed();
    }
    expect(l.trackedHosts).toBe(100);
    // Refilled buckets hold no information: the next sweep forgets them.
    clock.now += 60_000;
    l.admit('192.168.0.1:1').release();
    expect(l.trackedHosts).toBeLessThanOrEqual(1);
  });

  it.each([
    ['127.0.0.1:5555', '127.0.0.1'],
    ['::ffff:10.1.2.3:443', '10.1.2.3'],
    ['::1:5555', '0:0:0:0::/64'],
    ['2001:db8:1:2:aaaa:bbbb:cccc:dddd:8080', '2001:db8:1:2::/64'],
    ['[2001:db8::1]:8080', '2001:db8:0:0::/64'],
    ['unknown', 'unknown'],
  ])('names the host of peer %s as %s', (peer, host) => {
    expect(peerHost(peer)).toBe(host);
  });
});

describe('status messages', () => {
  async function detailsThrough(details: string): Promise<string> {
    const boundary = errorBoundary(createLogger({ level: 'silent' }));
    const call = {
      method: { path: '/test/Method', requestStream: false, responseStream: false, options: {} },
      requestStream: false as const,
      request: {},
      responseStream: false as const,
      // eslint-disable-next-line require-yield
      async *next(): AsyncGenerator<never, never, undefined> {
        await Promise.resolve();
        throw new ServerError(Status.INVALID_ARGUMENT, details);
      },
    };
    try {
      await boundary(call, {} as CallContext).next();
    } catch (error) {
      return (error as ServerError).details;
    }
    throw new Error('no error');
  }

  it('are bounded, since Node cannot send a trailer over 64 KiB and the call would never end', async () => {
    const quoted = await detailsThrough(`name "${'\u20AC'.repeat(30_000)}" is wrong`);
    expect(encodeURI(quoted).length).toBeLessThanOrEqual(4_096);
    expect(quoted.endsWith('\u2026')).toBe(true);
    expect(await detailsThrough('short and plain')).toBe('short and plain');
    // grpc-js encodes the message with encodeURI, which throws on a lone surrogate.
    expect(await detailsThrough('half \uD800 a pair')).toBe('half \uFFFD a pair');
  });
});

describe('limits and bad input against a running admin', () => {
  let database: TestDatabase;
  let admin: TestAdmin | undefined;
  const raws: RawExecutor[] = [];
  let appCounter = 0;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await Promise.all(raws.splice(0).map(raw => raw.close()));
    await admin?.stop();
    admin = undefined;
  });

  afterAll(async () => {
    await database?.drop();
  });

  async function start(overrides: Partial<AdminConfig> = {}): Promise<AdminClient> {
    admin = await startTestAdmin(database.url, overrides);
    return admin.client;
  }

  function uniqueApp(prefix: string): string {
    appCounter += 1;
    return `${prefix}-${appCounter}`;
  }

  function connect(token: string, appName: string, instanceName: string): RawExecutor {
    const raw = new RawExecutor(admin!.address, token);
    raws.push(raw);
    raw.register({ appName, instanceName });
    return raw;
  }

  /** Resolves 'welcome' once welcomed, or with the refusal of the stream. */
  async function outcome(raw: RawExecutor): Promise<'welcome' | { code: Status; details: string }> {
    await Promise.race([raw.next('welcome').catch(() => undefined), raw.done]);
    return raw.received.some(message => message.kind?.$case === 'welcome') ? 'welcome' : refusal(raw.error);
  }

  it('refuses more concurrent streams per group than JOBSTREAM_MAX_STREAMS_PER_GROUP', async () => {
    const client = await start({ maxStreamsPerGroup: 2 });
    const capped = uniqueApp('capped');
    const other = uniqueApp('other');
    const { token } = await createGroup(client, capped);
    const { token: otherToken } = await createGroup(client, other);
    const first = connect(token, capped, 'c-1');
    expect(await outcome(first)).toBe('welcome');
    expect(await outcome(connect(token, capped, 'c-2'))).toBe('welcome');
    expect(await outcome(connect(token, capped, 'c-3'))).toEqual({
      code: Status.RESOURCE_EXHAUSTED,
      details: expect.stringContaining(
        `executor group "${capped}" already holds 2 streams on this admin`,
      ) as unknown,
    });
    expect(await outcome(connect(otherToken, other, 'o-1'))).toBe('welcome');
    // A slot is given back when its stream ends.
    await first.close();
    await waitFor(async () => {
      const raw = connect(token, capped, 'c-4');
      return (await outcome(raw)) === 'welcome' ? true : undefined;
    });
  });

  it('refuses Connect attempts over JOBSTREAM_CONNECT_RATE_PER_SECOND from one host', async () => {
    // The lowest rate: the burst of twelve reaches the admin over however long a loaded
    // machine takes, and each second of that refills one more attempt.
    const client = await start({ connectRatePerSecond: 1 });
    const app = uniqueApp('rated');
    const { token } = await createGroup(client, app);
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, index) => outcome(connect(token, app, `r-${index}`))),
    );
    const refusals = outcomes.filter(result => result !== 'welcome');
    // A burst of twice the rate passes (plus whatever refilled meanwhile); the rest is refused.
    expect(refusals.length).toBeGreaterThanOrEqual(3);
    for (const refused of refusals) {
      expect(refused).toEqual({
        code: Status.RESOURCE_EXHAUSTED,
        details: 'too many Connect attempts from 127.0.0.1; retry later',
      });
    }
    // Time for one attempt to refill (a slower machine only waits longer).
    await new Promise(resolve => setTimeout(resolve, 1_100));
    expect(await outcome(connect(token, app, 'r-late'))).toBe('welcome');
  });

  it('refuses a host after JOBSTREAM_CONNECT_FAILED_AUTH_PER_SECOND failed authentications', async () => {
    const client = await start({ connectFailedAuthPerSecond: 1 });
    const app = uniqueApp('guarded');
    const { token } = await createGroup(client, app);
    // Together, so that the third attempt follows the second failure as closely as it can
    // (a second between them refills the budget).
    const guesses = await Promise.all(
      [0, 1].map(i => outcome(connect('guessed-token-0123456789', app, `g-${i}`))),
    );
    for (const guess of guesses) expect(guess).toMatchObject({ code: Status.UNAUTHENTICATED });
    expect(await outcome(connect('guessed-token-0123456789', app, 'g-3'))).toEqual({
      code: Status.RESOURCE_EXHAUSTED,
      details: 'too many failed Connect authentications from 127.0.0.1; retry later',
    });
    // The budget is per host, so the host's valid token waits too, but only until it refills.
    await new Promise(resolve => setTimeout(resolve, 1_100));
    expect(await outcome(connect(token, app, 'g-ok'))).toBe('welcome');
  });

  it('lets the SDK back off while rate limited and connect when the limit passes', async () => {
    const client = await start({ connectRatePerSecond: 1 });
    const app = uniqueApp('patient');
    const { token } = await createGroup(client, app);
    const dataDir = await tempDir('patient');
    const warnings: unknown[] = [];
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (obj: object) => warnings.push(obj),
      error: (obj: object) => warnings.push(obj),
    };
    const executor = new Executor({
      adminAddresses: [admin!.address],
      appName: app,
      accessToken: token,
      instanceName: 'patient-sdk',
      dataDir,
      reconnectBaseDelayMs: 100,
      reconnectMaxDelayMs: 400,
      logger,
    });
    executor.register('echo', () => Promise.resolve('ok'));
    const refused = (): boolean =>
      warnings.some(
        warning => (warning as { err?: { code?: unknown } }).err?.code === Status.RESOURCE_EXHAUSTED,
      );
    // Keep the host's budget used up until the SDK has been refused: a burst of two used
    // up just before start() could refill (one per second) before a loaded machine's SDK
    // makes its first attempt.
    let draining = true;
    let attempts = 0;
    const drain = (async () => {
      while (draining) await outcome(connect(token, app, `burst-${attempts++}`));
    })();
    try {
      await waitFor(() => (attempts >= 2 ? true : undefined), { what: 'the burst to be used up' });
      const starting = executor.start();
      try {
        await waitFor(() => (refused() ? true : undefined), { what: 'the SDK to be refused' });
      } finally {
        draining = false;
        await drain;
      }
      await starting;
      const { executors } = await client.listExecutors({ appName: app });
      expect(executors.map(executor => executor.instanceName)).toContain('patient-sdk');
    } finally {
      draining = false;
      await drain;
      await executor.stop();
    }
  });

  it('refuses messages over JOBSTREAM_MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED from grpc-js, storing nothing', async () => {
    const client = await start({ maxMessageBytes: 64 * 1024 });
    const app = uniqueApp('sized');
    const { groupId, token } = await createGroup(client, app);
    const before = await client.listJobs({ groupId });
    const job = refusalOf(
      client.createJob({ spec: jobSpec(groupId, 'echo', { glueRemark: 'x'.repeat(100_000) }) }),
    );
    expect(await job).toEqual({
      code: Status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/larger than max/) as unknown,
    });
    expect((await client.listJobs({ groupId })).totalCount).toBe(before.totalCount);
    const raw = new RawExecutor(admin!.address, token);
    raws.push(raw);
    raw.register({
      appName: app,
      instanceName: 'huge',
      handlers: Array.from({ length: 500 }, (_, i) => `h${i}-${'x'.repeat(200)}`),
    });
    expect(await outcome(raw)).toEqual({
      code: Status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/larger than max/) as unknown,
    });
  });

  it('refuses oversized parameters, naming the field', async () => {
    const client = await start();
    const { groupId } = await createGroup(client, uniqueApp('params'));
    expect(
      await refusalOf(client.createJob({ spec: jobSpec(groupId, 'echo', { param: 'p'.repeat(4097) }) })),
    ).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: 'spec.param: must be at most 4096 characters',
    });
    const jobId = await createJob(client, groupId, 'echo');
    expect(await refusalOf(client.triggerJob({ jobId, param: 'p'.repeat(4097) }))).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: 'param: must be at most 4096 characters',
    });
    expect((await client.listLogs({ jobId })).logs).toEqual([]);
    // A schedule preview parses its text on the event loop: a huge one would stall every call.
    expect(
      await refusalOf(
        client.nextTriggerTimes({
          scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
          scheduleConf: '0 '.repeat(200),
        }),
      ),
    ).toEqual({ code: Status.INVALID_ARGUMENT, details: 'schedule_conf: must be at most 256 characters' });
  });

  it('refuses page sizes over the maximum, and negative ones', async () => {
    const client = await start();
    for (const pageSize of [501, -1, 2 ** 31 - 1]) {
      expect(await refusalOf(client.listJobs({ pageSize }))).toEqual({
        code: Status.INVALID_ARGUMENT,
        details: `page_size: must be from 1 to 500, got ${pageSize}`,
      });
      expect(await refusalOf(client.listLogs({ pageSize }))).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringContaining('page_size') as unknown,
      });
    }
  });

  it('bounds log reads in lines and, on the SDK side, in bytes', async () => {
    const client = await start();
    const app = uniqueApp('logs');
    const { groupId, token } = await createGroup(client, app);
    const executor = new Executor({
      adminAddresses: [admin!.address],
      appName: app,
      accessToken: token,
      instanceName: 'logs-1',
      dataDir: await tempDir('logs'),
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
    });
    const line = (char: string, length: number): string => char.repeat(length);
    const bytes = (lines: readonly string[]): number =>
      lines.reduce((sum, text) => sum + Buffer.byteLength(text), 0);
    executor.register('chatty', ctx => {
      ctx.log(line('a', 600_000));
      ctx.log(line('b', 600_000));
      ctx.log(line('c', 1_500_000));
      ctx.log('last');
      return Promise.resolve('logged');
    });
    await executor.start();
    try {
      const jobId = await createJob(client, groupId, 'chatty');
      const logId = (await client.triggerJob({ jobId })).logIds[0]!;
      expect((await finishedLog(client, logId)).status).toBe(LogStatus.LOG_STATUS_SUCCEEDED);
      expect(await refusalOf(client.readExecutorLog({ logId, fromLine: 1, maxLines: 1001 }))).toEqual({
        code: Status.INVALID_ARGUMENT,
        details: 'max_lines: must be from 1 to 1000',
      });
      // A rolling read, as an operator's tail would do it.
      const chunks: { lines: string[]; end: boolean }[] = [];
      for (let fromLine = 1; chunks.at(-1)?.end !== true && chunks.length < 20;) {
        const chunk = await client.readExecutorLog({ logId, fromLine, maxLines: 1000 });
        expect(bytes(chunk.lines)).toBeLessThanOrEqual(MAX_LOG_READ_BYTES);
        chunks.push(chunk);
        fromLine = chunk.toLine + 1;
      }
      const lines = chunks.flatMap(chunk => chunk.lines);
      expect(chunks.at(-1)?.end).toBe(true);
      expect(lines.some(text => text.endsWith(' last'))).toBe(true);
      // Two 600 kB lines never share a chunk of at most 1 MiB.
      const holding = (char: string): number =>
        chunks.findIndex(chunk => chunk.lines.some(text => text.endsWith(line(char, 1_000))));
      expect(holding('a')).toBeGreaterThanOrEqual(0);
      expect(holding('b')).toBeGreaterThan(holding('a'));
      // A line longer than a whole chunk is cut, so a rolling read still gets past it.
      const cut = lines.find(text => text.includes('[line truncated: 1500025 bytes]'));
      expect(cut?.startsWith(`${cut.slice(0, 24)} ccc`)).toBe(true);
    } finally {
      await executor.stop();
    }
  });

  it('refuses a log chunk over the limits from an executor with a typed error, and keeps its stream', async () => {
    const client = await start();
    const app = uniqueApp('rogue');
    const { groupId, token } = await createGroup(client, app);
    const raw = connect(token, app, 'rogue-1');
    expect(await outcome(raw)).toBe('welcome');
    const jobId = await createJob(client, groupId, 'echo');
    const triggered = client.triggerJob({ jobId });
    const run = await raw.next('runRequest');
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: run.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    const logId = (await triggered).logIds[0]!;

    const answer = async (nth: number, lines: string[]): Promise<void> => {
      const request = await raw.next('logReadRequest', nth);
      raw.send({
        kind: {
          $case: 'reply',
          value: {
            requestId: request.requestId,
            accepted: true,
            rejectReason: RejectReason.REJECT_REASON_UNSPECIFIED,
            message: '',
            logChunk: { fromLine: 1, toLine: lines.length, lines, end: false },
          },
        },
      });
    };
    const tooManyBytes = client.readExecutorLog({ logId, fromLine: 1 });
    await answer(1, ['x'.repeat(MAX_LOG_READ_BYTES), 'y']);
    expect(await refusalOf(tooManyBytes)).toEqual({
      code: Status.UNAVAILABLE,
      details: expect.stringContaining('REJECT_REASON_INVALID') as unknown,
    });
    const tooManyLines = client.readExecutorLog({ logId, fromLine: 1 });
    await answer(
      2,
      Array.from({ length: 1001 }, () => 'z'),
    );
    expect(await refusalOf(tooManyLines)).toMatchObject({ code: Status.UNAVAILABLE });
    // The stream is still up: a chunk within the limits gets through.
    const fine = client.readExecutorLog({ logId, fromLine: 1 });
    await answer(3, ['ok']);
    expect((await fine).lines).toEqual(['ok']);
  });

  const unknownEnums: [string, Partial<JobSpec>, string][] = [
    ['schedule type', { scheduleType: 42 as ScheduleType }, 'spec.schedule_type'],
    ['misfire strategy', { misfireStrategy: 42 as JobSpec['misfireStrategy'] }, 'spec.misfire_strategy'],
    ['route strategy', { routeStrategy: -3 as JobSpec['routeStrategy'] }, 'spec.route_strategy'],
    ['block strategy', { blockStrategy: 42 as JobSpec['blockStrategy'] }, 'spec.block_strategy'],
    ['glue type', { glueType: 42 as JobSpec['glueType'] }, 'spec.glue_type'],
  ];

  it('refuses unknown enum numbers in every request, naming the field', async () => {
    const client = await start();
    const { groupId } = await createGroup(client, uniqueApp('enums'));
    for (const [, fields, field] of unknownEnums) {
      expect(await refusalOf(client.createJob({ spec: jobSpec(groupId, 'echo', fields) }))).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(new RegExp(`^${field}: must be one of `)) as unknown,
      });
    }
    const others: [Promise<unknown>, string][] = [
      [client.listJobs({ triggerStatus: 9 as TriggerStatus }), 'trigger_status'],
      [client.listLogs({ status: 9 as LogStatus }), 'status'],
      [client.nextTriggerTimes({ scheduleType: 9 as ScheduleType, scheduleConf: '60' }), 'schedule_type'],
      [
        client.createExecutorGroup({
          spec: { appName: uniqueApp('e'), title: 't', addressType: 9 as AddressType, addresses: [] },
        }),
        'spec.address_type',
      ],
    ];
    for (const [call, field] of others) {
      expect(await refusalOf(call)).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(new RegExp(`^${field}: must be one of `)) as unknown,
      });
    }
    expect((await client.listJobs({ groupId })).jobs).toEqual([]);
  });

  it('refuses text PostgreSQL cannot store and times outside Timestamp range, naming the field', async () => {
    const client = await start();
    const { groupId } = await createGroup(client, uniqueApp('sanity'));
    expect(
      await refusalOf(client.createJob({ spec: jobSpec(groupId, 'echo', { description: 'a\u0000b' }) })),
    ).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: 'spec.description: must not contain NUL characters',
    });
    expect(await refusalOf(client.listLogs({ triggeredAfter: new Date(Date.UTC(10_000, 0, 1)) }))).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: 'triggered_after: must be a time from 0001-01-01 to 9999-12-31',
    });
    expect(
      await refusalOf(
        client.nextTriggerTimes({
          scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
          scheduleConf: '0 0 * * * ?',
          from: new Date(-62_135_596_800_001),
        }),
      ),
    ).toMatchObject({ code: Status.INVALID_ARGUMENT, details: expect.stringMatching(/^from: /) as unknown });
    const forged = Buffer.from(JSON.stringify({ t: -8.64e15, i: '1' })).toString('base64url');
    expect(await refusalOf(client.listLogs({ pageToken: forged }))).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: 'page_token: is not a page token returned by this API',
    });
    expect((await client.listJobs({ groupId })).jobs).toEqual([]);
  });

  it('refuses a Register the registry cannot store, and bounds what a refusal quotes', async () => {
    const client = await start();
    const app = uniqueApp('reg');
    const { token } = await createGroup(client, app);
    const raw = new RawExecutor(admin!.address, token);
    raws.push(raw);
    raw.register({ appName: app, instanceName: 'nul-1', hostname: 'host\u0000name' });
    expect(await outcome(raw)).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('must not contain NUL characters') as unknown,
    });
    const huge = new RawExecutor(admin!.address, token);
    raws.push(huge);
    huge.register({ appName: '\u20AC'.repeat(30_000), instanceName: 'huge-1' });
    // Quoting the 90 kB name in full made a trailer Node cannot send: the call never ended.
    expect(await outcome(huge)).toEqual({
      code: Status.INVALID_ARGUMENT,
      details: "register.app_name must be 1 to 64 characters of letters, digits, '.', '_', '-'",
    });
    expect((await client.listExecutors({ appName: app })).executors).toEqual([]);
  });

  it('refuses malformed protobuf with INVALID_ARGUMENT: unary, and on the stream before and after Register', async () => {
    const client = await start();
    const app = uniqueApp('wire');
    const { token } = await createGroup(client, app);
    const raw = new grpc.Client(admin!.address, grpc.credentials.createInsecure());
    const identity = (value: Buffer): Buffer => value;
    // Field 1, length-delimited, with a length far beyond the message.
    const junk = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    try {
      const unary = await new Promise<grpc.ServiceError | null>(resolve => {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
        raw.makeUnaryRequest(
          '/jobstream.v1.AdminService/CreateJob',
          identity,
          identity,
          junk,
          metadata,
          error => resolve(error),
        );
      });
      expect(unary).toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(/^malformed message: /) as unknown,
      });
      const register = Buffer.from(
        ExecutorMessage.encode({
          kind: {
            $case: 'register',
            value: {
              appName: app,
              instanceName: 'wire-1',
              hostname: 'h',
              pid: 1,
              sdkName: 'raw',
              sdkVersion: '0',
              handlers: ['echo'],
              capacity: 1,
              labels: {},
              running: [],
              unacknowledgedResults: [],
              protocolVersion: 1,
              pipelineWindow: 0,
              scriptKinds: [],
            },
          },
        }).finish(),
      );
      for (const messages of [[junk], [register, junk]]) {
        const metadata = new grpc.Metadata();
        metadata.set('authorization', `Bearer ${token}`);
        const call = raw.makeBidiStreamRequest(
          '/jobstream.v1.ExecutorService/Connect',
          identity,
          identity,
          metadata,
          {
            deadline: Date.now() + 5_000,
          },
        );
        const received: Buffer[] = [];
        call.on('data', (message: Buffer) => received.push(message));
        call.on('error', () => undefined);
        const status = new Promise<grpc.StatusObject>(resolve => call.on('status', resolve));
        for (const message of messages) call.write(message);
        call.end();
        expect(await status).toMatchObject({
          code: Status.INVALID_ARGUMENT,
          details: expect.stringMatching(/^malformed message: /) as unknown,
        });
        expect(received.map(bytes => AdminMessage.decode(bytes).kind?.$case)).toEqual(
          messages.length === 1 ? [] : ['welcome'],
        );
      }
    } finally {
      raw.close();
    }
    await waitFor(async () =>
      (await client.listExecutors({ appName: app })).executors.length === 0 ? true : undefined,
    );
  });

  it('stores a run result whose times are out of range, without the times', async () => {
    const client = await start();
    const app = uniqueApp('times');
    const { groupId, token } = await createGroup(client, app);
    const raw = connect(token, app, 'times-1');
    expect(await outcome(raw)).toBe('welcome');
    const jobId = await createJob(client, groupId, 'echo');
    const triggered = client.triggerJob({ jobId });
    const run = await raw.next('runRequest');
    raw.send({
      kind: {
        $case: 'reply',
        value: { requestId: run.requestId, accepted: true, rejectReason: 0, message: '' },
      },
    });
    const logId = (await triggered).logIds[0]!;
    raw.send({
      kind: {
        $case: 'runResult',
        value: {
          logId,
          attempt: 1,
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
          message: 'done\u0000',
          startedAt: new Date(-8.64e15),
          finishedAt: new Date(8.64e15),
        },
      },
    });
    expect((await raw.next('resultAck')).results).toEqual([{ logId, attempt: 1 }]);
    const log = await finishedLog(client, logId);
    expect(log).toMatchObject({ status: LogStatus.LOG_STATUS_SUCCEEDED, handleMessage: 'done\uFFFD' });
    expect(log.startedAt).toBeUndefined();
    expect(log.finishedAt).toBeUndefined();
  });
});
