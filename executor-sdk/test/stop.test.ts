import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '../src/gen/jobstream/v1/executor.js';
import { RunOutcome } from '../src/gen/jobstream/v1/types.js';
import type { HandlerContext } from '../src/index.js';
import { ExecutorStoppedError } from '../src/index.js';
import { Harness, aborted, gate } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

describe('stop()', () => {
  it('lets running runs finish within the grace period, aborts the rest and flushes results', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin, { shutdownGracePeriodMs: 200 });
    const contexts = new Map<string, HandlerContext>();
    const never = gate();
    let destroyed = 0;
    executor.register(
      'quick',
      async ctx => {
        contexts.set(ctx.logId, ctx);
        await delay(30);
        return 'finished in time';
      },
      { destroy: () => void destroyed++ },
    );
    executor.register('stubborn', async ctx => {
      contexts.set(ctx.logId, ctx);
      await never.promise;
    });
    executor.register('polite', async ctx => {
      contexts.set(ctx.logId, ctx);
      await aborted(ctx.signal);
      throw new Error('gave up');
    });
    await executor.start();
    const session = await admin.session(0);

    await session.run({ logId: '1', handler: 'quick', jobId: '1' });
    await session.run({ logId: '2', handler: 'stubborn', jobId: '2' });
    await session.run({ logId: '3', handler: 'polite', jobId: '3' });
    await session.run({ logId: '4', handler: 'quick', jobId: '1' });
    await session.waitFor(() => (contexts.size === 3 ? true : undefined), 'three runs to start');

    const started = Date.now();
    const stopping = executor.stop();
    expect(executor.state).toBe('stopping');
    expect(executor.stop()).toBe(stopping);
    expect(await session.run({ logId: '5', handler: 'quick', jobId: '5' })).toMatchObject({
      accepted: false,
      rejectReason: RejectReason.REJECT_REASON_SHUTTING_DOWN,
    });
    await stopping;
    const took = Date.now() - started;
    expect(executor.state).toBe('stopped');
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_500);

    const byLog = new Map(session.results().map(r => [r.logId, r]));
    expect(byLog.get('1')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'finished in time',
    });
    expect(byLog.get('2')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SHUTDOWN });
    expect(byLog.get('2')?.message).toMatch(/grace period/);
    expect(byLog.get('3')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SHUTDOWN });
    expect(byLog.get('4')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SHUTDOWN, startedAt: undefined });
    expect(byLog.has('5')).toBe(false);
    expect(contexts.get('3')?.cancelReason).toBe('shutdown');
    expect(contexts.has('4')).toBe(false);
    expect(destroyed).toBe(1);
    await session.waitForClose();
    never.open();
  });

  it('returns quickly when nothing runs, and start() after stop() fails', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    executor.register('echo', () => 'x');
    await executor.start();
    const started = Date.now();
    await executor.stop();
    expect(Date.now() - started).toBeLessThan(500);
    await expect(executor.start()).rejects.toThrow(/stopped/);
  });

  it('makes a pending start() reject when no admin was reachable', async () => {
    const down = await h.admin();
    const address = down.address;
    await down.stop();
    const executor = await h.executor(down, { adminAddresses: [address] });
    executor.register('echo', () => 'x');
    const starting = executor.start();
    await delay(50);
    expect(executor.state).toBe('starting');
    await executor.stop();
    await expect(starting).rejects.toBeInstanceOf(ExecutorStoppedError);
    expect(executor.state).toBe('stopped');
  });

  it('stops an executor that was never started', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    await executor.stop();
    expect(executor.state).toBe('stopped');
  });
});
