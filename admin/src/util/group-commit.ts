/**
 * Group commit for writes: items added while a batch is being written form the next
 * batch, so under load one statement (and one WAL fsync) carries many items, and when
 * idle an item is written at once. Each `add` resolves with its own item's result once
 * its batch committed, or rejects with the batch's error.
 */
export class GroupCommit<T, R> {
  readonly #write: (items: T[]) => Promise<R[]>;
  readonly #maxBatch: number;
  #pending: { item: T; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  #writing = false;

  /** `write` returns one result per item, in order. */
  constructor(write: (items: T[]) => Promise<R[]>, maxBatch = 1_000) {
    this.#write = write;
    this.#maxBatch = maxBatch;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
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
