import type { Db } from '../db/database.js';
import { findGroupById } from '../db/groups.repository.js';
import {
  declareLostRuns,
  failUndispatchedLogs,
  markUnroutableRuns,
  recordAlarmOutcome,
  takeFailureWork,
} from '../db/failures.repository.js';
import { findJobsByIds, scheduleFixDelayAfterRun } from '../db/scheduler.repository.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { ExecutorGroup, Job, TriggerLog } from '../domain.js';
import type { Logger } from '../logger.js';
import { sleep } from '@jobstream/proto/concurrency';

/** What the monitor needs from the alarm channels (admin/src/alarm). */
export interface AlarmSender {
  alarm(event: {
    job: Job;
    group: ExecutorGroup | undefined;
    log: TriggerLog;
  }): Promise<'SENT' | 'FAILED' | 'NOT_NEEDED'>;
}

export interface FailureMonitorOptions {
  db: Db;
  dispatcher: Dispatcher;
  alarms: AlarmSender;
  logger: Logger;
  intervalMs: number;
  /** A run whose executor went away is lost after this long unless the executor reports it. */
  lostRunGraceMs: number;
  /** Backstop: a run with no result after this long whose executor is offline is lost. */
  resultLostAfterMs: number;
  /** A trigger's log still PENDING this long after it was created was never dispatched. */
  undispatchedAfterMs: number;
  onLostRuns?: (count: number) => void;
  onRetries?: (count: number) => void;
}

/** Failed logs handled per transaction; the pass repeats at once while batches come back full. */
const BATCH = 200;

/**
 * Follows up failures, on every admin at once (work is split with row locks, so each
 * failure is handled by one admin):
 * - runs whose executor went away become unroutable at once and are failed as LOST after
 *   a grace period unless the executor reconnects and reports them still running;
 * - logs left PENDING by an admin that stopped mid-trigger are failed;
 * - every failed log gets its retry (after the job's delay, doubled per attempt) while
 *   retries are left, and its alarm, once.
 */
export class FailureMonitor {
  readonly #options: FailureMonitorOptions;
  #loop: { stop: AbortController; done: Promise<void> } | undefined;
  #pass: Promise<void> | undefined;
  readonly #background = new Set<Promise<void>>();

  constructor(options: FailureMonitorOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#loop) return;
    const stop = new AbortController();
    const done = (async () => {
      while (!stop.signal.aborted) {
        try {
          await this.passNow();
        } catch (error) {
          this.#options.logger.warn({ err: error }, 'failure monitor pass failed; retrying');
        }
        await sleep(this.#options.intervalMs, stop.signal);
      }
    })();
    this.#loop = { stop, done };
  }

  async stop(): Promise<void> {
    const loop = this.#loop;
    this.#loop = undefined;
    loop?.stop.abort();
    await Promise.all([loop?.done, ...this.#background]);
  }

  /** Runs one pass now (passes never overlap). */
  passNow(): Promise<void> {
    this.#pass ??= this.#runPass().finally(() => (this.#pass = undefined));
    return this.#pass;
  }

  /**
   * Runs declared lost outside a pass (an executor came back as another process without
   * them): a FIX_DELAY job plans its next fire, and the retries and alarms follow at once
   * instead of at the next pass.
   */
  runsDeclaredLost(logIds: readonly string[]): void {
    if (logIds.length === 0) return;
    this.#options.onLostRuns?.(logIds.length);
    const task = (async () => {
      const now = new Date();
      for (const logId of logIds) await scheduleFixDelayAfterRun(this.#options.db, logId, now);
      if (this.#loop) await this.passNow();
    })()
      .catch((error: unknown) =>
        this.#options.logger.warn({ err: error, logIds }, 'following up runs declared lost failed'),
      )
      .finally(() => this.#background.delete(task));
    this.#background.add(task);
  }

  /** The stream of a session ended: its runs are unroutable from now on. */
  async sessionEnded(sessionId: string): Promise<void> {
    await markUnroutableRuns(this.#options.db, sessionId);
  }

  async #runPass(): Promise<void> {
    const { db, logger } = this.#options;
    await markUnroutableRuns(db);
    const lost = await declareLostRuns(db, this.#options.lostRunGraceMs, this.#options.resultLostAfterMs);
    if (lost.length > 0) {
      this.#options.onLostRuns?.(lost.length);
      logger.warn(
        { lost: lost.map(run => ({ logId: run.logId, jobId: run.jobId, executor: run.executorInstance })) },
        'runs declared lost: their executor went away and did not report them',
      );
      const now = new Date();
      // A FIX_DELAY job plans its next fire when a scheduled run ends; a lost run ends now.
      for (const run of lost) await scheduleFixDelayAfterRun(db, run.logId, now);
    }
    const undispatched = await failUndispatchedLogs(db, this.#options.undispatchedAfterMs);
    if (undispatched.length > 0) {
      logger.warn({ logs: undispatched }, 'failed logs that were never dispatched');
      // A scheduled FIX_DELAY fire among them ends now: its job plans its next fire.
      const now = new Date();
      for (const logId of undispatched) await scheduleFixDelayAfterRun(db, logId, now);
    }

    for (;;) {
      const work = await takeFailureWork(db, BATCH);
      await this.#follow(work.toAlarm, work.retries);
      if (work.toAlarm.length + work.retries.length + work.waiting < BATCH) break;
    }
  }

  async #follow(toAlarm: TriggerLog[], retries: TriggerLog[]): Promise<void> {
    const { db, dispatcher, alarms, logger } = this.#options;
    const jobs = await findJobsByIds(db, [...new Set([...toAlarm, ...retries].map(log => log.jobId))]);
    if (retries.length > 0) {
      this.#options.onRetries?.(retries.length);
      logger.info(
        { retries: retries.map(log => ({ logId: log.id, retryOf: log.retryOfLogId, attempt: log.attempt })) },
        'retrying failed logs',
      );
    }
    const groups = new Map<string, Promise<ExecutorGroup | undefined>>();
    const groupOf = (id: string) => {
      let group = groups.get(id);
      if (!group) groups.set(id, (group = findGroupById(db, id)));
      return group;
    };
    await Promise.all([
      ...retries.map(async log => {
        const job = jobs.get(log.jobId);
        if (job) await dispatcher.dispatchRecorded(job, log);
      }),
      ...toAlarm.map(async log => {
        const job = jobs.get(log.jobId);
        let status: 'SENT' | 'FAILED' | 'NOT_NEEDED' = 'NOT_NEEDED';
        if (job) {
          try {
            status = await alarms.alarm({ job, group: await groupOf(job.groupId), log });
          } catch (error) {
            logger.warn({ err: error, logId: log.id }, 'alarm failed');
            status = 'FAILED';
          }
        }
        await recordAlarmOutcome(db, log.id, status);
      }),
    ]);
  }
}
