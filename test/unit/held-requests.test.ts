import { describe, expect, it } from 'vitest';
import { HeldRequests } from '../../executor-sdk/src/held-requests.js';

describe('HeldRequests (run requests held until their start_at)', () => {
  it('hands items back at their time, in time order and in arrival order among equal times, never early', async () => {
    const handed: { item: string; at: number; handedAt: number }[] = [];
    const times = new Map<string, number>();
    const held = new HeldRequests<string>(items => {
      for (const item of items) handed.push({ item, at: times.get(item)!, handedAt: Date.now() });
    });
    const base = Date.now() + 30;
    const plan: [string, number][] = [
      ['c', base + 20],
      ['a', base],
      ['b1', base + 10],
      ['b2', base + 10],
    ];
    for (const [item, at] of plan) {
      times.set(item, at);
      held.hold(item, at);
    }
    expect(held.size).toBe(4);
    await new Promise(resolve => setTimeout(resolve, 90));
    expect(handed.map(entry => entry.item)).toEqual(['a', 'b1', 'b2', 'c']);
    for (const entry of handed) expect(entry.handedAt).toBeGreaterThanOrEqual(entry.at);
    expect(held.size).toBe(0);
  });

  it('takes out the items a kill names, and gives everything back at once on clear', async () => {
    const handed: string[] = [];
    const held = new HeldRequests<string>(items => handed.push(...items));
    const at = Date.now() + 40;
    held.hold('log-1', at);
    held.hold('log-2', at);
    held.hold('log-1', at + 5);
    expect(held.take(item => item === 'log-1')).toEqual(['log-1', 'log-1']);
    expect(held.clear()).toEqual(['log-2']);
    await new Promise(resolve => setTimeout(resolve, 70));
    // Nothing left to hand back when its time came.
    expect(handed).toEqual([]);
  });
});
