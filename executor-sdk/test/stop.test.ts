import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import type { HandlerContext } from '../src/index.js';
import { ExecutorStoppedError } from '../src/index.js';
import { EVENT_CEILING_MS } from '../../test/support/ceiling.js';
import { Harness, aborted, gate } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

describe('stop()', () => {
  it('lets running runs finish within the grace period, aborts the rest and flushes results', async () => {
    const admin = await h.admin();
    // Results are checked after stop(), so stop() must wait for their acknowledgements.
    const executor = await h.executor(admin, {
      shutdownGracePeriodMs: 200,
      resultFlushTimeoutMs: EVENT_CEILING_MS,
    });
    const contexts = new Map<string, HandlerContext>();
    const started = new Map(['1', '2', '3'].map(logId => [logId, gate()]));
    const onStart = (ctx: HandlerContext): void => {
      contexts.set(ctx.logId, ctx);
      started.get(ctx.logId)?.open();
    };
    // The quick run ends when the test says so, after stop() began: if it ended on a timer
    // of its own, a slow test could see it end (and log 4 start behind it) before stop().
    const finishQuick = gate();
    const never = gate();
    let destroyed = 0;
    executor.register(
      'quick',
      async ctx => {
        onStart(ctx);
        await finishQuick.promise;
        return 'finished in time';
      },
      { destroy: () => void destroyed++ },
    );
    executor.register('stubborn', async ctx => {
      onStart(ctx);
      await never.promise;
    });
    executor.register('polite', async ctx => {
      onStart(ctx);
      await aborted(ctx.signal);
      throw new Error('gave up');
    });
    await executor.start();
    const session = await admin.session(0);

    await session.run({ logId: '1', handler: 'quick', jobId: '1' });
    await session.run({ logId: '2', handler: 'stubborn', jobId: '2' });
    await session.run({ logId: '3', handler: 'polite', jobId: '3' });
    // Serial behind log 1 on job 1: queued until log 1 ends, which is after stop() began.
    await session.run({ logId: '4', handler: 'quick', jobId: '1' });
    await Promise.all([...started.values()].map(g => g.promise));

    const stopBegan = Date.now();
    const stopping = executor.stop();
    expect(executor.state).toBe('stopping');
    expect(executor.stop()).toBe(stopping);
    finishQuick.open();
    expect(await session.run({ logId: '5', handler: 'quick', jobId: '5' })).toMatchObject({
      accepted: false,
      rejectReason: RejectReason.REJECT_REASON_SHUTTING_DOWN,
    });
    // Resolves although the stubborn run never settles: the grace period bounds the wait.
    await stopping;
    expect(executor.state).toBe('stopped');
    // The stubborn run kept stop() waiting for the whole grace period.
    expect(Date.now() - stopBegan).toBeGreaterThanOrEqual(190);

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
    // A grace period far longer than any stop() takes: waiting for it would show.
    const graceMs = EVENT_CEILING_MS;
    const executor = await h.executor(admin, { shutdownGracePeriodMs: graceMs });
    executor.register('echo', () => 'x');
    await executor.start();
    const started = Date.now();
    await executor.stop();
    expect(Date.now() - started).toBeLessThan(graceMs);
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
