/**
 * A Map with a size limit that starts over when full. Cheaper than LRU on every hit, and a
 * working set under the limit (the usual case: the jobs' schedules, the hours around now) stays
 * cached; only an ever-growing key space, such as arbitrary expressions sent for validation,
 * pays for a refill now and then.
 */
export class BoundedCache<K, V> {
  readonly #entries = new Map<K, V>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  set(key: K, value: V): void {
    if (this.#entries.size >= this.#limit) this.#entries.clear();
    this.#entries.set(key, value);
  }
}
