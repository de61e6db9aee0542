import type { Db } from '../db/database.js';
import {
  claimDueJobs,
  findJobsByIds,
  giveUpFire,
  markFiresSkipped,
  reclaimOrphanedFires,
  releaseAdminLease,
  renewAdminLease,
  scheduleFixDelayAfterRun,
  takeFires,
  type ClaimedFire,
} from '../db/scheduler.repository.js';
import { FireNotSentError, type Dispatcher, type PreparedFire } from '../dispatch/dispatcher.js';
import type { Job } from '../domain.js';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import type { QuartzCronCompiler } from '../schedule/cron/index.js';
import { compileSchedule, type Schedule } from '../schedule/schedule.js';
import { sleep } from '@jobstream/proto/concurrency';
import { FireTimer } from './fire-timer.js';
import { planJobFires } from './plan-fires.js';

export interface SchedulerOptions {
  db: Db;
  dispatcher: Dispatcher;
  logger: Logger;
  metrics: AdminMetrics;
  adminInstanceId: string;
  defaultTimeZone: string;
  /**
   * One per process (app.ts), shared with the admin service: jobs with the same expression or
   * zone share its caches.
   */
  cronCompiler: QuartzCronCompiler;
  misfireThresholdMs: number;
  /** How far ahead due fires are claimed. */
  lookaheadMs?: number;
  /** How often fires of dead admins are looked for (and due jobs claimed at the latest). */
  pollIntervalMs?: number;
  /**
   * How often due jobs are claimed, again at once while batches come back full. Short, so
   * that a pass is small: a pass plans and records a lookahead's worth of the fires that
   * became due since the last one, on the event loop that sends fires, and at 1,000 fires/s
   * a pass every 500 ms held it 10-15 ms, late for the fires due meanwhile. Default 100 ms
   * (or pollIntervalMs when shorter); 50 ms after a pass that claimed fires.
   */
  claimIntervalMs?: number;
  /** Lease of this admin: peers take over its claimed fires once it lapses. */
  leaseTtlMs?: number;
  /**
   * Where the lease is renewed: connections of their own, so that a renewal never waits
   * for a connection behind the statements of an admin at full load (it lapsed then, and
   * its peers took over thousands of fires it was sending). Default `db`.
   */
  leaseDb?: Db;
  claimBatchSize?: number;
  /**
   * Fires this admin holds at most between their claim and their executor's answer. At
   * the bound claiming pauses, so executors that cannot keep up slow the claim loop down
   * instead of queues growing without bound; fires claimed late then meet the misfire
   * rule as what they are, late.
   */
  maxFiresInFlight?: number;
}

interface HeldFire {
  fire: ClaimedFire;
  job: Job;
  /** Sends that failed before anything went out (see #send). */
  unsent?: number;
  /** Routed ahead and marked by its take (see Dispatcher.prepareFire). */
  prepared?: PreparedFire;
  /**
   * Sent at its take, ahead of its time, to an executor that holds it until then (see
   * RunOrder.startAt): its start waits for no pass of this admin's event loop.
   */
  ahead?: boolean;
}

/**
 * A fire whose send failed before anything went out stays PENDING and claimed by this
 * admin, where no pass looks for it: it is sent again with a backoff up to this cap, for
 * about a minute (a database restart or failover), then recorded FAILED (see #giveUp).
 */
const RESEND_MAX_DELAY_MS = 5_000;
const PAUSE_LOG_INTERVAL_MS = 10_000;
const RESEND_ATTEMPTS = 16;

/**
 * Fires are checked (taken) this long before their time, in 10 ms buckets, so that a
 * steady stream of fires costs one query per bucket and the send itself is on time.
 */
const TAKE_LEAD_MS = 50;
const TAKE_BUCKET_MS = 10;
/** The default of SchedulerOptions.claimIntervalMs. */
const CLAIM_INTERVAL_MS = 100;
/** The wait after a claim pass that claimed fires or was paused (see #claim). */
const BUSY_CLAIM_INTERVAL_MS = 50;

