/**
 * Releases items at their due millisecond with ONE timer for all of them: a binary
 * min-heap ordered by due time, and a single setTimeout armed for the earliest item.
 * Items due together are released together, in one callback.
 */
export class FireTimer<T> {
  readonly #heap: { dueAt: number; item: T }[] = [];
  readonly #onDue: (items: T[]) => void;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Number.POSITIVE_INFINITY;
  #stopped = false;

  constructor(onDue: (items: T[]) => void) {
    this.#onDue = onDue;
  }

  get size(): number {
    return this.#heap.length;
  }

  add(item: T, dueAt: number): void {
    if (this.#stopped) return;
    const heap = this.#heap;
    heap.push({ dueAt, item });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.dueAt <= heap[index]!.dueAt) break;
      [heap[parent], heap[index]] = [heap[index]!, heap[parent]!];
      index = parent;
    }
    if (dueAt < this.#armedFor) this.#arm();
  }

  /** Drops every item and the timer; returns what was still waiting. */
  stop(): T[] {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#heap.splice(0).map(entry => entry.item);
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const next = this.#heap[0];
    if (!next || this.#stopped) {
      this.#timer = undefined;
      this.#armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    this.#armedFor = next.dueAt;
    this.#timer = setTimeout(() => this.#release(), Math.max(0, next.dueAt - Date.now()));
  }

  #release(): void {
    const now = Date.now();
    const due: T[] = [];
    while (this.#heap.length > 0 && this.#heap[0]!.dueAt <= now) due.push(this.#pop());
    this.#arm();
    if (due.length > 0) this.#onDue(due);
  }

  #pop(): T {
    const heap = this.#heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let index = 0;
      for (;;) {
        const left = index * 2 + 1;
        const right = left + 1;
        let smallest = index;
        if (left < heap.length && heap[left]!.dueAt < heap[smallest]!.dueAt) smallest = left;
        if (right < heap.length && heap[right]!.dueAt < heap[smallest]!.dueAt) smallest = right;
        if (smallest === index) break;
        [heap[smallest], heap[index]] = [heap[index]!, heap[smallest]!];
        index = smallest;
      }
    }
    return top.item;
  }
}
