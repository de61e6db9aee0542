import type { Db } from '../db/database.js';
import {
  deleteExpiredPresence,
  refreshPresence,
  removePresence,
  upsertPresence,
} from '../db/registry.repository.js';
import type { Logger } from '../logger.js';
import { sleep } from '../util/sleep.js';
import type { ExecutorSession } from './executor-session.js';

export interface PresenceTrackerOptions {
  db: Db;
  adminInstanceId: string;
  beatIntervalMs: number;
  logger: Logger;
}

/** Presence expires after this many beat intervals without a refresh (an admin that died). */
const MISSED_BEATS_BEFORE_EXPIRY = 3;

/**
 * Mirrors this admin's executor streams into the shared registry table, so every
 * admin (and ListExecutors) sees who is online. Rows are written on Register,
 * refreshed by beats at most once per half beat interval, deleted when the stream
 * ends, and expire on their own when the admin holding them dies.
 */
export class PresenceTracker {
  readonly #options: PresenceTrackerOptions;
  readonly #lastRefresh = new Map<string, number>();
  #sweeper: { stop: AbortController; done: Promise<void> } | undefined;

  constructor(options: PresenceTrackerOptions) {
    this.#options = options;
  }

  #expiresAt(from: number): Date {
    return new Date(from + MISSED_BEATS_BEFORE_EXPIRY * this.#options.beatIntervalMs);
  }

  async online(session: ExecutorSession): Promise<void> {
    const now = Date.now();
    const { register } = session;
    await upsertPresence(
      this.#options.db,
      {
        appName: session.appName,
        instanceName: session.instanceName,
        sessionId: session.sessionId,
        adminInstanceId: this.#options.adminInstanceId,
        hostname: register.hostname,
        pid: register.pid,
        sdkName: register.sdkName,
        sdkVersion: register.sdkVersion,
        handlers: register.handlers,
        capacity: register.capacity,
        labels: register.labels,
        connectedAt: session.connectedAt,
        lastBeatAt: session.connectedAt,
        runningCount: register.running.length,
        queuedCount: 0,
        unresponsiveLogIds: [],
      },
      this.#expiresAt(now),
    );
    this.#lastRefresh.set(session.sessionId, now);
  }

  /** Records a beat; writes to the database only when the last write is older than half an interval. */
  async beat(session: ExecutorSession): Promise<void> {
    const now = Date.now();
    const last = this.#lastRefresh.get(session.sessionId) ?? 0;
    if (now - last < this.#options.beatIntervalMs / 2) return;
    this.#lastRefresh.set(session.sessionId, now);
    const stillCurrent = await refreshPresence(this.#options.db, session.sessionId, {
      lastBeatAt: session.load.lastBeatAt,
      expiresAt: this.#expiresAt(now),
      runningCount: session.load.runningCount,
      queuedCount: session.load.queuedCount,
      unresponsiveLogIds: session.load.unresponsiveLogIds,
    });
    if (!stillCurrent) {
      this.#options.logger.warn(
        { app: session.appName, instance: session.instanceName, sessionId: session.sessionId },
        'presence row replaced by a newer session; closing this stream',
      );
      session.close('presence row taken over by a newer session of the same instance name');
    }
  }

  async offline(session: ExecutorSession): Promise<void> {
    this.#lastRefresh.delete(session.sessionId);
    await removePresence(this.#options.db, session.sessionId);
  }

  /** Starts deleting expired rows (left by admins that died) every beat interval. */
  start(): void {
    if (this.#sweeper) return;
    const stop = new AbortController();
    const done = (async () => {
      while (!stop.signal.aborted) {
        try {
          const removed = await deleteExpiredPresence(this.#options.db, new Date());
          if (removed > 0) this.#options.logger.info({ removed }, 'removed expired executor presence rows');
        } catch (error) {
          this.#options.logger.warn({ err: error }, 'presence sweep failed; will retry');
        }
        await sleep(this.#options.beatIntervalMs, stop.signal);
      }
    })();
    this.#sweeper = { stop, done };
  }

  async stop(): Promise<void> {
    const sweeper = this.#sweeper;
    this.#sweeper = undefined;
    if (!sweeper) return;
    sweeper.stop.abort();
    await sweeper.done;
  }
}
