import type { Db } from '../db/database.js';
import { deleteLogBatch, refreshReport, type DayReportRow } from '../db/reports.repository.js';
import type { Logger } from '../logger.js';
import { sleep } from '@jobstream/proto/concurrency';
import { addDays, dayInZone } from './days.js';

export interface HousekeeperOptions {
  db: Db;
  logger: Logger;
  /** The admin's default time zone: report days and the retention cutoff are its days. */
  timeZone: string;
  /** How often the report is refreshed (and retention considered). */
  intervalMs: number;
  /** Trigger logs of days older than this many days are deleted; 0 keeps them forever. */
  logRetentionDays: number;
  /** Logs deleted per statement. */
  retentionBatchSize?: number;
  /** The clock; tests move it. */
  now?: () => Date;
}

/**
 * Today and the two days before are recounted on every pass: results of runs started
 * before midnight keep arriving after it. Older rows are final (as in XXL-JOB): a run
 * reporting more than two days after its trigger is not reflected in the report.
 */
const REPORT_DAYS = 3;
const RETENTION_EVERY_MS = 24 * 3_600_000;
/** Progress of a long retention (the first one after enabling it) is logged this often. */
const PROGRESS_EVERY_BATCHES = 100;

/**
 * Keeps the daily log report current and applies trigger-log retention, on every admin
 * of a cluster independently: both are idempotent and safe to run concurrently (the
 * report is an upsert, retention deletes whatever is still there), so no admin lock is
 * needed and the work survives any admin dying.
 *
 * Retention runs on the first pass after start, then at most once per 24 hours per
 * admin. A failing pass is logged and retried on the next one.
 */
export class Housekeeper {
  readonly #options: Required<HousekeeperOptions>;
  #loop: { stop: AbortController; done: Promise<void> } | undefined;
  /** When this admin last completed retention (its own clock); undefined until the first time. */
  #lastRetentionAt: number | undefined;

  constructor(options: HousekeeperOptions) {
    this.#options = { retentionBatchSize: 1_000, now: () => new Date(), ...options };
  }

  start(): void {
    if (this.#loop) return;
    const stop = new AbortController();
    this.#loop = { stop, done: this.#run(stop.signal) };
  }

  /** Stops the loop; a retention in progress ends after its current batch. */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#loop = undefined;
    loop.stop.abort();
    await loop.done;
  }

  /** Recounts the report's recent days; returns the rows written. */
  async refreshNow(): Promise<DayReportRow[]> {
    const { db, timeZone, logRetentionDays } = this.#options;
    const today = dayInZone(this.#options.now(), timeZone);
    let days = Array.from({ length: REPORT_DAYS }, (_, index) => addDays(today, index - (REPORT_DAYS - 1)));
    if (logRetentionDays > 0) {
      // Under a retention shorter than the report window, the oldest days' logs are gone:
      // recounting them would overwrite their history with zeros.
      const oldestKept = addDays(today, -logRetentionDays);
      days = days.filter(day => day >= oldestKept);
    }
    return refreshReport(db, days, timeZone);
  }

  /**
   * Deletes trigger logs triggered before local midnight `logRetentionDays` days ago,
   * batch by batch until a batch comes back short; returns how many. Does nothing when
   * retention is off. Report rows are kept: they are the history once the logs are gone.
   */
  async applyRetentionNow(signal?: AbortSignal): Promise<number> {
    const { db, timeZone, logRetentionDays, retentionBatchSize, logger } = this.#options;
    if (logRetentionDays <= 0) return 0;
    const beforeDay = addDays(dayInZone(this.#options.now(), timeZone), -logRetentionDays);
    const started = Date.now();
    let deleted = 0;
    let batches = 0;
    for (;;) {
      if (signal?.aborted) {
        logger.info({ deleted, beforeDay }, 'trigger log retention interrupted by shutdown');
        return deleted;
      }
      const count = await deleteLogBatch(db, { beforeDay, timeZone, limit: retentionBatchSize });
      deleted += count;
      batches++;
      if (count < retentionBatchSize) break;
      if (batches % PROGRESS_EVERY_BATCHES === 0) {
        logger.info({ deleted, beforeDay }, 'trigger log retention in progress');
      }
    }
    logger.info(
      { deleted, batches, beforeDay, retentionDays: logRetentionDays, ms: Date.now() - started },
      deleted > 0 ? 'deleted old trigger logs' : 'no trigger logs past retention',
    );
    return deleted;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.#pass(signal);
      await sleep(this.#options.intervalMs, signal);
    }
  }

  async #pass(signal: AbortSignal): Promise<void> {
    const { logger, logRetentionDays } = this.#options;
    try {
      const rows = await this.refreshNow();
      logger.debug({ days: rows }, 'log report refreshed');
    } catch (error) {
      logger.warn({ err: error }, 'refreshing the log report failed; retrying on the next pass');
    }
    if (signal.aborted || logRetentionDays <= 0) return;
    const now = Date.now();
    if (this.#lastRetentionAt !== undefined && now - this.#lastRetentionAt < RETENTION_EVERY_MS) return;
    try {
      await this.applyRetentionNow(signal);
      if (!signal.aborted) this.#lastRetentionAt = now;
    } catch (error) {
      logger.warn({ err: error }, 'trigger log retention failed; retrying on the next pass');
    }
  }
}