/**
 * Fires scheduled jobs, in cooperation with every other admin on the same database.
 *
 * - A claim loop locks due jobs with SKIP LOCKED, records their fires up to `lookaheadMs`
 *   ahead and advances next fire times in one transaction (see claimDueJobs). Next fire
 *   times are computed there, off the hot path.
 * - The recorded fires wait in one in-memory timer (a heap) and are sent at their
 *   scheduled millisecond; each send is an independent task, so a job whose executors
 *   are slow to answer never delays another job's fire.
 * - Each admin renews a lease; fires claimed by an admin whose lease lapsed are taken
 *   over by the others (late, with the misfire policy when past the threshold).
 */
export class Scheduler {
  readonly #options: Required<Omit<SchedulerOptions, 'claimIntervalMs'>> &
    Pick<SchedulerOptions, 'claimIntervalMs'>;
  readonly #schedules = new Map<string, { key: string; schedule: Schedule }>();
  readonly #takeTimer: FireTimer<HeldFire>;
  readonly #sendTimer: FireTimer<HeldFire>;
  #loops: { stop: AbortController; done: Promise<void>[] } | undefined;
  /** Takes and sends under way, and what waits for them all to end (stop). */
  #inFlight = 0;
  #onIdle: (() => void)[] = [];
  /** Fires taken over from a dead admin whose handling failed: handled on the next pass. */
  #unhandledOrphans: ClaimedFire[] = [];
  /** Fires in a take (routing, marking) and in a send (waiting for the executor's answer). */
  #firesTaking = 0;
  #firesSending = 0;
  #claimPauseLoggedAt = 0;
  #leaseRenewedAt = 0;

