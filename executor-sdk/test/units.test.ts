import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fullJitterDelay } from '../src/backoff.js';
import type { RunResult } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import { Executor, SDK_VERSION, createJsonLogger, defaultInstanceName, silentLogger } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { ResultSpool, SPOOL_FILE_NAME, SPOOL_WRITE_DELAY_MS } from '../src/result-spool.js';

describe('ResultSpool', () => {
  let dir: string;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const result = (logId: string, attempt = 1): RunResult => ({
    logId,
    attempt,
    outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
    message: `done ${logId}`,
    startedAt: new Date('2024-05-01T10:00:00.000Z'),
    finishedAt: new Date('2024-05-01T10:00:01.500Z'),
  });

  it('persists results until acknowledged, across reopening', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const spool = await ResultSpool.open(dir, silentLogger);
    const adding = spool.add(result('1'));
    expect(spool.has('1', 1)).toBe(true);
    expect(spool.durableResults()).toEqual([]);
    await adding;
    expect(spool.durableResults()).toEqual([result('1')]);
    await spool.add(result('2', 3));
    expect(
      await spool.ack([
        { logId: '1', attempt: 1 },
        { logId: '99', attempt: 1 },
      ]),
    ).toBe(1);
    await spool.close();

    const reopened = await ResultSpool.open(dir, silentLogger);
    expect(reopened.refs()).toEqual([{ logId: '2', attempt: 3 }]);
    expect(reopened.durableResults()).toEqual([result('2', 3)]);
    await reopened.close();
  });

  it('offers a result for sending at once, and never writes one acknowledged before its write', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const spool = await ResultSpool.open(dir, silentLogger);
    const first = spool.add(result('1'));
    // Pending (to re-send on a new stream) before it is durable.
    expect(spool.pendingResults()).toEqual([result('1')]);
    expect(spool.durableResults()).toEqual([]);
    // The admin acknowledged it before the group write ran: it is dropped, not written.
    expect(await spool.ack([{ logId: '1', attempt: 1 }])).toBe(1);
    await first;
    await spool.add(result('2'));
    await spool.close();
    const lines = (await readFile(path.join(dir, SPOOL_FILE_NAME), 'utf8')).trim().split('\n');
    expect(lines.map(line => (JSON.parse(line) as { logId: string }).logId)).toEqual(['2']);
  });

  it('writes only results that waited their delay: a younger one acknowledged in time is never written', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const spool = await ResultSpool.open(dir, silentLogger);
    // The spool's clock only: the file operations stay real.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const older = spool.add(result('1'));
      await vi.advanceTimersByTimeAsync(SPOOL_WRITE_DELAY_MS - 10);
      const younger = spool.add(result('2'));
      await vi.advanceTimersByTimeAsync(10);
      await older;
      // The older result's write has run; the younger one, 10 ms old, still waits for its own.
      expect(spool.durableResults()).toEqual([result('1')]);
      expect(await spool.ack([{ logId: '2', attempt: 1 }])).toBe(1);
      await vi.advanceTimersByTimeAsync(SPOOL_WRITE_DELAY_MS);
      await younger;
    } finally {
      vi.useRealTimers();
    }
    await spool.close();
    const lines = (await readFile(path.join(dir, SPOOL_FILE_NAME), 'utf8')).trim().split('\n');
    const written = lines
      .map(line => JSON.parse(line) as { t: string; logId: string })
      .filter(line => line.t === 'result');
    expect(written.map(line => line.logId)).toEqual(['1']);
  });

  it('writes a result the admin has not acknowledged at once when the spool closes', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const spool = await ResultSpool.open(dir, silentLogger);
    void spool.add(result('7'));
    // Closed within the write delay (a stopping executor): the result still reaches the file.
    await spool.close();
    const reopened = await ResultSpool.open(dir, silentLogger);
    expect(reopened.durableResults()).toEqual([result('7')]);
    await reopened.close();
  });

  it('compacts the file once acknowledged lines dominate', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const spool = await ResultSpool.open(dir, silentLogger);
    for (let i = 0; i < 100; i++) await spool.add(result(String(i)));
    const empty = spool.whenEmpty();
    await spool.ack(Array.from({ length: 99 }, (_, i) => ({ logId: String(i), attempt: 1 })));
    const text = await readFile(path.join(dir, SPOOL_FILE_NAME), 'utf8');
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(text).toContain('"logId":"99"');
    await spool.ack([{ logId: '99', attempt: 1 }]);
    await empty;
    await spool.close();
  });

  it('skips a torn last line left by a crash', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-spool-'));
    const good = JSON.stringify({
      t: 'result',
      logId: '5',
      attempt: 1,
      outcome: 2,
      message: 'bad',
      startedAt: null,
      finishedAt: '2024-05-01T10:00:00.000Z',
    });
    await writeFile(path.join(dir, SPOOL_FILE_NAME), `${good}\n{"t":"result","logId":"6","att`);
    const spool = await ResultSpool.open(dir, silentLogger);
    expect(spool.durableResults()).toEqual([
      {
        logId: '5',
        attempt: 1,
        outcome: RunOutcome.RUN_OUTCOME_FAILED,
        message: 'bad',
        startedAt: undefined,
        finishedAt: new Date('2024-05-01T10:00:00.000Z'),
      },
    ]);
    await spool.close();
  });
});

