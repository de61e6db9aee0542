/**
 * Releases items at their due millisecond with ONE timer for all of them: a binary
 * min-heap ordered by due time, and a single setTimeout armed for the earliest item.
 * Items due together are released together, in one callback, in the order they were
 * added (a heap alone would shuffle them: fires due at the same instant would then be
 * taken and sent in no particular order).
 */
export class FireTimer<T> {
  readonly #heap: { dueAt: number; seq: number; item: T }[] = [];
  #nextSeq = 0;
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
    heap.push({ dueAt, seq: this.#nextSeq++, item });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(heap[index]!, heap[parent]!)) break;
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
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === index) break;
        [heap[smallest], heap[index]] = [heap[index]!, heap[smallest]!];
        index = smallest;
      }
    }
    return top.item;
  }
}

/** Heap order: by due time, then by the order of adding. */
function before(a: { dueAt: number; seq: number }, b: { dueAt: number; seq: number }): boolean {
  return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq);
}
