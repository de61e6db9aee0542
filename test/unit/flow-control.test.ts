import { describe, expect, it } from 'vitest';
import { BoundedQueue, QueueClosedError } from '../../admin/src/util/bounded-queue.js';
import { Semaphore } from '../../admin/src/util/semaphore.js';

describe('BoundedQueue (the admin outbound stream buffer)', () => {
  it('makes producers wait while full and releases them as the consumer drains', async () => {
    const queue = new BoundedQueue<number>(2);
    await queue.push(1);
    await queue.push(2);
    expect(queue.tryPush(3)).toBe(false);
    let thirdPushed = false;
    const third = queue.push(3).then(() => {
      thirdPushed = true;
    });
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(thirdPushed).toBe(false);
    expect(queue.size).toBe(2);

    const consumer = queue.drain();
    expect((await consumer.next()).value).toBe(1);
    await third;
    expect(queue.size).toBe(2);
    queue.close();
    const rest: number[] = [];
    for await (const item of consumer) rest.push(item);
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

    const consumer = queue.drain();
    expect((await consumer.next()).value).toBe('a');
    // The slot 'a' freed goes to the live producer at once (it used to wake the one that
    // gave up, leaving this one waiting for a slot that would never be announced).
    await Promise.race([waiting, new Promise(resolve => setTimeout(resolve, 1_000))]);
    expect(waitingPushed).toBe(true);
    expect((await consumer.next()).value).toBe('c');
  });
});

describe('Semaphore (run permits per executor capacity)', () => {
  it('grants at most its permits and hands a released permit to the next waiter', async () => {
    const permits = new Semaphore(1);
    await permits.acquire();
    let second = false;
    const waiting = permits.acquire().then(() => {
      second = true;
    });
    await new Promise(resolve => setTimeout(resolve, 10));
    expect(second).toBe(false);
    permits.release();
    await waiting;
    expect(second).toBe(true);
    expect(permits.available).toBe(0);
  });

  it('drops a waiter whose signal aborts without losing a permit', async () => {
    const permits = new Semaphore(1);
    await permits.acquire();
    const abort = new AbortController();
    const waiting = permits.acquire(abort.signal);
    abort.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    permits.release();
    expect(permits.available).toBe(1);
  });
});
