import { mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogChunk } from '@jobstream/proto/executor';
import { RejectReason } from '@jobstream/proto/executor';
import { silentLogger } from '../src/index.js';
import { MAX_LOG_READ_LINES, RunLogStore } from '../src/run-log.js';
import { EVENT_CEILING_MS } from '../../test/support/ceiling.js';
import type { FakeSession } from './support/fake-admin.js';
import { Harness, gate } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

async function read(
  session: FakeSession,
  logId: string,
  fromLine: number,
  maxLines: number,
): Promise<LogChunk> {
  const reply = await session.request({ $case: 'logReadRequest', value: { logId, fromLine, maxLines } });
  expect(reply.accepted).toBe(true);
  return reply.logChunk!;
}

/** Rolling-reads until `done` holds; the writer flushes asynchronously, so lines appear a moment later. */
async function readUntil(
  session: FakeSession,
  logId: string,
  fromLine: number,
  maxLines: number,
  done: (chunk: LogChunk) => boolean,
): Promise<LogChunk> {
  const deadline = Date.now() + EVENT_CEILING_MS;
  for (;;) {
    const chunk = await read(session, logId, fromLine, maxLines);
    if (done(chunk) || Date.now() > deadline) return chunk;
    await new Promise(resolve => setTimeout(resolve, 5));
  }
}

describe('run logs over LogReadRequest', () => {
  it('serves ctx.log lines by rolling reads and marks the end once the run finished', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    const finish = gate();
    executor.register('chatty', async ctx => {
      for (let i = 1; i <= 5; i++) ctx.log('line', i);
      ctx.log('multi\nline');
      await finish.promise;
      ctx.log({ done: true });
      return 'ok';
    });
    await executor.start();
    const session = await admin.session(0);
    await session.run({ logId: '42', handler: 'chatty' });

    // 1 start line + 5 + 2 (the multi-line message is two lines).
    const head = await readUntil(session, '42', 1, 3, c => c.toLine === 3);
    expect(head).toMatchObject({ fromLine: 1, toLine: 3, end: false });
    expect(head.lines[0]).toMatch(STAMP);
    expect(head.lines[0]).toContain('[jobstream] run started: handler=chatty job=1 log=42 attempt=1');
    expect(head.lines.slice(1).map(l => l.replace(STAMP, ''))).toEqual(['line 1', 'line 2']);

    const rest = await readUntil(session, '42', 4, 100, c => c.toLine >= 8);
    expect(rest).toMatchObject({ fromLine: 4, toLine: 8, end: false });
    expect(rest.lines.map(l => l.replace(STAMP, ''))).toEqual([
      'line 3',
      'line 4',
      'line 5',
      'multi',
      'line',
    ]);

    finish.open();
    await session.waitForResult('42');
    const tail = await readUntil(session, '42', 9, 100, c => c.end);
    expect(tail.end).toBe(true);
    expect(tail.lines.map(l => l.replace(STAMP, ''))).toEqual([
      '{ done: true }',
      expect.stringMatching(/^\[jobstream\] run ended: SUCCEEDED after \d+ ms: ok$/) as string,
    ]);

    expect(await read(session, '42', 100, 10)).toEqual({ fromLine: 100, toLine: 99, lines: [], end: true });
    // Line numbers start at 1; 0 is read as 1.
    expect((await read(session, '42', 0, 1)).fromLine).toBe(1);

    const unknown = await session.request({
      $case: 'logReadRequest',
      value: { logId: '404', fromLine: 1, maxLines: 10 },
    });
    expect(unknown).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_UNKNOWN_RUN });
  });
});

describe('quiet runs (no line of their own)', () => {
  it('writes no file for a run whose handler logs nothing, yet serves its start and end lines', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    const finish = gate();
    executor.register('quiet', () => 'fine');
    executor.register('slow-quiet', async () => {
      await finish.promise;
      return 'late';
    });
    executor.register('talks', ctx => {
      ctx.log('hello');
      return 'said';
    });
    await executor.start();
    const session = await admin.session(0);
    const logsDir = path.join(executor.dataDir, 'logs');

    await session.run({ logId: '51', handler: 'quiet' });
    await session.run({ logId: '52', handler: 'talks', jobId: '2' });
    await session.waitForResult('51');
    await session.waitForResult('52');
    const quiet = await read(session, '51', 1, 10);
    expect(quiet.end).toBe(true);
    expect(quiet.lines.map(l => l.replace(STAMP, ''))).toEqual([
      '[jobstream] run started: handler=quiet job=1 log=51 attempt=1 shard=0/1',
      expect.stringMatching(/^\[jobstream\] run ended: SUCCEEDED after \d+ ms: fine$/) as string,
    ]);
    expect((await read(session, '51', 2, 10)).lines).toHaveLength(1);
    await expect
      .poll(async () => (await readdir(logsDir)).sort(), { timeout: EVENT_CEILING_MS })
      .toEqual(['52.log']);

    // Read while it runs: from then on it is written like any log.
    await session.run({ logId: '53', handler: 'slow-quiet', jobId: '3' });
    const running = await readUntil(session, '53', 1, 10, c => c.lines.length === 1);
    expect(running.end).toBe(false);
    finish.open();
    await session.waitForResult('53');
    const ended = await readUntil(session, '53', 1, 10, c => c.end);
    expect(ended.lines).toHaveLength(2);
    expect((await readdir(logsDir)).sort()).toEqual(['52.log', '53.log']);
  });
});

