/**
 * A FIFO queue with a fixed capacity between producers and one async consumer.
 *
 * `push` waits while the queue is full, so a slow consumer (a stream whose peer
 * does not read) slows its producers down instead of growing memory without bound.
 */
export class BoundedQueue<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  #closed = false;
  #consumerWake: (() => void) | undefined;
  readonly #producerWakes: (() => void)[] = [];

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#items.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds an item, waiting for room. Rejects when the queue is closed or the signal aborts. */
  async push(item: T, signal?: AbortSignal): Promise<void> {
    while (this.#items.length >= this.#capacity && !this.#closed) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        // A producer that gives up leaves no waker behind: a slot freed later must go to
        // a producer still waiting, not be spent on this one.
        const onAbort = () => {
          const index = this.#producerWakes.indexOf(wake);
          if (index >= 0) this.#producerWakes.splice(index, 1);
          reject(signal?.reason as Error);
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#producerWakes.push(wake);
      });
    }
    if (this.#closed) throw new QueueClosedError();
    this.#items.push(item);
    this.#wakeConsumer();
  }

  /** Adds an item only if there is room; returns whether it was added. */
  tryPush(item: T): boolean {
    if (this.#closed || this.#items.length >= this.#capacity) return false;
    this.#items.push(item);
    this.#wakeConsumer();
    return true;
  }

  /** Ends the queue: the consumer drains what is queued, then stops; waiting producers are rejected. */
  close(): void {
    this.#closed = true;
    this.#wakeConsumer();
    for (const wake of this.#producerWakes.splice(0)) wake();
  }

  async *drain(): AsyncGenerator<T, void, undefined> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        this.#producerWakes.shift()?.();
        yield item;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>(resolve => {
        this.#consumerWake = resolve;
      });
    }
  }

  #wakeConsumer(): void {
    const wake = this.#consumerWake;
    this.#consumerWake = undefined;
    wake?.();
  }
}

export class QueueClosedError extends Error {
  override readonly name = 'QueueClosedError';
  constructor() {
    super('queue closed');
  }
}
