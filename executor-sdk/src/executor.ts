import os from 'node:os';
import path from 'node:path';
import { Connection, ExecutorStoppedError } from './connection.js';
import type { StreamSession } from './connection.js';
import { EventLoopLagMonitor } from './event-loop-lag.js';
import { RejectReason } from '@jobstream/proto/executor';
import type {
  AdminMessage,
  Beat,
  KillRequest,
  LogChunk,
  LogReadRequest,
  Register,
  RunRequest,
  RunResult,
  Welcome,
} from '@jobstream/proto/executor';
import type { Handler, HandlerHooks } from './handler.js';
import { HandlerRegistry } from './handler-registry.js';
import type { Logger } from './logger.js';
import type { ExecutorOptions, ResolvedOptions } from './options.js';
import { resolveOptions } from './options.js';
import { PROTOCOL_VERSION, positiveDurationMs } from '@jobstream/proto';
import { HeldRequests } from './held-requests.js';
import { ResultSpool } from './result-spool.js';
import { RunLogStore } from './run-log.js';
import { RunScheduler } from './run-scheduler.js';
import { ScriptRunner } from './script-runner.js';
import { SDK_NAME, SDK_VERSION } from './version.js';

/**
 * - `idle`: constructed; handlers can be registered.
 * - `starting`: start() called, no Welcome yet.
 * - `running`: welcomed at least once (it stays `running` while reconnecting).
 * - `stopping`: stop() called; no new runs are accepted.
 * - `stopped`: final; create a new Executor to start again.
 */
export type ExecutorState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const DEFAULT_BEAT_INTERVAL_MS = 10_000;
/** An admin asking for faster beats than this is misconfigured; the executor would only burn CPU. */
const MIN_BEAT_INTERVAL_MS = 50;
/** A stall shorter than this never expires run requests: a long GC pause is not a partition. */
const MIN_STALL_LIMIT_MS = 1_000;
const LOG_RETENTION_SWEEP_INTERVAL_MS = 24 * 60 * 60 * 1000;

/** A run request held for its start, with the stream it came on. */
interface HeldRunRequest {
  session: StreamSession;
  req: RunRequest;
}

/**
 * A jobstream executor: runs registered handlers for one admin group over one
 * long-lived gRPC stream.
 *
 * ```ts
 * const executor = new Executor({ adminAddresses: ['admin:9090'], appName: 'orders', accessToken });
 * executor.register('sendInvoices', async ctx => { ctx.log('param', ctx.param); return 'sent 12'; });
 * await executor.start();
 * // on SIGTERM (the library installs no signal handlers):
 * await executor.stop();
 * ```
 *
 * start() resolves on the first Welcome. It rejects with an ExecutorConnectError when
 * the admin refuses the executor before that (wrong token: UNAUTHENTICATED), and with
 * an ExecutorStoppedError when stop() comes first. Every other connection failure
 * (admin down, network) is retried with backoff until stop() — so start() can wait
 * indefinitely for an admin that is not up yet; race it with a timer if that matters.
 * Once welcomed, lost streams are re-established in the background, forever.
 */