  constructor(options: SchedulerOptions) {
    this.#options = {
      lookaheadMs: 2_000,
      pollIntervalMs: 500,
      leaseTtlMs: 1_500,
      claimBatchSize: 1_000,
      maxFiresInFlight: 10_000,
      leaseDb: options.db,
      ...options,
    };
    this.#takeTimer = new FireTimer(held => this.#take(held));
    this.#sendTimer = new FireTimer(held => {
      for (const fire of held) this.#send(fire);
    });
  }

  /** The compiled schedule of a job, cached until its schedule fields change. */
  scheduleOf(job: Pick<Job, 'id' | 'scheduleType' | 'scheduleConf' | 'timeZone'>): Schedule {
    const timeZone = job.timeZone || this.#options.defaultTimeZone;
    const key = `${job.scheduleType}|${job.scheduleConf}|${timeZone}`;
    const cached = this.#schedules.get(job.id);
    if (cached?.key === key) return cached.schedule;
    const schedule = compileSchedule(
      job.scheduleType,
      job.scheduleConf,
      timeZone,
      this.#options.cronCompiler,
    );
    this.#schedules.set(job.id, { key, schedule });
    return schedule;
  }

  /** Starts claiming and firing; `advertisedAddress` is where peers reach this admin (AdminPeerService). */
  async start(advertisedAddress: string): Promise<void> {
    if (this.#loops) return;
    const { leaseDb: db, leaseTtlMs } = this.#options;
    await this.#renewLease(db, advertisedAddress);
    const stop = new AbortController();
    this.#loops = {
      stop,
      done: [
        this.#loop('lease', leaseTtlMs / 3, stop.signal, () => this.#renewLease(db, advertisedAddress)),
        this.#loop('claim', this.#claimIntervalMs(), stop.signal, () => this.#claim()),
        this.#loop('reclaim', this.#options.pollIntervalMs, stop.signal, () => this.#reclaim()),
      ],
    };
  }

  async #renewLease(db: Db, advertisedAddress: string): Promise<void> {
    const { adminInstanceId, leaseTtlMs, logger } = this.#options;
    const startedAt = Date.now();
    await renewAdminLease(db, adminInstanceId, advertisedAddress, leaseTtlMs);
    const sinceLast = Date.now() - this.#leaseRenewedAt;
    // Renewals come every third of the lease: one that needed more than two thirds of it
    // left the peers a moment from taking this admin's fires over.
    if (this.#leaseRenewedAt > 0 && sinceLast > (2 * leaseTtlMs) / 3) {
      logger.warn(
        { sinceLastMs: sinceLast, statementMs: Date.now() - startedAt, leaseMs: leaseTtlMs },
        'admin lease renewed late',
      );
    }
    this.#leaseRenewedAt = Date.now();
  }

  /**
   * Stops claiming and sending. Fires claimed but not sent are left to the peers: the
   * lease is released at once, so another admin takes them over on its next pass.
   */
  async stop(): Promise<void> {
    const loops = this.#loops;
    if (!loops) return;
    this.#loops = undefined;
    loops.stop.abort();
    await Promise.allSettled(loops.done);
    this.#takeTimer.stop();
    this.#sendTimer.stop();
    if (this.#inFlight > 0) await new Promise<void>(resolve => this.#onIdle.push(resolve));
    try {
      await releaseAdminLease(this.#options.db, this.#options.adminInstanceId);
    } catch (error) {
      this.#options.logger.warn({ err: error }, 'could not release the admin lease; it lapses on its own');
    }
  }

  /**
   * FIX_DELAY: schedules the next fire once a scheduled run failed to start. Written
   * again with a backoff until the database takes it (a restart, a failover): dropped,
   * the job would wait forever for a result its failed fire never produces. Only stopping
   * the scheduler gives up.
   */
  async onRunFinished(logId: string, finishedAt: Date): Promise<void> {
    const signal = this.#loops?.stop.signal;
    for (let attempt = 0; ; attempt += 1) {
      try {
        await scheduleFixDelayAfterRun(this.#options.db, logId, finishedAt);
        return;
      } catch (error) {
        if (!signal || signal.aborted) throw error;
        this.#options.logger.warn(
          { err: error, logId },
          'planning the next fire of a FIX_DELAY job failed; retrying',
        );
        await sleep(Math.min(RESEND_MAX_DELAY_MS, 100 * 2 ** attempt), signal);
      }
    }
  }

  /**
   * Runs `pass` until stopped: again at once when it returns true, after the number of
   * milliseconds it returns, else after `intervalMs`.
   */
  async #loop(
    name: string,
    intervalMs: number,
    signal: AbortSignal,
    pass: () => Promise<unknown>,
  ): Promise<void> {
    while (!signal.aborted) {
      let waitMs = intervalMs;
      try {
        const result = await pass();
        if (result === true) waitMs = 0;
        else if (typeof result === 'number') waitMs = result;
      } catch (error) {
        this.#options.logger.warn({ err: error, loop: name }, 'scheduler pass failed; retrying');
      }
      if (waitMs > 0) await sleep(waitMs, signal);
    }
  }

  /**
   * One claim pass. Returns true when the batch was full and more jobs may be due, a
   * shorter wait (BUSY_CLAIM_INTERVAL_MS) when it claimed fires or was paused by the bound
   * on fires in flight: passes stay small while fires keep coming, and a pause ends soon
   * after room is made.
   */
  async #claim(): Promise<boolean | number> {
    const { db, adminInstanceId, claimBatchSize, lookaheadMs, misfireThresholdMs, logger, metrics } =
      this.#options;
    const room = this.#options.maxFiresInFlight - this.firesInFlight;
    if (room <= 0) {
      // Once per pause, and at most every PAUSE_LOG_INTERVAL_MS under sustained overload.
      if (Date.now() - this.#claimPauseLoggedAt >= PAUSE_LOG_INTERVAL_MS) {
        this.#claimPauseLoggedAt = Date.now();
        logger.warn(
          { firesInFlight: this.firesInFlight },
          'claiming paused: the executors have not answered the fires this admin holds',
        );
      }
      return this.#busyClaimIntervalMs();
    }
    const now = new Date();
    const horizon = new Date(now.getTime() + lookaheadMs);
    let missed = 0;
    const { claimed, jobs, skipped } = await claimDueJobs(
      db,
      { horizon, limit: Math.min(claimBatchSize, room), adminInstanceId },
      dueJobs => {
        // A job due every second yields a fire per second of lookahead: the bound on fires
        // in flight counts fires, so jobs past it are left unplanned (and unadvanced) for a
        // later pass.
        let firesPlanned = 0;
        const plans = dueJobs.flatMap(job => {
          if (firesPlanned >= room) return [];
          try {
            const plan = planJobFires(job, this.scheduleOf(job), {
              now,
              horizon,
              misfireThresholdMs,
              maxFiresPerJob: 100,
            });
            firesPlanned += plan.fires.length;
            return [plan];
          } catch (error) {
            // A schedule that no longer compiles (edited in the database by hand) must not
            // block every other job: stop this one, loudly.
            logger.error({ err: error, jobId: job.id }, 'job schedule is invalid; stopping the job');
            return [
              {
                fires: [],
                missed: 0,
                advance: {
                  jobId: job.id,
                  nextTriggerAt: null,
                  lastTriggerAt: null,
                  status: 'STOPPED' as const,
                },
              },
            ];
          }
        });
        missed = plans.reduce((sum, plan) => sum + plan.missed, 0);
        return { fires: plans.flatMap(plan => plan.fires), advances: plans.map(plan => plan.advance) };
      },
    );
    if (missed > 0) {
      metrics.misfires.inc(missed);
      logger.warn(
        { missed, skipped: skipped.map(fire => ({ jobId: fire.jobId, scheduledAt: fire.scheduledAt })) },
        'misfired schedules found (later than the misfire threshold)',
      );
    }
    const byId = new Map(jobs.map(job => [job.id, job]));
    for (const fire of claimed) this.#hold(fire, byId.get(fire.jobId)!, now);
    if (jobs.length >= claimBatchSize) return true;
    return jobs.length > 0 ? this.#busyClaimIntervalMs() : false;
  }

  /** Takes over fires of admins that died; returns true when there may be more. */
  async #reclaim(): Promise<boolean> {
    const { db, adminInstanceId } = this.#options;
    // Claimed by this admin now, where no other pass looks: kept until handled.
    const reclaimed = await reclaimOrphanedFires(db, adminInstanceId, 1_000);
    // Being sent when their admin stopped: asked again on the executor they name. (The
    // fires not sent yet are logged as they are handled, see #handleOrphans.)
    if (reclaimed.inDoubt.length > 0) {
      this.#options.logger.warn(
        { runs: reclaimed.inDoubt.length },
        'took over runs in doubt of an admin whose lease lapsed; asking their executors again',
      );
      this.#options.dispatcher.settleInDoubt(reclaimed.inDoubt);
    }
    const orphans = [...this.#unhandledOrphans, ...reclaimed.fires];
    this.#unhandledOrphans = [];
    if (orphans.length === 0) return reclaimed.inDoubt.length >= 1_000;
    try {
      await this.#handleOrphans(orphans);
    } catch (error) {
      this.#unhandledOrphans = orphans;
      throw error;
    }
    return reclaimed.fires.length + reclaimed.inDoubt.length >= 1_000;
  }

  /**
   * Holds orphaned fires still on time, and applies the misfire strategy to late ones.
   * Every write comes before any fire is held, so a failed pass can run again without
   * holding a fire twice.
   */
  async #handleOrphans(orphans: readonly ClaimedFire[]): Promise<void> {
    const { db, misfireThresholdMs, logger, metrics } = this.#options;
    const jobs = await findJobsByIds(
      db,
      orphans.map(fire => fire.jobId),
    );
    const now = new Date();
    const skip: ClaimedFire[] = [];
    const hold: ClaimedFire[] = [];
    const fireOnceNow = new Map<string, ClaimedFire>();
    for (const fire of orphans) {
      const job = jobs.get(fire.jobId);
      if (!job) continue;
      const late = now.getTime() - fire.scheduledAt.getTime() > misfireThresholdMs;
      if (!late) {
        hold.push(fire);
      } else if (job.misfireStrategy === 'FIRE_ONCE_NOW') {
        // Several missed fires of one job collapse into one fire now.
        const kept = fireOnceNow.get(job.id);
        if (kept) skip.push(kept.scheduledAt < fire.scheduledAt ? kept : fire);
        if (!kept || kept.scheduledAt < fire.scheduledAt) fireOnceNow.set(job.id, fire);
      } else {
        skip.push(fire);
      }
    }
    const lateBoundary = now.getTime() - misfireThresholdMs;
    for (const fire of fireOnceNow.values()) {
      const job = jobs.get(fire.jobId)!;
      // Fire the missed fire once now, unless the job has fired since (a later fire is
      // recorded) or its own schedule is late too, in which case the claim path fires
      // it once (a MISFIRE fire): either way the outage yields one catch-up fire.
      const firedSince = job.lastTriggerAt !== null && job.lastTriggerAt > fire.scheduledAt;
      const scheduleLateToo = job.nextTriggerAt !== null && job.nextTriggerAt.getTime() < lateBoundary;
      if (firedSince || scheduleLateToo) skip.push(fire);
      else hold.push(fire);
    }
    await markFiresSkipped(
      db,
      skip.map(fire => fire.logId),
      'misfire: taken over from an admin that died, too late; skipped by the misfire strategy',
    );
    if (skip.length > 0) metrics.misfires.inc(skip.length);
    for (const fire of hold) this.#hold(fire, jobs.get(fire.jobId)!, now);
    logger.info({ reclaimed: orphans.length, skipped: skip.length }, 'took over fires of an admin that died');
  }

  #claimIntervalMs(): number {
    return this.#options.claimIntervalMs ?? Math.min(CLAIM_INTERVAL_MS, this.#options.pollIntervalMs);
  }

  #busyClaimIntervalMs(): number {
    return Math.min(BUSY_CLAIM_INTERVAL_MS, this.#claimIntervalMs());
  }

  /** Fires claimed by this admin and not yet answered by their executor (or given up). */
  get firesInFlight(): number {
    return this.#takeTimer.size + this.#sendTimer.size + this.#firesTaking + this.#firesSending;
  }

  #hold(fire: ClaimedFire, job: Job, now: Date): void {
    const sendAt = Math.max(fire.scheduledAt.getTime(), now.getTime());
    const takeAt = Math.floor((sendAt - TAKE_LEAD_MS) / TAKE_BUCKET_MS) * TAKE_BUCKET_MS;
    this.#takeTimer.add({ fire, job }, takeAt);
  }

  #take(bucket: HeldFire[]): void {
    const { db, adminInstanceId, logger, dispatcher } = this.#options;
    // A fire can be held twice: taken over from a peer, taken over by that peer, and taken
    // over again (every lease lapses at once when PostgreSQL restarts). Sent once: the
    // take answers per fire, and two entries routed apart would both go out.
    const seen = new Set<string>();
    const held = bucket.filter(entry => !seen.has(entry.fire.logId) && seen.add(entry.fire.logId));
    this.#firesTaking += held.length;
    const taking = (async () => {
      // Routed ahead, so that the take marks each fire with its executor and the send, on
      // time, is only a write to a stream.
      const prepared = await Promise.all(held.map(entry => dispatcher.prepareFire(entry.job, entry.fire)));
      const taken = await takeFires(
        db,
        held.map((entry, index) => ({ logId: entry.fire.logId, mark: prepared[index]?.mark })),
        adminInstanceId,
      );
      return { prepared, taken };
    })().then(
      ({ prepared, taken }) => {
        this.#firesTaking -= held.length;
        const markedBefore: string[] = [];
        held.forEach((entry, index) => {
          const how = taken.get(entry.fire.logId);
          if (how === undefined) return;
          if (how === 'marked-before') markedBefore.push(entry.fire.logId);
          else {
            // A literal: spreads that add properties are V8's slow path, and this is per fire.
            const route = how === 'marked' ? prepared[index] : undefined;
            const ready: HeldFire = {
              fire: entry.fire,
              job: entry.job,
              unsent: entry.unsent,
              prepared: route,
              ahead: route?.target.session.holdsUntilStartAt === true,
            };
            if (ready.ahead) this.#send(ready);
            else this.#sendTimer.add(ready, entry.fire.scheduledAt.getTime());
          }
        });
        // Named an executor before this take (a take whose answer was lost): the request
        // may be there, so it is asked again there with the same (log, attempt).
        if (markedBefore.length > 0) dispatcher.settleInDoubt(markedBefore);
      },
      (error: unknown) => {
        this.#firesTaking -= held.length;
        // Still claimed by us: the fires stay PENDING and this admin's lease keeps them.
        // Retry shortly; if this admin dies instead, a peer takes them over.
        logger.warn({ err: error, fires: held.length }, 'taking fires failed; retrying');
        for (const entry of held) this.#takeTimer.add(entry, Date.now() + 100);
      },
    );
    this.#track(taking);
  }

  #send(held: HeldFire): void {
    const { fire, job } = held;
    const { fireLateness } = this.#options.metrics;
    // A fire sent ahead is answered when the executor starts it: its lateness is known then.
    if (held.ahead !== true)
      fireLateness.observe(Math.max(0, Date.now() - fire.scheduledAt.getTime()) / 1000);
    this.#firesSending += 1;
    const sending = this.#options.dispatcher.fire(job, fire, held.prepared, held.ahead).then(
      logs => {
        this.#firesSending -= 1;
        if (held.ahead === true) {
          fireLateness.observe(Math.max(0, Date.now() - fire.scheduledAt.getTime()) / 1000);
        }
        if (job.scheduleType === 'FIX_DELAY' && logs.every(log => log.dispatchOutcome === 'FAILED')) {
          return this.onRunFinished(fire.logId, new Date());
        }
      },
      (error: unknown) => {
        this.#firesSending -= 1;
        const unsent = (held.unsent ?? 0) + 1;
        if (error instanceof FireNotSentError && unsent < RESEND_ATTEMPTS) {
          // Taken again first: a fire withdrawn or taken over meanwhile is not sent.
          const delayMs = Math.min(RESEND_MAX_DELAY_MS, 100 * 2 ** unsent);
          this.#options.logger.warn(
            { err: error, logId: fire.logId, jobId: job.id, retryInMs: delayMs },
            'sending a fire failed before anything went out; retrying',
          );
          this.#takeTimer.add({ ...held, unsent, prepared: undefined, ahead: false }, Date.now() + delayMs);
          return;
        }
        return this.#giveUp(held, error);
      },
    );
    this.#track(sending);
  }

  /**
   * The safety net under #send: a dispatch that threw left the fire PENDING and claimed
   * by this admin, where no pass of this admin nor of its peers (its lease is alive)
   * would ever look at it again, a fire neither run nor failed. It is recorded FAILED
   * when nothing went out, and otherwise released to the failure monitor, which fails it
   * after its grace period unless the executor reports a result first. Written with a
   * backoff until the database takes it; if this admin stops first, its lease is
   * released and a peer takes the fire over.
   */
  async #giveUp(held: HeldFire, error: unknown): Promise<void> {
    const { db, adminInstanceId, logger } = this.#options;
    const { fire, job } = held;
    const reason = error instanceof Error ? error.message : String(error);
    const notSent = error instanceof FireNotSentError;
    const message = notSent
      ? `trigger failed: not sent after ${RESEND_ATTEMPTS} attempts: ${reason}`
      : `dispatch failed, the run request may have gone out: ${reason}`;
    logger.error({ err: error, logId: fire.logId, jobId: job.id, notSent }, 'sending a fire failed');
    const signal = this.#loops?.stop.signal;
    for (let attempt = 0; signal && !signal.aborted; attempt += 1) {
      try {
        const given = await giveUpFire(
          db,
          fire.logId,
          adminInstanceId,
          notSent ? 'FAILED' : 'RELEASED',
          message,
        );
        if (given && notSent && job.scheduleType === 'FIX_DELAY')
          await this.onRunFinished(fire.logId, new Date());
        return;
      } catch (writeError) {
        logger.warn(
          { err: writeError, logId: fire.logId },
          'recording a fire that could not be sent failed; retrying',
        );
        await sleep(Math.min(RESEND_MAX_DELAY_MS, 100 * 2 ** attempt), signal);
      }
    }
  }

  /** Counted, not kept: one settle handler per fire instead of a set entry and two promises. */
  #track(promise: Promise<unknown>): void {
    this.#inFlight += 1;
    const settled = () => {
      this.#inFlight -= 1;
      if (this.#inFlight === 0) for (const resolve of this.#onIdle.splice(0)) resolve();
    };
    promise.then(settled, settled);
  }
}
