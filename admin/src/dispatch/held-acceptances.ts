import type { Db } from '../db/database.js';
import { recordHeldAcceptances, type DispatchRecord } from '../db/logs.repository.js';
import { retryOnDeadlock } from '../db/retry.js';
import type { Logger } from '../logger.js';
import type { OneAtATime } from '../util/one-at-a-time.js';

/** An executor's acceptance of a run, as the log records it (see recordHeldAcceptances). */
export interface Acceptance extends Omit<DispatchRecord, 'outcome' | 'claimedBy'> {
  logId: string;
  attempt: number;
}

export interface HeldAcceptancesOptions {
  db: Db;
  logger: Logger;
  /** How long an acceptance waits for its run's result. Default ACCEPTANCE_HOLD_MS. */
  holdMs?: number;
  /**
   * Shared by the writers of a run's acceptance and of its result (Dispatcher,
   * HeldAcceptances, ResultRecorder): their batches update the same rows, and two batches
   * locking rows in different orders deadlock, which PostgreSQL notices only after
   * deadlock_timeout (1 s by default), stalling both. Without it each writes on its own.
   */
  logRowWrites?: OneAtATime;
}

/**
 * How long an executor's acceptance of a scheduled fire waits for the run's result. A
 * short run's result follows within milliseconds, and most arrive well inside this even
 * when the executor has a full pipelining window queued.
 */
export const ACCEPTANCE_HOLD_MS = 3_000;
const RETRY_MAX_DELAY_MS = 5_000;
const STOP_WRITE_ATTEMPTS = 3;

interface Held {
  acceptance: Acceptance;
  heldAt: number;
}

/**
 * Acceptances of scheduled fires, held back briefly so that the run's result stores both
 * in one row update (`take`) instead of two: every update of a trigger_log row writes a
 * new row version and an entry in each of the table's indexes, and a fire's acceptance
 * and its result were two of the four writes a run cost. An acceptance still held after
 * `holdMs` is written on its own; one whose write fails is kept and written again.
 *
 * Holding is safe because nothing waits for the record: the fire's log already names its
 * executor (its take marked it), and if this admin dies first the fire, still claimed and
 * PENDING, is taken over by a peer, which asks the executor again with the same (log,
 * attempt) and is answered "already accepted".
 */
export class HeldAcceptances {
  readonly #options: HeldAcceptancesOptions & { holdMs: number };
  /** By log id. */
  readonly #held = new Map<string, Held>();
  #timer: NodeJS.Timeout | undefined;
  #writing = false;
  #failures = 0;
  #stopped = false;

  constructor(options: HeldAcceptancesOptions) {
    this.#options = { holdMs: ACCEPTANCE_HOLD_MS, ...options };
  }

  /** Acceptances held now (for metrics and tests). */
  get size(): number {
    return this.#held.size;
  }

  /** Holds an acceptance until its result takes it or its hold time ends. */
  hold(acceptance: Acceptance): void {
    if (this.#stopped) {
      void this.#writeOrKeep([{ acceptance, heldAt: 0 }]);
      return;
    }
    this.#held.delete(acceptance.logId);
    this.#held.set(acceptance.logId, { acceptance, heldAt: Date.now() });
    this.#arm(this.#options.holdMs);
  }

  /**
   * The acceptance held for this run, which the caller now owns: it stores it with the
   * run's result, or hands it back (`release`) if it cannot.
   */
  take(logId: string, attempt: number): Acceptance | undefined {
    const held = this.#held.get(logId);
    if (held?.acceptance.attempt !== attempt) return undefined;
    this.#held.delete(logId);
    return held.acceptance;
  }

  /** An acceptance taken and not stored after all: it is written on its own, soon. */
  release(acceptance: Acceptance): void {
    if (this.#stopped) {
      void this.#writeOrKeep([{ acceptance, heldAt: 0 }]);
      return;
    }
    if (!this.#held.has(acceptance.logId)) this.#held.set(acceptance.logId, { acceptance, heldAt: 0 });
    this.#arm(0);
  }

  /**
   * Writes now the acceptances held for runs sent on a stream that ended: the runs were
   * accepted, and the lost-run check that follows must find them so (a run that stayed
   * PENDING would read as a request nobody answered). One whose write fails stays held.
   */
  async writeSession(sessionId: string): Promise<void> {
    const due: Held[] = [];
    for (const entry of this.#held.values()) {
      if (entry.acceptance.executorSessionId === sessionId) due.push(entry);
    }
    if (due.length === 0) return;
    for (const entry of due) this.#held.delete(entry.acceptance.logId);
    await this.#writeOrKeep(due);
    this.#armForOldest();
  }

  /** Writes every acceptance still held; gives up (logging them) after a few failed attempts. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (let attempt = 1; this.#held.size > 0; attempt += 1) {
      const due = [...this.#held.values()];
      this.#held.clear();
      try {
        await this.#write(due.map(entry => entry.acceptance));
      } catch (error) {
        for (const entry of due) this.#held.set(entry.acceptance.logId, entry);
        if (attempt >= STOP_WRITE_ATTEMPTS) {
          // Still PENDING and claimed: a peer takes the fires over and asks the executor again.
          this.#options.logger.error(
            { err: error, logIds: [...this.#held.keys()].slice(0, 20), count: this.#held.size },
            'stopping with accepted runs not recorded (the database was unreachable)',
          );
          this.#held.clear();
          return;
        }
      }
    }
  }

  async #write(acceptances: readonly Acceptance[]): Promise<void> {
    const write = () => retryOnDeadlock(() => recordHeldAcceptances(this.#options.db, acceptances));
    await (this.#options.logRowWrites ? this.#options.logRowWrites.run(write) : write());
  }

  #arm(delayMs: number): void {
    if (this.#timer !== undefined || this.#writing || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, delayMs);
  }

  async #flush(): Promise<void> {
    const holdMs = this.#options.holdMs;
    // Written with the ones due now: those due within the next quarter of the hold, so a
    // steady stream of fires costs a statement per quarter hold, not one per fire.
    const cutoff = Date.now() - holdMs + holdMs / 4;
    const due: Held[] = [];
    for (const entry of this.#held.values()) if (entry.heldAt <= cutoff) due.push(entry);
    for (const entry of due) this.#held.delete(entry.acceptance.logId);
    if (due.length > 0) await this.#writeOrKeep(due);
    this.#armForOldest();
  }

  async #writeOrKeep(due: Held[]): Promise<void> {
    this.#writing = true;
    try {
      await this.#write(due.map(entry => entry.acceptance));
      this.#failures = 0;
    } catch (error) {
      this.#failures += 1;
      this.#options.logger.warn(
        { err: error, count: due.length },
        'recording accepted runs failed; writing them again until the database is back',
      );
      // Kept for the next flush, unless the same log was held again meanwhile (newer).
      for (const entry of due) {
        if (!this.#held.has(entry.acceptance.logId)) this.#held.set(entry.acceptance.logId, entry);
      }
    } finally {
      this.#writing = false;
    }
  }

  #armForOldest(): void {
    if (this.#held.size === 0) return;
    // Not in insertion order: a released acceptance is due at once.
    let oldest = Number.POSITIVE_INFINITY;
    for (const entry of this.#held.values()) oldest = Math.min(oldest, entry.heldAt);
    const backoff = this.#failures === 0 ? 0 : Math.min(RETRY_MAX_DELAY_MS, 100 * 2 ** this.#failures);
    this.#arm(Math.max(backoff, oldest + this.#options.holdMs - Date.now(), 0));
  }
}
