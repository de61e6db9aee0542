/**
 * The outgoing messages of one stream, between producers and the single gRPC writer that
 * consumes them: the admin's per-executor stream and the executor's stream both use it.
 *
 * Nothing here grows without bound: `push` waits while the queue is full (which is how a
 * peer that does not read slows its producers down instead of growing memory), and the
 * "latest" slot holds at most one message that each new offer replaces, for messages
 * where only the newest matters (an executor's beat, its load report).
 */
export class BoundedQueue<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  #latest: T | undefined;
  #state: 'open' | 'ending' | 'closed' = 'open';
  #reader: ((result: IteratorResult<T, undefined>) => void) | undefined;
  readonly #producerWakes: (() => void)[] = [];
  #iterated = false;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.#capacity = capacity;
  }

  /** Messages waiting for the reader (the latest slot included). */
  get size(): number {
    return this.#items.length + (this.#latest === undefined ? 0 : 1);
  }

  /** Whether the queue still takes messages. */
  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /**
   * Adds a message, waiting for room. Rejects with QueueClosedError when the queue is (or
   * gets) closed, or with the signal's reason when it aborts first.
   */
  async push(item: T, signal?: AbortSignal): Promise<void> {
    while (this.#state === 'open' && this.#items.length >= this.#capacity) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        // A producer that gives up leaves no waker behind: a slot freed later must go to
        // a producer still waiting, not be spent on this one.
        const onAbort = (): void => {
          const index = this.#producerWakes.indexOf(wake);
          if (index >= 0) this.#producerWakes.splice(index, 1);
          reject(signal?.reason as Error);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#producerWakes.push(wake);
      });
    }
    if (this.#state !== 'open') throw new QueueClosedError();
    this.#items.push(item);
    this.#wakeReader();
  }

  /**
   * Adds a message only if there is room and no producer is waiting for room (it would
   * overtake them); returns whether it was added.
   */
  tryPush(item: T): boolean {
    if (this.#state !== 'open' || this.#items.length >= this.#capacity || this.#producerWakes.length > 0)
      return false;
    this.#items.push(item);
    this.#wakeReader();
    return true;
  }

  /**
   * Replaces the pending "latest" message, which the reader takes before queued ones:
   * it carries liveness, which must not starve behind replies. False when closed.
   */
  offerLatest(item: T): boolean {
    if (this.#state !== 'open') return false;
    this.#latest = item;
    this.#wakeReader();
    return true;
  }

  /**
   * Stops taking messages; waiting producers are rejected. By default the reader still
   * gets what is queued and then sees the end (a gRPC half-close); with `discardQueued`
   * the queued messages are dropped and the reader sees the end at once.
   */
  close(options: { discardQueued?: boolean } = {}): void {
    if (this.#state === 'closed') return;
    if (!options.discardQueued && this.size > 0) {
      this.#state = 'ending';
    } else {
      this.#state = 'closed';
      this.#items.length = 0;
      this.#latest = undefined;
    }
    for (const wake of this.#producerWakes.splice(0)) wake();
    this.#wakeReader();
  }

  /**
   * Takes up to `maxItems` messages that are waiting now (the latest slot first), without
   * waiting for more. For a reader that has a message already and packs what else is there.
   */
  takeAvailable(maxItems: number): T[] {
    const taken: T[] = [];
    while (taken.length < maxItems) {
      const item = this.#take();
      if (item === undefined) break;
      taken.push(item);
    }
    return taken;
  }

  /**
   * The messages in batches of at most `maxItems`, as an alternative to iterating one at a
   * time (a queue has a single reader either way). After the first message of a batch the
   * reader lets the event loop finish its turn, so what producers add in that turn (a
   * burst of sends) goes out together: one stream write instead of one per message.
   */
  async *batches(maxItems: number): AsyncGenerator<T[], void, undefined> {
    const iterator = this[Symbol.asyncIterator]();
    try {
      for (;;) {
        const first = await iterator.next();
        if (first.done === true) return;
        await new Promise<void>(resolve => setImmediate(resolve));
        yield [first.value, ...this.takeAvailable(maxItems - 1)];
      }
    } finally {
      await iterator.return?.();
    }
  }

  #take(): T | undefined {
    if (this.#latest !== undefined) {
      const item = this.#latest;
      this.#latest = undefined;
      return item;
    }
    const item = this.#items.shift();
    if (item !== undefined) this.#producerWakes.shift()?.();
    return item;
  }

  #wakeReader(): void {
    const reader = this.#reader;
    if (reader === undefined) return;
    const item = this.#take();
    if (item !== undefined) {
      this.#reader = undefined;
      reader({ done: false, value: item });
      return;
    }
    if (this.#state !== 'open') {
      this.#state = 'closed';
      this.#reader = undefined;
      reader({ done: true, value: undefined });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    if (this.#iterated) throw new Error('BoundedQueue supports a single reader');
    this.#iterated = true;
    return {
      next: () =>
        new Promise<IteratorResult<T, undefined>>((resolve, reject) => {
          if (this.#reader !== undefined) {
            reject(new Error('concurrent next() on BoundedQueue'));
            return;
          }
          this.#reader = resolve;
          this.#wakeReader();
        }),
      return: () => {
        this.close({ discardQueued: true });
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}

export class QueueClosedError extends Error {
  override readonly name = 'QueueClosedError';
  constructor() {
    super('queue closed');
  }
}
