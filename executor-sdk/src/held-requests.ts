/**
 * Items held until a time of their own (run requests with a `start_at`), handed back in
 * time order, and in arrival order among equal times. Times are on another clock (the
 * admin's): `offsetOf` says, at each moment, how far ahead of this process's clock it is
 * for an item, and may change while the item waits (the estimate improves), so items are
 * kept in the order of their own times and converted only when the timer is set and
 * when they are checked. One timer for the earliest, not one per item. Never early: an
 * item is due once `Date.now()` plus its offset reaches its time, whatever the timer's
 * own clock said.
 */
export class HeldRequests<T> {
  /** Sorted by time; requests mostly arrive in start order, so inserts are at the end. */
  readonly #entries: { at: number; item: T }[] = [];
  readonly #onDue: (items: T[]) => void;
  readonly #offsetOf: (item: T) => number;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;

  constructor(onDue: (items: T[]) => void, offsetOf: (item: T) => number = () => 0) {
    this.#onDue = onDue;
    this.#offsetOf = offsetOf;
  }

  #localTime(entry: { at: number; item: T }): number {
    return entry.at - this.#offsetOf(entry.item);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Holds `item` until `at` (ms since the epoch, on the items' clock). */
  hold(item: T, at: number): void {
    const entries = this.#entries;
    let index = entries.length;
    while (index > 0 && entries[index - 1]!.at > at) index -= 1;
    if (index === entries.length) entries.push({ at, item });
    else entries.splice(index, 0, { at, item });
    this.#arm();
  }

  /** Removes and returns, in time order, the items that `matches` picks. */
  take(matches: (item: T) => boolean): T[] {
    const taken: T[] = [];
    for (let index = 0; index < this.#entries.length;) {
      const entry = this.#entries[index]!;
      if (matches(entry.item)) {
        taken.push(entry.item);
        this.#entries.splice(index, 1);
      } else {
        index += 1;
      }
    }
    if (taken.length > 0) this.#arm();
    return taken;
  }

  /** Removes and returns every item, in time order. */
  clear(): T[] {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    return this.#entries.splice(0).map(entry => entry.item);
  }

  #arm(): void {
    const first = this.#entries[0];
    if (first === undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    const local = this.#localTime(first);
    if (this.#timer !== undefined && this.#timerAt <= local) return;
    clearTimeout(this.#timer);
    this.#timerAt = local;
    this.#timer = setTimeout(() => this.#release(), Math.max(0, local - Date.now()));
    // Held requests never keep a process alive on their own: the stream does.
    this.#timer.unref();
  }

  #release(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let due = 0;
    while (due < this.#entries.length && this.#localTime(this.#entries[due]!) <= now) due += 1;
    const items = due === 0 ? [] : this.#entries.splice(0, due).map(entry => entry.item);
    this.#arm();
    if (items.length > 0) this.#onDue(items);
  }
}
