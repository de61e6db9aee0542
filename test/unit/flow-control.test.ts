import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../admin/src/util/semaphore.js';

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
