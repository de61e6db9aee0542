import type { Db } from '../db/database.js';
import { clearUnroutableRuns } from '../db/failures.repository.js';
import {
  deleteExpiredPresence,
  refreshPresence,
  removePresence,
  restorePresence,
  upsertPresence,
} from '../db/registry.repository.js';
import type { ExecutorPresence } from '../domain.js';
import type { Logger } from '../logger.js';
import { sleep } from '@jobstream/proto/concurrency';
import type { ExecutorSession } from './executor-session.js';

export interface PresenceTrackerOptions {
  db: Db;
  /**
   * Where beats refresh presence rows: connections of their own, so that a refresh never
   * waits for a connection behind the statements of an admin at full load (rows expired
   * then, and every admin marked the live executors' runs unroutable). Default `db`.
   */
  refreshDb?: Db;
  adminInstanceId: string;
  beatIntervalMs: number;
  logger: Logger;
}

/**
 * Presence expires after this many beat intervals without a refresh (an admin that died),
 * and a stream this admin holds is closed after about as long without a word from its executor.
 */
const MISSED_BEATS_BEFORE_EXPIRY = 3;
/** How often, in beat intervals, the streams of this admin are checked for silence. */
const SILENCE_CHECKS_PER_BEAT = 4;

/**
 * Mirrors this admin's executor streams into the shared registry table, so every
 * admin (and ListExecutors) sees who is online. Rows are written on Register,
 * refreshed by beats at most once per half beat interval, deleted when the stream
 * ends, and expire on their own when the admin holding them dies.
 */
export class PresenceTracker {
  readonly #options: PresenceTrackerOptions;
  readonly #lastRefresh = new Map<string, number>();
  /** The expiry (ms) of each session's row as this admin last wrote it. */
  readonly #written = new Map<string, number>();
  /** Sessions whose runs are made routable again on their next write (see beat()). */
  readonly #clearAgain = new Set<string>();
  /** This admin's open streams, watched for silence. */
  readonly #watched = new Set<ExecutorSession>();
  #sweeper: { stop: AbortController; done: Promise<void>; silence: NodeJS.Timeout } | undefined;

  constructor(options: PresenceTrackerOptions) {
    this.#options = options;
  }

  #expiresAt(from: number): Date {
    return new Date(from + MISSED_BEATS_BEFORE_EXPIRY * this.#options.beatIntervalMs);
  }

