/**
 * Measures event-loop lag as timer drift: a timer due every `intervalMs` that fires
 * late shows how long the loop was blocked. (perf_hooks' monitorEventLoopDelay was not
 * used because its readings vary across Node versions.) The timer is unref'd so it
 * never keeps a process alive.
 */
export class EventLoopLagMonitor {
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #expected = 0;
  #maxLagMs = 0;

  readonly #onLag: ((lagMs: number) => void) | undefined;

  /** `onLag` hears of every tick that came later than due (the lag in ms). */
  constructor(intervalMs = 100, onLag?: (lagMs: number) => void) {
    this.#intervalMs = intervalMs;
    this.#onLag = onLag;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#expected = performance.now() + this.#intervalMs;
    this.#timer = setInterval(() => {
      const now = performance.now();
      const lagMs = now - this.#expected;
      this.#maxLagMs = Math.max(this.#maxLagMs, lagMs);
      this.#expected = now + this.#intervalMs;
      if (lagMs > 0) this.#onLag?.(lagMs);
    }, this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * How overdue the next tick is now: large right after the process was stopped
   * (SIGSTOP) or its loop blocked, because I/O callbacks run before the timers
   * that would catch up.
   */
  currentLagMs(): number {
    return this.#timer === undefined ? 0 : Math.max(0, performance.now() - this.#expected);
  }

  /** The largest lag since the previous call, in whole milliseconds; resets the maximum. */
  takeMaxLagMs(): number {
    // A timer that is due but has not fired yet is lagging too.
    const pending = this.#timer === undefined ? 0 : performance.now() - this.#expected;
    const lag = Math.max(this.#maxLagMs, pending, 0);
    this.#maxLagMs = 0;
    return Math.min(Math.round(lag), 0xffffffff);
  }
}
