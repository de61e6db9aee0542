import type { Db } from '../db/database.js';
import { applyRunResults, type ResultToStore, type StoredResult } from '../db/logs.repository.js';
import type { HeldAcceptances } from '../dispatch/held-acceptances.js';
import type { RunResultInput } from '../domain.js';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import { retryOnDeadlock } from '../db/retry.js';
import { GroupCommit } from '../util/group-commit.js';
import { sleep } from '@jobstream/proto/concurrency';
import type { OneAtATime } from '../util/one-at-a-time.js';

/**
 * How long a result waits for others before they are stored together. Results arrive
 * spread over time; without it each became a statement and a commit of its own at 1,000
 * runs a second. A result is off the path of any fire, and its executor keeps it meanwhile.
 */
const RESULT_LINGER_MS = 5;

export interface ResultRecorderOptions {
  db: Db;
  logger: Logger;
  metrics: AdminMetrics;
  /** Acceptances held back to be stored with their results (see HeldAcceptances). */
  acceptances?: HeldAcceptances;
  /**
   * Shared by the writers of a run's acceptance and of its result (Dispatcher,
   * HeldAcceptances, ResultRecorder): their batches update the same rows, and two batches
   * locking rows in different orders deadlock, which PostgreSQL notices only after
   * deadlock_timeout (1 s by default), stalling both. Without it each writes on its own.
   */
  logRowWrites?: OneAtATime;
  /** Called once per result that this admin stored (never for duplicates). */
  onResultStored?: (result: RunResultInput, stored: StoredResult) => void;
}

/**
 * Stores run results. A result is acknowledged to the executor only after this
 * resolves, i.e. after it is committed; while the database is unavailable the write
 * is retried with backoff until it succeeds or the stream ends (the executor still
 * holds the result in its spool and sends it again on its next stream).
 */
export class ResultRecorder {
  readonly #options: ResultRecorderOptions;
  /** Results arriving together (from any stream) are stored in one statement and one commit. */
  readonly #writes: GroupCommit<RunResultInput, StoredResult | undefined>;

  constructor(options: ResultRecorderOptions) {
    this.#options = options;
    this.#writes = new GroupCommit(results => this.#store(results), 1_000, RESULT_LINGER_MS);
  }

  /** Returns true when stored now, false for a duplicate. Throws only if `signal` aborts first. */
  /**
   * Stores a batch of results, each with its run's acceptance when that is still held:
   * taken as the batch is written, not as the result arrives, because an executor's
   * reply and its result often come in one message and the dispatcher holds the
   * acceptance only once it has read the reply.
   */
  async #store(results: RunResultInput[]): Promise<(StoredResult | undefined)[]> {
    const { acceptances, db } = this.#options;
    const taken = results.map(result => acceptances?.take(result.logId, result.attempt));
    const toStore = results.map((result, index): ResultToStore => {
      const acceptance = taken[index];
      if (!acceptance) return result;
      // A literal, not `{ ...result, acceptance }`: V8 builds that spread slowly.
      return {
        logId: result.logId,
        attempt: result.attempt,
        outcome: result.outcome,
        message: result.message,
        startedAt: result.startedAt,
        finishedAt: result.finishedAt,
        acceptance,
      };
    });
    let stored: (StoredResult | undefined)[];
    try {
      const write = () => retryOnDeadlock(() => applyRunResults(db, toStore, new Date()));
      const { logRowWrites } = this.#options;
      stored = await (logRowWrites ? logRowWrites.run(write) : write());
    } catch (error) {
      for (const acceptance of taken) if (acceptance) acceptances?.release(acceptance);
      throw error;
    }
    // A duplicate stored nothing, its acceptance neither.
    stored.forEach((result, index) => {
      const acceptance = taken[index];
      if (!result && acceptance) acceptances?.release(acceptance);
    });
    return stored;
  }

  async record(result: RunResultInput, signal: AbortSignal): Promise<boolean> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const stored = await this.#writes.add(result);
        this.#options.metrics.countResult(result.outcome, stored ? 'new' : 'duplicate');
        if (stored) this.#options.onResultStored?.(result, stored);
        return stored !== undefined;
      } catch (error) {
        signal.throwIfAborted();
        const delayMs = Math.min(5_000, 100 * 2 ** attempt);
        this.#options.logger.warn(
          { err: error, logId: result.logId, attempt: result.attempt, retryInMs: delayMs },
          'storing a run result failed; retrying',
        );
        await sleep(delayMs, signal);
        signal.throwIfAborted();
      }
    }
  }
}