describe('options', () => {
  it('throws one TypeError listing every problem', () => {
    let error: unknown;
    try {
      new Executor({
        adminAddresses: ['no-port', 'host:99999'],
        appName: '',
        accessToken: 'has space',
        instanceName: 'bad name!',
        capacity: 0,
        pipelineWindow: -1,
        shutdownGracePeriodMs: -1,
        logger: {} as never,
        surprise: true,
      } as never);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TypeError);
    const message = (error as TypeError).message;
    for (const fragment of [
      'unknown option "surprise"',
      '"no-port" is not a "host:port" address',
      '"host:99999" is not a "host:port" address',
      'appName',
      'accessToken',
      'instanceName',
      'capacity',
      'pipelineWindow',
      'shutdownGracePeriodMs',
      'logger',
    ]) {
      expect(message).toContain(fragment);
    }
  });

  it('fills in defaults', () => {
    const o = resolveOptions({ adminAddresses: 'a:1, [::1]:2', appName: 'app', accessToken: 't' });
    expect(o.adminAddresses).toEqual(['a:1', '[::1]:2']);
    expect(o.capacity).toBe(16);
    expect(o.pipelineWindow).toBe(1_000);
    expect(o.shutdownGracePeriodMs).toBe(10_000);
    expect(o.logRetentionDays).toBe(30);
    expect(o.instanceName).toBe(defaultInstanceName());
    expect(o.channelOptions).toMatchObject({
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    expect(path.isAbsolute(o.dataDir)).toBe(true);
    expect(defaultInstanceName('my host_1.local')).toBe('my-host_1.local');
  });

  it('validates handler registrations', () => {
    const executor = new Executor({
      adminAddresses: ['a:1'],
      appName: 'app',
      accessToken: 't',
      logger: silentLogger,
    });
    executor.register('ok', () => undefined);
    expect(() => executor.register('ok', () => undefined)).toThrow(/already registered/);
    expect(() => executor.register('has space', () => undefined)).toThrow(TypeError);
    expect(() => executor.register('x', 'nope' as never)).toThrow(/must be a function/);
  });
});

describe('misc', () => {
  it('reports the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(SDK_VERSION).toBe(pkg.version);
  });

  it('keeps full-jitter backoff within the exponential cap', () => {
    expect(fullJitterDelay(0, 200, 10_000, () => 0.999)).toBe(199);
    expect(fullJitterDelay(3, 200, 10_000, () => 0.5)).toBe(800);
    expect(fullJitterDelay(50, 200, 10_000, () => 0.999)).toBe(9_990);
  });

  it('writes JSON lines with flattened errors', () => {
    const lines: string[] = [];
    const logger = createJsonLogger('warn', line => lines.push(line));
    logger.info({ a: 1 }, 'dropped');
    logger.error({ err: new Error('bad') }, 'failed');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 'error',
      msg: 'failed',
      err: { message: 'bad' },
    });
  });
});
