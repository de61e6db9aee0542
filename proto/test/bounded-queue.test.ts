import { describe, expect, it } from 'vitest';
import { BoundedQueue, QueueClosedError } from '@jobstream/proto/concurrency';

const tick = (ms = 10) => new Promise(resolve => setTimeout(resolve, ms));

describe('BoundedQueue (the outbound stream buffer of admin and executor)', () => {
  it('makes producers wait while full and releases them as the reader takes messages', async () => {
    const queue = new BoundedQueue<number>(2);
    await queue.push(1);
    await queue.push(2);
    expect(queue.tryPush(3)).toBe(false);
    let thirdPushed = false;
    const third = queue.push(3).then(() => {
      thirdPushed = true;
    });
    await tick();
    expect(thirdPushed).toBe(false);
    expect(queue.size).toBe(2);

    const reader = queue[Symbol.asyncIterator]();
    expect(await reader.next()).toEqual({ done: false, value: 1 });
    await third;
    expect(queue.size).toBe(2);
    queue.close();
    const rest: number[] = [];
    for (let next = await reader.next(); next.done !== true; next = await reader.next()) {
      rest.push(next.value);
    }
    expect(rest).toEqual([2, 3]);
  });

  it('rejects a waiting producer when its signal aborts or the queue closes', async () => {
    const queue = new BoundedQueue<string>(1);
    await queue.push('a');
    const abort = new AbortController();
    const aborted = queue.push('b', abort.signal);
    abort.abort(new Error('deadline'));
    await expect(aborted).rejects.toThrow('deadline');
    const closed = queue.push('c');
    queue.close();
    await expect(closed).rejects.toBeInstanceOf(QueueClosedError);
    expect(queue.tryPush('d')).toBe(false);
    expect(queue.offerLatest('e')).toBe(false);
  });

  it('gives a freed slot to a producer still waiting, not to one that gave up', async () => {
    const queue = new BoundedQueue<string>(1);
    await queue.push('a');
    const abort = new AbortController();
    const gaveUp = queue.push('b', abort.signal);
    let waitingPushed = false;
    const waiting = queue.push('c').then(() => {
      waitingPushed = true;
    });
    abort.abort(new Error('deadline'));
    await expect(gaveUp).rejects.toThrow('deadline');

    const reader = queue[Symbol.asyncIterator]();
    expect((await reader.next()).value).toBe('a');
    // The slot 'a' freed goes to the live producer at once (a queue that keeps the waker of
    // the producer that gave up spends the slot on it, and this one waits until its deadline).
    await Promise.race([waiting, tick(1_000)]);
    expect(waitingPushed).toBe(true);
    expect((await reader.next()).value).toBe('c');
  });

  it('coalesces "latest" messages and hands them to the reader first', async () => {
    const queue = new BoundedQueue<string>(4);
    const reader = queue[Symbol.asyncIterator]();
    await queue.push('reply');
    queue.offerLatest('beat 1');
    queue.offerLatest('beat 2');
    expect(queue.size).toBe(2);
    expect((await reader.next()).value).toBe('beat 2');
    expect((await reader.next()).value).toBe('reply');
    const waiting = reader.next();
    queue.offerLatest('beat 3');
    expect((await waiting).value).toBe('beat 3');
  });

  it('hands over what is queued on close, drops it with discardQueued', async () => {
    const graceful = new BoundedQueue<number>(4);
    const g = graceful[Symbol.asyncIterator]();
    await graceful.push(1);
    graceful.close();
    await expect(graceful.push(2)).rejects.toBeInstanceOf(QueueClosedError);
    expect(await g.next()).toEqual({ done: false, value: 1 });
    expect((await g.next()).done).toBe(true);

    const hard = new BoundedQueue<number>(1);
    const h = hard[Symbol.asyncIterator]();
    await hard.push(1);
    const blocked = hard.push(2);
    hard.close({ discardQueued: true });
    await expect(blocked).rejects.toBeInstanceOf(QueueClosedError);
    expect((await h.next()).done).toBe(true);
  });

  it('refuses a second reader', () => {
    const queue = new BoundedQueue<number>(1);
    queue[Symbol.asyncIterator]();
    expect(() => queue[Symbol.asyncIterator]()).toThrow('single reader');
  });

  it('hands out what producers add in one event-loop turn as one batch, in order, up to the limit', async () => {
    const queue = new BoundedQueue<number>(100);
    const batches = queue.batches(3);
    const first = batches.next();
    // One burst in one turn: the reader wakes on the first and packs the rest with it.
    for (let n = 1; n <= 5; n += 1) void queue.push(n);
    expect(await first).toEqual({ done: false, value: [1, 2, 3] });
    expect(await batches.next()).toEqual({ done: false, value: [4, 5] });

    // Pushed in separate turns after the reader is waiting: each its own batch.
    const third = batches.next();
    void queue.push(6);
    expect(await third).toEqual({ done: false, value: [6] });
    queue.offerLatest(8);
    void queue.push(7);
    expect(await batches.next()).toEqual({ done: false, value: [8, 7] });

    queue.close();
    expect(await batches.next()).toEqual({ done: true, value: undefined });
  });

  it('wakes producers waiting for room as a batch takes their slots', async () => {
    const queue = new BoundedQueue<number>(2);
    await queue.push(1);
    await queue.push(2);
    const waiting = queue.push(3);
    const batches = queue.batches(10);
    // Taking 1 made room for 3 within the same turn, so it joins the batch.
    expect(await batches.next()).toEqual({ done: false, value: [1, 2, 3] });
    await waiting;
    void queue.push(4);
    expect(await batches.next()).toEqual({ done: false, value: [4] });
  });
});
