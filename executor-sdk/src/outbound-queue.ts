/**
 * The executor's outgoing messages for one stream, consumed by the gRPC writer.
 *
 * Nothing here grows without bound: ordinary messages wait for room (which is how a
 * slow stream pushes back on the code reading admin requests), and the "latest" slot
 * holds at most one message that each new offer replaces — beats, where only the
 * newest load report matters. Results do not need a slot of their own: they live in
 * the spool and are re-sent after every reconnect.
 */
export class OutboundQueue<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  #latest: T | undefined;
  #state: 'open' | 'ending' | 'closed' = 'open';
  #reader: ((result: IteratorResult<T, undefined>) => void) | undefined;
  readonly #spaceWaiters: (() => void)[] = [];
  #iterated = false;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.#capacity = capacity;
  }

  /** Messages waiting to be written (the latest slot included). */
  get size(): number {
    return this.#items.length + (this.#latest === undefined ? 0 : 1);
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /**
   * Queues a message, waiting while the queue is full. Resolves true once queued,
   * false when the queue was (or got) closed and the message was dropped.
   */
  async push(item: T): Promise<boolean> {
    while (this.#state === 'open' && this.#items.length >= this.#capacity) {
      await new Promise<void>(resolve => this.#spaceWaiters.push(resolve));
    }
    if (this.#state !== 'open') return false;
    this.#items.push(item);
    this.#wakeReader();
    return true;
  }

  /** Replaces the pending "latest" message. Returns false when the queue is closed. */
  offerLatest(item: T): boolean {
    if (this.#state !== 'open') return false;
    this.#latest = item;
    this.#wakeReader();
    return true;
  }

  /**
   * Stops taking messages. With `drain`, the reader still gets what is queued and then
   * sees the end (a gRPC half-close); without, queued messages are dropped at once.
   */
  close(options: { drain?: boolean } = {}): void {
    if (this.#state === 'closed') return;
    if (options.drain && this.size > 0) {
      this.#state = 'ending';
    } else {
      this.#state = 'closed';
      this.#items.length = 0;
      this.#latest = undefined;
    }
    for (const wake of this.#spaceWaiters.splice(0)) wake();
    this.#wakeReader();
  }

  #take(): T | undefined {
    // The latest slot goes first: it carries liveness, which must not starve behind replies.
    if (this.#latest !== undefined) {
      const item = this.#latest;
      this.#latest = undefined;
      return item;
    }
    const item = this.#items.shift();
    if (item !== undefined) this.#spaceWaiters.shift()?.();
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
    if (this.#iterated) throw new Error('OutboundQueue supports a single reader');
    this.#iterated = true;
    return {
      next: () =>
        new Promise<IteratorResult<T, undefined>>(resolve => {
          if (this.#reader !== undefined) throw new Error('concurrent next() on OutboundQueue');
          this.#reader = resolve;
          this.#wakeReader();
        }),
      return: () => {
        this.close();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
