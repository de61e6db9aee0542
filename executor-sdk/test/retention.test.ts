import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EVENT_CEILING_MS } from '../../test/support/ceiling.js';
import { Harness } from './support/harness.js';

const h = new Harness();
afterEach(async () => {
  vi.restoreAllMocks();
  await h.cleanup();
});

const DAY_MS = 24 * 3600 * 1000;

/** A run log file last written `ageDays` ago, where the executor keeps them (`<dataDir>/logs`). */
async function runLog(dataDir: string, logId: string, ageDays: number): Promise<void> {
  const dir = path.join(dataDir, 'logs');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${logId}.log`);
  await writeFile(file, `line of run ${logId}\n`);
  const at = new Date(Date.now() - ageDays * DAY_MS);
  await utimes(file, at, at);
}

async function logsIn(dataDir: string): Promise<string[]> {
  return (await readdir(path.join(dataDir, 'logs'))).sort();
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + EVENT_CEILING_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** The callback the executor scheduled with setInterval every `ms`, if any. */
function intervalCallback(spy: { mock: { calls: unknown[][] } }, ms: number): (() => void) | undefined {
  const call = spy.mock.calls.find(args => args[1] === ms);
  return call?.[0] as (() => void) | undefined;
}

describe('run log retention', () => {
  it('deletes run logs older than logRetentionDays at start, then once a day', async () => {
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const admin = await h.admin();
    const dataDir = await h.tempDir();
    await runLog(dataDir, '1', 5);
    await runLog(dataDir, '2', 1);
    await runLog(dataDir, '3', 0);
    const executor = await h.executor(admin, { dataDir, logRetentionDays: 2 });
    executor.register('noop', () => undefined);
    await executor.start();

    await until(async () => !(await logsIn(dataDir)).includes('1.log'), 'the old log to be deleted at start');
    expect(await logsIn(dataDir)).toEqual(['2.log', '3.log']);

    // The daily sweep: timers are not faked (that would also run the beat and lag
    // timers a day's worth of times); its callback is called instead.
    const sweep = intervalCallback(setIntervalSpy, DAY_MS);
    expect(sweep).toBeTypeOf('function');
    await runLog(dataDir, '4', 3);
    sweep!();
    await until(async () => !(await logsIn(dataDir)).includes('4.log'), 'the daily sweep');
    expect(await logsIn(dataDir)).toEqual(['2.log', '3.log']);
  });

  it('keeps every run log when logRetentionDays is 0', async () => {
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const admin = await h.admin();
    const dataDir = await h.tempDir();
    await runLog(dataDir, '1', 400);
    const executor = await h.executor(admin, { dataDir, logRetentionDays: 0 });
    executor.register('noop', () => undefined);
    await executor.start();
    await delay(100);
    expect(await logsIn(dataDir)).toEqual(['1.log']);
    expect(intervalCallback(setIntervalSpy, DAY_MS)).toBeUndefined();
  });
});