  #presence(
    session: ExecutorSession,
    load: Pick<
      ExecutorPresence,
      'lastBeatAt' | 'runningCount' | 'queuedCount' | 'unresponsiveLogIds' | 'eventLoopLagMs'
    >,
  ): ExecutorPresence {
    const { register } = session;
    return {
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
      scriptKinds: [...session.scriptKinds],
      connectedAt: session.connectedAt,
      ...load,
    };
  }

  async online(session: ExecutorSession): Promise<void> {
    const now = Date.now();
    await upsertPresence(
      this.#options.db,
      this.#presence(session, {
        lastBeatAt: session.connectedAt,
        runningCount: session.register.running.length,
        queuedCount: 0,
        unresponsiveLogIds: [],
        eventLoopLagMs: 0,
      }),
      this.#expiresAt(now),
    );
    this.#lastRefresh.set(session.sessionId, now);
    this.#written.set(session.sessionId, this.#expiresAt(now).getTime());
    if (!session.isClosed) {
      this.#watched.add(session);
      session.closedSignal.addEventListener('abort', () => this.#watched.delete(session), { once: true });
    }
  }

  /** Records a beat; writes to the database only when the last write is older than half an interval. */
  async beat(session: ExecutorSession): Promise<void> {
    const now = Date.now();
    const last = this.#lastRefresh.get(session.sessionId) ?? 0;
    if (now - last < this.#options.beatIntervalMs / 2) return;
    this.#lastRefresh.set(session.sessionId, now);
    const { logger } = this.#options;
    const db = this.#options.refreshDb ?? this.#options.db;
    const fields = { app: session.appName, instance: session.instanceName, sessionId: session.sessionId };
    const { lastBeatAt, runningCount, queuedCount, unresponsiveLogIds, eventLoopLagMs } = session.load;
    const load = { lastBeatAt, runningCount, queuedCount, unresponsiveLogIds, eventLoopLagMs };
    const expiresAt = this.#expiresAt(now);
    let lapsed = now >= (this.#written.get(session.sessionId) ?? 0) - this.#options.beatIntervalMs;
    if (!(await refreshPresence(db, session.sessionId, { ...load, expiresAt }))) {
      // No row of this session: a newer session of the instance replaced it, or the row
      // expired and was swept while this admin could not refresh it (the database was
      // unreachable for three beat intervals). A beat just came over this stream, so in
      // the second case the executor is alive and connected: its row goes back, instead
      // of cutting the stream (results in flight, a reconnect, fires failing until it is
      // back) over the database's outage.
      if (!(await restorePresence(db, this.#presence(session, load), expiresAt))) {
        logger.warn(fields, 'presence row replaced by a newer session; closing this stream');
        session.close('presence row taken over by a newer session of the same instance name');
        return;
      }
      // The stream may have ended meanwhile, its row removed before this one went in.
      if (session.isClosed) {
        await removePresence(db, session.sessionId);
        return;
      }
      logger.warn(fields, 'presence row had expired while the stream lived; restored it');
      lapsed = true;
    }
    if (session.isClosed) return;
    this.#written.set(session.sessionId, expiresAt.getTime());
    // Every admin's failure monitor marks the runs of a session whose row expired (or
    // went) as unroutable, and they would be declared lost after the grace period although
    // this beat shows the session alive. So when the row may have lapsed before this write
    // (by this admin's clock, kept a beat interval clear of skew), the marks are undone,
    // and once more on the next write: a monitor pass that read the row as lapsed just
    // before this write may commit its marks just after this clear.
    if (lapsed) this.#clearAgain.add(session.sessionId);
    else if (!this.#clearAgain.delete(session.sessionId)) return;
    const runs = await clearUnroutableRuns(db, session.instanceName, session.sessionId);
    if (runs > 0) logger.warn({ ...fields, runs }, 'runs of a session back from expiry are routable again');
  }

  async offline(session: ExecutorSession): Promise<void> {
    this.#lastRefresh.delete(session.sessionId);
    this.#written.delete(session.sessionId);
    this.#clearAgain.delete(session.sessionId);
    await removePresence(this.#options.db, session.sessionId);
  }

  /**
   * A stalled executor (a frozen process, a network path that drops packets without a
   * reset) keeps its stream open: nothing ends it before gRPC keepalive gives up, about
   * 15 s later, and until then runs would be routed to it and wait out their deadline.
   * Its beats stop, though: after three beat intervals of silence the stream is closed
   * like one that ended, so routing skips it at once, its presence row goes and its runs
   * become unroutable; when it wakes up it reconnects and reports its runs. Skipped when
   * this admin's own event loop was blocked, since then beats may be waiting unread.
   */
  #closeSilentStreams(now: number, blockedMs: number): void {
    const { beatIntervalMs, logger } = this.#options;
    if (blockedMs > beatIntervalMs) return;
    // One check period early, so routing stops no later than the row would expire
    // (which is when ListExecutors stops showing the executor).
    const silentAfterMs = (MISSED_BEATS_BEFORE_EXPIRY - 1 / SILENCE_CHECKS_PER_BEAT) * beatIntervalMs;
    for (const session of this.#watched) {
      const silentMs = now - session.lastHeardAt;
      if (silentMs <= silentAfterMs) continue;
      logger.warn(
        { app: session.appName, instance: session.instanceName, sessionId: session.sessionId, silentMs },
        'executor silent for three beat intervals; closing its stream',
      );
      session.close(`no beat for ${silentMs} ms`);
      // At once, even if ending the stream waits on a peer that does not read.
      this.offline(session).catch((error: unknown) =>
        logger.warn({ err: error, sessionId: session.sessionId }, 'could not remove presence row'),
      );
    }
  }

  /**
   * Starts deleting expired rows (left by admins that died) every beat interval, and
   * closing streams whose executor went silent.
   */
  start(): void {
    if (this.#sweeper) return;
    const periodMs = this.#options.beatIntervalMs / SILENCE_CHECKS_PER_BEAT;
    let lastCheck = Date.now();
    const silence = setInterval(() => {
      const now = Date.now();
      this.#closeSilentStreams(now, now - lastCheck - periodMs);
      lastCheck = now;
    }, periodMs);
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
    this.#sweeper = { stop, done, silence };
  }

  async stop(): Promise<void> {
    const sweeper = this.#sweeper;
    this.#sweeper = undefined;
    if (!sweeper) return;
    clearInterval(sweeper.silence);
    sweeper.stop.abort();
    await sweeper.done;
  }
}