export class Executor {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #handlers: HandlerRegistry;
  readonly #runLogs: RunLogStore;
  readonly #scheduler: RunScheduler;
  readonly #scripts: ScriptRunner;
  readonly #lag = new EventLoopLagMonitor(100, lagMs => this.#onLag(lagMs));
  #state: ExecutorState = 'idle';
  #spool: ResultSpool | undefined;
  #connection: Connection | undefined;
  #opened: Promise<void> | undefined;
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  #retentionTimer: NodeJS.Timeout | undefined;
  /** Run requests sent ahead of their start (RunRequest.start_at), until then. */
  readonly #held = new HeldRequests<HeldRunRequest>(
    due => void this.#handleHeld(due),
    // Start times are on the admin's clock, converted with the stream's latest estimate.
    entry => entry.session.adminClockOffsetMs,
  );
  /** Held requests are handled one batch after another, each in order. */
  #heldHandled: Promise<void> = Promise.resolve();
  /** Held requests released and not yet decided. */
  #heldDeciding = 0;

  /** @throws TypeError listing every invalid option. */
  constructor(options: ExecutorOptions) {
    this.#options = resolveOptions(options);
    this.#logger = this.#options.logger;
    this.#handlers = new HandlerRegistry({
      idleDestroyMs: this.#options.handlerIdleDestroyMs,
      logger: this.#logger,
    });
    this.#runLogs = new RunLogStore(path.join(this.#options.dataDir, 'logs'), this.#logger);
    this.#scripts = new ScriptRunner(this.#options.scripts, this.#logger);
    this.#scheduler = new RunScheduler({
      capacity: this.#options.capacity,
      pipelineWindow: this.#options.pipelineWindow,
      handlers: this.#handlers,
      runLogs: this.#runLogs,
      scripts: this.#scripts,
      logger: this.#logger,
      onResult: result => this.#onRunResult(result),
    });
  }

  get state(): ExecutorState {
    return this.#state;
  }

  get instanceName(): string {
    return this.#options.instanceName;
  }

  get dataDir(): string {
    return this.#options.dataDir;
  }

  /** The admin session of the current stream, while connected. */
  get sessionId(): string | undefined {
    return this.#connection?.session?.sessionId;
  }

  /**
   * Registers a handler under the name jobs refer to. Only before start(): the names
   * are announced in Register. See {@link HandlerHooks} for when init/destroy run.
   */
  register(name: string, handler: Handler, hooks?: HandlerHooks): this {
    if (this.#state !== 'idle')
      throw new Error(`handlers must be registered before start() (state: ${this.#state})`);
    this.#handlers.add(name, handler, hooks);
    return this;
  }

  /** Connects and resolves on the first Welcome. Calling it again returns the same promise. */
  start(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      return Promise.reject(new Error(`cannot start an executor that is ${this.#state}; create a new one`));
    }
    if (this.#startPromise !== undefined) return this.#startPromise;
    this.#state = 'starting';
    this.#startPromise = this.#start();
    return this.#startPromise;
  }

  /**
   * Stops taking runs (new ones are rejected SHUTTING_DOWN), drops queued runs, lets
   * running ones finish for up to `shutdownGracePeriodMs` and aborts the rest (outcome
   * SHUTDOWN), runs destroy hooks, waits up to `resultFlushTimeoutMs` for the admin to
   * acknowledge the results, then closes the stream. Results still unacknowledged stay
   * in the spool for the next process. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#stop();
    return this.#stopPromise;
  }

  async #start(): Promise<void> {
    if (this.#handlers.names().length === 0 && this.#scripts.kinds.length === 0) {
      this.#logger.warn({}, 'executor started without handlers or script kinds');
    }
    this.#opened = this.#openStorage();
    try {
      await this.#opened;
    } catch (err) {
      await this.stop();
      throw err;
    }
    if (this.#state !== 'starting') throw new ExecutorStoppedError('the executor was stopped while starting');

    this.#sweepOldLogs();
    if (this.#options.logRetentionDays > 0) {
      this.#retentionTimer = setInterval(() => this.#sweepOldLogs(), LOG_RETENTION_SWEEP_INTERVAL_MS);
      this.#retentionTimer.unref();
    }
    this.#lag.start();
    const o = this.#options;
    this.#connection = new Connection(
      {
        addresses: o.adminAddresses,
        accessToken: o.accessToken,
        credentials: o.channelCredentials,
        channelOptions: o.channelOptions,
        outboundQueueCapacity: o.outboundQueueCapacity,
        reconnectBaseDelayMs: o.reconnectBaseDelayMs,
        reconnectMaxDelayMs: o.reconnectMaxDelayMs,
        logger: this.#logger,
      },
      {
        buildRegister: () => this.#buildRegister(),
        onWelcome: (session, welcome) => this.#onWelcome(session, welcome),
        onMessage: (session, message) => this.#onMessage(session, message),
        onSessionClosed: session =>
          this.#logger.debug({ sessionId: session.sessionId }, 'executor stream closed'),
      },
    );
    try {
      await this.#connection.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #openStorage(): Promise<void> {
    await this.#runLogs.init();
    await this.#scripts.init();
    this.#spool = await ResultSpool.open(this.#options.dataDir, this.#logger);
  }

  async #stop(): Promise<void> {
    const previous = this.#state;
    this.#state = previous === 'idle' ? 'stopped' : 'stopping';
    if (previous === 'idle') return;
    this.#logger.info(
      { running: this.#scheduler.runningCount, queued: this.#scheduler.queuedCount },
      'executor stopping',
    );
    await this.#opened?.catch(() => {});
    // Refused now (the executor is stopping), not left without an answer.
    const held = this.#held.clear();
    if (held.length > 0) await this.#handleHeld(held);

    await this.#scheduler.shutdown(this.#options.shutdownGracePeriodMs);
    // The aborted scripts' process groups are ended (TERM, then KILL after their grace).
    await this.#scripts.stop();
    await this.#handlers.destroyAll(this.#logger);
    this.#runLogs.close();
    await this.#flushResults();
    await this.#connection?.close();

    clearInterval(this.#retentionTimer);
    this.#lag.stop();
    const unacked = this.#spool?.size ?? 0;
    await this.#spool?.close();
    this.#state = 'stopped';
    this.#logger.info({ unacknowledgedResults: unacked }, 'executor stopped');
  }

  /** Waits (bounded) for the admin to acknowledge what is left, if a stream is up to carry it. */
  async #flushResults(): Promise<void> {
    const spool = this.#spool;
    const session = this.#connection?.session;
    if (spool === undefined || spool.size === 0 || session === undefined) return;
    const done = new AbortController();
    const timer = setTimeout(() => done.abort(), this.#options.resultFlushTimeoutMs);
    const onClosed = (): void => done.abort();
    session.closedSignal.addEventListener('abort', onClosed, { once: true });
    try {
      await spool.whenEmpty(done.signal);
    } finally {
      clearTimeout(timer);
      session.closedSignal.removeEventListener('abort', onClosed);
    }
    if (spool.size > 0) {
      this.#logger.warn(
        { results: spool.size },
        'results not acknowledged before stop; they are re-sent on next start',
      );
    }
  }

  #buildRegister(): Register {
    const o = this.#options;
    return {
      appName: o.appName,
      instanceName: o.instanceName,
      hostname: os.hostname(),
      pid: process.pid,
      sdkName: SDK_NAME,
      sdkVersion: SDK_VERSION,
      handlers: this.#handlers.names(),
      capacity: o.capacity,
      labels: { ...o.labels },
      running: this.#scheduler.activeRefs(),
      unacknowledgedResults: this.#spool?.refs() ?? [],
      protocolVersion: PROTOCOL_VERSION,
      pipelineWindow: o.pipelineWindow,
      scriptKinds: this.#scripts.glueTypes,
    };
  }

  #onWelcome(session: StreamSession, welcome: Welcome): void {
    if (this.#state === 'starting') this.#state = 'running';
    const requested = positiveDurationMs(welcome.beatInterval);
    const intervalMs = requested > 0 ? Math.max(requested, MIN_BEAT_INTERVAL_MS) : DEFAULT_BEAT_INTERVAL_MS;
    // Off by at most the time Welcome took to arrive, which is well under any request deadline.
    session.adminClockOffsetMs = welcome.serverTime ? welcome.serverTime.getTime() - Date.now() : 0;
    session.stallLimitMs = Math.max(2 * intervalMs, MIN_STALL_LIMIT_MS);
    const timer = setInterval(() => session.offerBeat(this.#beat()), intervalMs);
    session.closedSignal.addEventListener('abort', () => clearInterval(timer), { once: true });
    void this.#resendResults(session);
  }

  /**
   * Why a run request must not be started, if it arrived too late: the admin records a
   * request it got no answer to as failed (and may retry it elsewhere), so starting it
   * now would run it twice.
   */
  #expiredRequest(session: StreamSession, req: RunRequest): string | undefined {
    // Read before the lag timer caught up, or after it found the stall and gave up the stream.
    const stalledMs = Math.max(this.#lag.currentLagMs(), session.stalledForMs ?? 0);
    if (stalledMs > session.stallLimitMs) {
      return `this executor was stalled for ${Math.round(stalledMs)} ms; the admin has likely given up on the request`;
    }
    if (req.answerBy) {
      const lateMs = Date.now() + session.adminClockOffsetMs - req.answerBy.getTime();
      if (lateMs > 0) return `it arrived ${lateMs} ms after its answer_by`;
    }
    return undefined;
  }

  /**
   * A stall this long (the process was stopped, or its loop blocked) means the admin has
   * likely closed the stream and given up on the requests it sent meanwhile: the stream
   * is replaced, and requests still read from it are refused.
   */
  #onLag(lagMs: number): void {
    const session = this.#connection?.session;
    if (!session || lagMs <= session.stallLimitMs) return;
    session.stalledForMs = lagMs;
    this.#logger.warn(
      { stalledMs: Math.round(lagMs), sessionId: session.sessionId },
      'executor was stalled; replacing its stream',
    );
    session.close();
  }

  #beat(): Beat {
    return {
      runningCount: this.#scheduler.runningCount,
      queuedCount: this.#scheduler.queuedCount,
      eventLoopLagMs: this.#lag.takeMaxLagMs(),
      sentAt: new Date(),
      unresponsiveRuns: this.#scheduler.unresponsiveRuns(),
    };
  }

  async #resendResults(session: StreamSession): Promise<void> {
    const spool = this.#spool;
    if (spool === undefined) return;
    const pending = spool.pendingResults();
    if (pending.length > 0)
      this.#logger.info({ results: pending.length }, 're-sending unacknowledged results');
    for (const result of pending) {
      if (!spool.has(result.logId, result.attempt)) continue;
      if (!(await session.send({ kind: { $case: 'runResult', value: result } }))) return;
    }
  }

  #onRunResult(result: RunResult): void {
    const spool = this.#spool;
    if (spool === undefined) return;
    // Sent at once, spooled meanwhile (see ResultSpool); a stream welcomed later re-sends it.
    spool
      .add(result)
      .catch((err: unknown) =>
        this.#logger.error({ err, logId: result.logId }, 'could not record run result'),
      );
    const session = this.#connection?.session;
    if (session !== undefined) void session.send({ kind: { $case: 'runResult', value: result } });
  }

  async #onMessage(session: StreamSession, message: AdminMessage): Promise<void> {
    const kind = message.kind;
    if (kind === undefined) return;
    try {
      switch (kind.$case) {
        case 'runRequest':
          if (kind.value.sentAt !== undefined) session.noteAdminClock(kind.value.sentAt.getTime());
          if (this.#holdUntilStart(session, kind.value)) return;
          await this.#onRunRequest(session, kind.value);
          return;
        case 'batch': {
          const { runRequests, resultAck } = kind.value;
          for (const request of runRequests) {
            await this.#onMessage(session, { kind: { $case: 'runRequest', value: request } });
          }
          if (resultAck !== undefined) {
            await this.#onMessage(session, { kind: { $case: 'resultAck', value: resultAck } });
          }
          return;
        }
        case 'killRequest':
          await this.#onKillRequest(session, kind.value);
          return;
        case 'idleBeatRequest': {
          const idle = this.#scheduler.isJobIdle(kind.value.jobId);
          await reply(
            session,
            kind.value.requestId,
            idle,
            idle ? RejectReason.REJECT_REASON_UNSPECIFIED : RejectReason.REJECT_REASON_BUSY,
            idle ? '' : `job ${kind.value.jobId} has a run running or queued on this executor`,
          );
          return;
        }
        case 'beatRequest':
          await reply(session, kind.value.requestId, true, RejectReason.REJECT_REASON_UNSPECIFIED, '');
          return;
        case 'logReadRequest':
          await this.#onLogReadRequest(session, kind.value);
          return;
        case 'resultAck': {
          const { results, refused } = kind.value;
          if (refused.length > 0) {
            // Kept would mean re-sent on every stream forever; the admin's word is final.
            this.#logger.warn(
              { refused: refused.map(run => `${run.logId}/${run.attempt}`) },
              'admin refused run results (run not sent to this executor, or already ended); dropping them',
            );
          }
          this.#spool
            ?.ack(refused.length > 0 ? [...results, ...refused] : results)
            .catch((err: unknown) => this.#logger.warn({ err }, 'result ack failed'));
          return;
        }
        case 'drain':
          this.#logger.info(
            { reason: kind.value.reason, address: session.address },
            'admin asked to drain; reconnecting',
          );
          session.close();
          return;
        case 'welcome':
          this.#logger.warn({ sessionId: session.sessionId }, 'unexpected second Welcome ignored');
          return;
      }
    } catch (err) {
      this.#logger.error({ err, kind: kind.$case }, 'failed to handle admin message');
      const requestId = 'requestId' in kind.value ? kind.value.requestId : undefined;
      if (requestId !== undefined) {
        await reply(
          session,
          requestId,
          false,
          RejectReason.REJECT_REASON_INVALID,
          `executor error: ${String(err)}`,
        );
      }
    }
  }

  async #onRunRequest(session: StreamSession, req: RunRequest): Promise<void> {
    const { requestId, logId, attempt } = req;
    // Re-dispatch after a reconnect: the run is already ours; running it again would double it.
    if (
      this.#scheduler.has(logId, attempt) ||
      this.#spool?.has(logId, attempt) === true ||
      this.#spool?.acknowledgedRecently(logId, attempt) === true
    ) {
      await reply(
        session,
        requestId,
        true,
        RejectReason.REJECT_REASON_UNSPECIFIED,
        'already accepted (duplicate request)',
      );
      return;
    }
    const expired = this.#expiredRequest(session, req);
    if (expired) {
      this.#logger.warn({ logId, attempt }, `run request refused: ${expired}`);
      await reply(session, requestId, false, RejectReason.REJECT_REASON_EXPIRED, expired);
      return;
    }
    // An ended stream's requests are never started, even if read after it ended: the
    // executor's next Register lists what it took, and the admin takes anything not
    // listed as never started (and sends it again).
    if (this.#state !== 'running' || session.closeRequested || session.closedSignal.aborted) {
      const why =
        this.#state === 'running' ? 'executor is draining this stream' : 'executor is shutting down';
      await reply(session, requestId, false, RejectReason.REJECT_REASON_SHUTTING_DOWN, why);
      return;
    }
    const admission = this.#scheduler.admit(req);
    if (!admission.accepted) {
      this.#logger.debug({ logId, attempt, reason: admission.rejectReason }, 'run rejected');
      await reply(session, requestId, false, admission.rejectReason, admission.message);
      return;
    }
    await reply(session, requestId, true, RejectReason.REJECT_REASON_UNSPECIFIED, admission.message);
    admission.release();
  }

  /**
   * Holds a run request whose `start_at` is still ahead (on the admin's clock, converted
   * with the stream's estimate of its offset: Welcome's, refined by each `sent_at`): it is
   * handled then, as if it arrived then. Returns false when it is to be handled now.
   */
  #holdUntilStart(session: StreamSession, req: RunRequest): boolean {
    if (req.startAt === undefined) return false;
    const at = req.startAt.getTime();
    // One that is due already still queues behind any held before it (or being decided):
    // scheduled runs are decided in the order of their times, then of their arrival.
    const ahead = at - session.adminClockOffsetMs > Date.now();
    if (!ahead && this.#held.size === 0 && this.#heldDeciding === 0) return false;
    this.#held.hold({ session, req }, at);
    return true;
  }

  #handleHeld(due: readonly HeldRunRequest[]): Promise<void> {
    this.#heldDeciding += due.length;
    this.#heldHandled = this.#heldHandled
      .then(async () => {
        for (const { session, req } of due) {
          try {
            // The same request, due now (an overwriting spread keeps the message's shape).
            await this.#onMessage(session, {
              kind: { $case: 'runRequest', value: { ...req, startAt: undefined, sentAt: undefined } },
            });
          } finally {
            this.#heldDeciding -= 1;
          }
        }
      })
      .catch((err: unknown) => this.#logger.error({ err }, 'failed to handle held run requests'));
    return this.#heldHandled;
  }

  async #onKillRequest(session: StreamSession, req: KillRequest): Promise<void> {
    // A run held for its start is queued as far as the admin knows: handled now, so that
    // the kill finds it (and its result says KILLED).
    const held = this.#held.take(entry => entry.req.logId === req.logId);
    if (held.length > 0) await this.#handleHeld(held);
    const killed = this.#scheduler.kill(req.logId, req.reason);
    if (killed > 0) {
      await reply(session, req.requestId, true, RejectReason.REJECT_REASON_UNSPECIFIED, '');
      return;
    }
    await reply(
      session,
      req.requestId,
      false,
      RejectReason.REJECT_REASON_UNKNOWN_RUN,
      `log ${req.logId} has no running or queued run on this executor`,
    );
  }

  async #onLogReadRequest(session: StreamSession, req: LogReadRequest): Promise<void> {
    const pendingRun = this.#scheduler.hasLog(req.logId);
    const slice = await this.#runLogs.read(req.logId, req.fromLine, req.maxLines);
    if (slice === undefined && !pendingRun) {
      await reply(
        session,
        req.requestId,
        false,
        RejectReason.REJECT_REASON_UNKNOWN_RUN,
        `no log for log ${req.logId} on this executor`,
      );
      return;
    }
    const fromLine = Math.max(1, req.fromLine);
    const chunk: LogChunk =
      slice === undefined
        ? { fromLine, toLine: fromLine - 1, lines: [], end: false }
        : {
            fromLine: slice.fromLine,
            toLine: slice.toLine,
            lines: slice.lines,
            end:
              !slice.more &&
              !pendingRun &&
              !this.#runLogs.isActive(req.logId) &&
              !this.#scheduler.hasLog(req.logId),
          };
    await reply(session, req.requestId, true, RejectReason.REJECT_REASON_UNSPECIFIED, '', chunk);
  }

  #sweepOldLogs(): void {
    const days = this.#options.logRetentionDays;
    if (days === 0) return;
    const cutoff = new Date(Date.now() - days * 24 * 60 * 60 * 1000);
    this.#runLogs.deleteOlderThan(cutoff).then(
      deleted => {
        if (deleted > 0) this.#logger.info({ deleted, olderThanDays: days }, 'deleted old run logs');
      },
      (err: unknown) => this.#logger.warn({ err }, 'run log retention sweep failed'),
    );
  }
}

function reply(
  session: StreamSession,
  requestId: string,
  accepted: boolean,
  rejectReason: RejectReason,
  message: string,
  logChunk?: LogChunk,
): Promise<boolean> {
  return session.send({
    kind: { $case: 'reply', value: { requestId, accepted, rejectReason, message, logChunk } },
  });
}
