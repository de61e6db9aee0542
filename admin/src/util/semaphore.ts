/**
 * What can end a wait, for callers that avoid an AbortSignal: making one per request (and
 * adding and removing its listener) was 3 % of a busy admin's CPU.
 */
export interface Cancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  /** Called once, with the reason, if it aborts (at once if it already has). */
  onAbort(listener: (reason: unknown) => void): void;
}

interface Waiter {
  grant(): void;
  /** Set when the waiter gave up: a released permit skips it instead of being spent on it. */
  gaveUp: boolean;
}

/** Counts permits; `acquire` waits in arrival order (bounded by a signal) until one is free. */
export class Semaphore {
  #available: number;
  // Waiters that gave up stay in the queue, marked, until a release reaches them: removing
  // one from the middle of thousands (every waiter of a stream that closed) would be linear.
  readonly #waiters: Waiter[] = [];
  #waiting = 0;

  constructor(permits: number) {
    this.#available = permits;
  }

  get available(): number {
    return this.#available;
  }

  /** How many acquirers are waiting for a permit. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Takes a permit only if one is free now and nobody waits for one. */
  tryAcquire(): boolean {
    if (this.#available <= 0 || this.#waiting > 0) return false;
    this.#available -= 1;
    return true;
  }

  async acquire(signal?: AbortSignal | Cancellation): Promise<void> {
    if (this.#available > 0 && this.#waiting === 0) {
      this.#available -= 1;
      return;
    }
    if (signal?.aborted) throw signal.reason;
    await new Promise<void>((resolve, reject) => {
      let granted = false;
      const waiter: Waiter = {
        gaveUp: false,
        grant: () => {
          granted = true;
          if (signal instanceof AbortSignal) signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        if (granted || waiter.gaveUp) return;
        waiter.gaveUp = true;
        this.#waiting -= 1;
        reject(signal?.reason as Error);
      };
      if (signal instanceof AbortSignal) signal.addEventListener('abort', onAbort, { once: true });
      else signal?.onAbort(onAbort);
      this.#waiters.push(waiter);
      this.#waiting += 1;
    });
  }

  release(): void {
    for (let next = this.#waiters.shift(); next !== undefined; next = this.#waiters.shift()) {
      if (next.gaveUp) continue;
      this.#waiting -= 1;
      next.grant();
      return;
    }
    this.#available += 1;
  }
}
