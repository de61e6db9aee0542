/**
 * Counts failed logins per username in a sliding window, so passwords cannot be
 * guessed at the speed of the network. Bounded: the oldest entries are dropped
 * first when more usernames are tracked than `maxTracked`.
 */
export class LoginThrottle {
  readonly #failures = new Map<string, number[]>();
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #now: () => number;

  constructor(options: { maxFailures: number; windowMs: number; maxTracked?: number; now?: () => number }) {
    this.#maxFailures = options.maxFailures;
    this.#windowMs = options.windowMs;
    this.#maxTracked = options.maxTracked ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Milliseconds until the username may try again; 0 when it may now. */
  retryAfterMs(username: string): number {
    const recent = this.#recent(username);
    if (recent.length < this.#maxFailures) return 0;
    return recent[recent.length - this.#maxFailures]! + this.#windowMs - this.#now();
  }

  recordFailure(username: string): void {
    const recent = this.#recent(username);
    recent.push(this.#now());
    this.#failures.delete(username);
    this.#failures.set(username, recent.slice(-this.#maxFailures));
    while (this.#failures.size > this.#maxTracked) {
      const oldest = this.#failures.keys().next();
      if (oldest.done) break;
      this.#failures.delete(oldest.value);
    }
  }

  recordSuccess(username: string): void {
    this.#failures.delete(username);
  }

  #recent(username: string): number[] {
    const since = this.#now() - this.#windowMs;
    return (this.#failures.get(username) ?? []).filter(at => at > since);
  }
}
