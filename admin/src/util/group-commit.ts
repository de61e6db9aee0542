/**
 * Group commit for writes: items added while a batch is being written form the next
 * batch, so under load one statement (and one WAL fsync) carries many items, and when
 * idle an item is written at the end of the event-loop turn it was added in. Each `add`
 * resolves with its own item's result once its batch committed, or rejects with the
 * batch's error.
 */
export class GroupCommit<T, R> {
  readonly #write: (items: T[]) => Promise<R[]>;
  readonly #maxBatch: number;
  readonly #lingerMs: number;
  #pending: { item: T; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  /** Whether a batch is being written, or about to start. */
  #writing = false;

  /**
   * `write` returns one result per item, in order. With `lingerMs`, an item arriving when
   * nothing is being written waits that long for others before its batch is written: load
   * spread evenly over time (a fire every millisecond) otherwise makes every batch a batch
   * of one. For writes off the latency-critical path only.
   */
  constructor(write: (items: T[]) => Promise<R[]>, maxBatch = 1_000, lingerMs = 0) {
    this.#write = write;
    this.#maxBatch = maxBatch;
    this.#lingerMs = lingerMs;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (this.#writing) return;
      this.#writing = true;
      if (this.#lingerMs > 0 && this.#pending.length < this.#maxBatch) {
        setTimeout(() => void this.#drain(), this.#lingerMs);
      } else {
        // At the end of this turn, not now: the calls that arrived together (one socket
        // read of many requests, one message of many results) reach here one by one, and
        // written at once the first would go alone, the rest one round trip later.
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#maxBatch);
        try {
          const results = await this.#write(batch.map(entry => entry.item));
          batch.forEach((entry, index) => entry.resolve(results[index]!));
        } catch (error) {
          for (const entry of batch) entry.reject(error);
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}
