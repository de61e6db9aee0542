import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import { Harness } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

/**
 * Protocol 3: a run request with a start_at ahead is held and decided at that time, as if
 * it had arrived then (see docs/protocol.md, "Requests sent ahead").
 */
describe('run requests with start_at', () => {
  it('answers and starts a request at its start_at, not on arrival', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    const starts = new Map<string, number>();
    executor.register('echo', ctx => {
      starts.set(ctx.logId, Date.now());
      return 'started';
    });
    await executor.start();
    const session = await admin.session(0);
    const startAt = new Date(Date.now() + 300);
    const sentAt = Date.now();
    const reply = await session.run({ logId: '1', startAt, sentAt: new Date() });
    const repliedAt = Date.now();
    expect(reply.accepted).toBe(true);
    // The clock samples can only make it later (the fake admin shares this clock).
    expect(repliedAt).toBeGreaterThanOrEqual(startAt.getTime());
    expect(repliedAt - sentAt).toBeGreaterThanOrEqual(290);
    expect(starts.get('1')).toBeGreaterThanOrEqual(startAt.getTime());
    expect((await session.waitForResult('1')).outcome).toBe(RunOutcome.RUN_OUTCOME_SUCCEEDED);
  });

  it('decides a held request at once when a kill names its log: accepted, then KILLED, its handler never left running', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    executor.register('echo', async ctx => {
      await delay(60_000, undefined, { signal: ctx.signal });
      return 'should not finish';
    });
    await executor.start();
    const session = await admin.session(0);
    const held = session.run({ logId: '7', startAt: new Date(Date.now() + 60_000) });
    await delay(50);
    expect(session.ofKind('reply')).toEqual([]);
    const killed = await session.request({ $case: 'killRequest', value: { logId: '7', reason: 'test' } });
    expect(killed.accepted).toBe(true);
    expect((await held).accepted).toBe(true);
    expect((await session.waitForResult('7')).outcome).toBe(RunOutcome.RUN_OUTCOME_KILLED);
  });

  it('refuses what it holds when it stops, and never starts it', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    let started = 0;
    executor.register('echo', () => {
      started += 1;
      return 'ran';
    });
    await executor.start();
    const session = await admin.session(0);
    const held = session.run({ logId: '9', startAt: new Date(Date.now() + 60_000) });
    await delay(50);
    const stopping = executor.stop();
    const reply = await held;
    expect(reply).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_SHUTTING_DOWN });
    await stopping;
    expect(started).toBe(0);
  });
});