describe('RunLogStore', () => {
  let dir: string;
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function store(): Promise<RunLogStore> {
    dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-runlog-'));
    const s = new RunLogStore(dir, silentLogger);
    await s.init();
    return s;
  }

  it('keeps at least the newest 10,000 quiet logs readable, and no file for any', async () => {
    const s = await store();
    const count = 25_000;
    for (let id = 1; id <= count; id += 1) {
      const writer = s.open(String(id));
      writer.note(`run ${id} started`);
      writer.note(`run ${id} ended`);
      await writer.close();
    }
    for (const id of [count, count - 5_000, count - 9_999]) {
      const slice = await s.read(String(id), 1, 10);
      expect(slice?.lines.map(line => line.replace(/^\S+ /, ''))).toEqual([
        `run ${id} started`,
        `run ${id} ended`,
      ]);
    }
    expect(await s.read('1', 1, 10)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('reads large logs in capped pages from any line', async () => {
    const s = await store();
    const lines = Array.from({ length: 2_500 }, (_, i) => `2024-01-01T00:00:00.000Z line ${i + 1} ü`);
    await writeFile(path.join(dir, '7.log'), lines.join('\n') + '\n');

    const first = await s.read('7', 1, 5_000);
    expect(first?.lines).toHaveLength(MAX_LOG_READ_LINES);
    expect(first).toMatchObject({ fromLine: 1, toLine: 1_000, more: true });

    const middle = await s.read('7', 1_999, 3);
    expect(middle?.lines).toEqual(lines.slice(1_998, 2_001));
    // Served again from the index checkpoints.
    expect((await s.read('7', 1_001, 2))?.lines).toEqual(lines.slice(1_000, 1_002));

    const last = await s.read('7', 2_400, 1_000);
    expect(last).toMatchObject({ fromLine: 2_400, toLine: 2_500, more: false });
    expect(last?.lines.at(-1)).toBe(lines.at(-1));
  });

  it('returns an unterminated last line only once the log is no longer written', async () => {
    const s = await store();
    await writeFile(path.join(dir, '8.log'), 'a\nb\npartial');
    expect((await s.read('8', 1, 10))?.lines).toEqual(['a', 'b', 'partial']);

    const writer = s.open('8');
    const active = await s.read('8', 3, 10);
    expect(active).toMatchObject({ lines: [], toLine: 2, more: true });
    await writer.close();
  });

  it("shows a running log's lines to readers at once and writes them to its file soon after", async () => {
    const s = await store();
    const writer = s.open('21');
    writer.line('first');
    writer.line('second\nthird');
    expect((await s.read('21', 1, 10))?.lines.map(stripStamp)).toEqual(['first', 'second', 'third']);

    writer.line('fourth');
    // Not read by anyone: the background flush still puts it in the file while the run goes on.
    await expect
      .poll(async () => (await readFile(path.join(dir, '21.log'), 'utf8')).includes(' fourth\n'), {
        timeout: EVENT_CEILING_MS,
      })
      .toBe(true);
    expect(s.isActive('21')).toBe(true);
    await writer.close();
    expect(s.isActive('21')).toBe(false);
  });

  it('writes every log of a burst of short runs by the time each close resolves', async () => {
    const s = await store();
    const closes = Array.from({ length: 3_000 }, (_, i) => {
      const writer = s.open(String(1_000 + i));
      writer.line(`run ${i} started`);
      writer.line(`run ${i} ended`);
      return writer.close();
    });
    await Promise.all(closes);
    const names = await readdir(dir);
    expect(names).toHaveLength(3_000);
    const sample = await readFile(path.join(dir, '3999.log'), 'utf8');
    expect(sample.split('\n').filter(Boolean).map(stripStamp)).toEqual([
      'run 2999 started',
      'run 2999 ended',
    ]);
    for (let i = 0; i < 3_000; i++) expect(s.isActive(String(1_000 + i))).toBe(false);
  });

  it('keeps notes for a log that has no writer in memory, and flushes everything on close', async () => {
    const s = await store();
    await s.append('31', ['dropped before it started']);
    const writer = s.open('32');
    writer.line('still running at stop');
    s.close();
    // Notes only (the SDK's own lines): served from memory, no file.
    expect((await s.read('31', 1, 10))?.lines.map(stripStamp)).toEqual(['dropped before it started']);
    expect(await readdir(dir)).toEqual(['32.log']);
    expect(stripStamp((await readFile(path.join(dir, '32.log'), 'utf8')).trim())).toBe(
      'still running at stop',
    );
    await writer.close();
  });

  it('never maps a log id that is not an integer to a file', async () => {
    const s = await store();
    expect(s.fileOf('../results.spool')).toBeUndefined();
    expect(s.fileOf('12/../../x')).toBeUndefined();
    expect(s.fileOf('-12')).toBe(path.join(dir, '-12.log'));
    expect(await s.read('../x', 1, 10)).toBeUndefined();
  });

  it('deletes logs older than the cutoff, keeping active ones', async () => {
    const s = await store();
    const old = new Date(Date.now() - 40 * 24 * 3600 * 1000);
    for (const id of ['1', '2', '3']) await writeFile(path.join(dir, `${id}.log`), 'x\n');
    await utimes(path.join(dir, '1.log'), old, old);
    await utimes(path.join(dir, '2.log'), old, old);
    const writer = s.open('2');
    expect(await s.deleteOlderThan(new Date(Date.now() - 30 * 24 * 3600 * 1000))).toBe(1);
    await writer.close();
    expect((await readdir(dir)).sort()).toEqual(['2.log', '3.log']);
  });
});

/** A log line without its ISO-8601 timestamp prefix. */
function stripStamp(line: string): string {
  return line.replace(STAMP, '');
}
