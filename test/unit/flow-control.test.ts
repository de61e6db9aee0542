import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../admin/src/util/group-commit.js';
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

  it('takes a Cancellation instead of a signal: an abort before the grant drops the waiter, one after changes nothing', async () => {
    const cancellation = () => {
      const listeners: ((reason: unknown) => void)[] = [];
      const state = {
        aborted: false,
        reason: undefined as unknown,
        onAbort: (listener: (reason: unknown) => void) => void listeners.push(listener),
        abort(reason: unknown) {
          state.aborted = true;
          state.reason = reason;
          for (const listener of listeners) listener(reason);
        },
      };
      return state;
    };
    const permits = new Semaphore(1);
    await permits.acquire();
    const dropped = cancellation();
    const waiting = permits.acquire(dropped);
    const granted = cancellation();
    const next = permits.acquire(granted);
    dropped.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    expect(permits.waiting).toBe(1);
    permits.release();
    await next;
    granted.abort(new Error('too late'));
    expect(permits.waiting).toBe(0);
    permits.release();
    expect(permits.available).toBe(1);
  });
});

describe('GroupCommit (one statement for the items of a batch)', () => {
  it('writes an item alone when idle, and what arrives meanwhile as the next batch', async () => {
    const batches: number[][] = [];
    const commit = new GroupCommit(async (items: number[]) => {
      batches.push(items);
      await new Promise(resolve => setTimeout(resolve, 20));
      return items.map(item => item * 10);
    });
    const first = commit.add(1);
    await new Promise(resolve => setTimeout(resolve, 5));
    const rest = [commit.add(2), commit.add(3)];
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1], [2, 3]]);
  });

  it('writes the items added in one event-loop turn as one batch', async () => {
    const batches: number[][] = [];
    const commit = new GroupCommit((items: number[]) => {
      batches.push(items);
      return Promise.resolve(items.map(item => item * 10));
    });
    // As requests read from one socket reach the batch: one after another, a few promise
    // hops apart, in one turn.
    const added = [1, 2, 3].map(async item => {
      await Promise.resolve();
      await Promise.resolve();
      return commit.add(item);
    });
    expect(await Promise.all(added)).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('with a linger, gathers items spread over that time into one batch', async () => {
    const batches: number[][] = [];
    const commit = new GroupCommit(
      (items: number[]) => {
        batches.push(items);
        return Promise.resolve(items);
      },
      1_000,
      30,
    );
    const added = [commit.add(1)];
    await new Promise(resolve => setTimeout(resolve, 5));
    added.push(commit.add(2));
    await new Promise(resolve => setTimeout(resolve, 5));
    added.push(commit.add(3));
    expect(await Promise.all(added)).toEqual([1, 2, 3]);
    expect(batches).toEqual([[1, 2, 3]]);
  });
});
