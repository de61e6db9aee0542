import { ChannelCredentials, ClientError, Metadata, Status, createChannel, createClient } from 'nice-grpc';
import type { ChannelOptions } from 'nice-grpc';
import { fullJitterDelay } from './backoff.js';
import { BoundedQueue, QueueClosedError, sleep } from '@jobstream/proto/concurrency';
import { ExecutorServiceDefinition } from '@jobstream/proto/executor';
import type { AdminMessage, Beat, ExecutorMessage, Register, Welcome } from '@jobstream/proto/executor';
import type { Logger } from './logger.js';
import { packExecutorMessages } from './batching.js';
import { encodeAsGiven, MAX_BATCH_ITEMS } from '@jobstream/proto';

/**
 * How long a closing stream may take to flush and be ended by the admin after the
 * executor half-closed it, before the call is cancelled.
 */
const STREAM_CLOSE_TIMEOUT_MS = 1_000;

/** An admin that accepted the call but does not answer Register is treated as down. */
const WELCOME_TIMEOUT_MS = 10_000;
/** How long a sample of the admin's clock counts (see StreamSession.noteAdminClock). */
const CLOCK_OFFSET_WINDOW_MS = 10_000;

/**
 * Before the first Welcome these mean the configuration is wrong (token, app name,
 * address of something that is not an admin), so start() fails instead of retrying
 * forever. Later they are logged and retried: the admin side may get fixed.
 */
const FATAL_BEFORE_FIRST_WELCOME: ReadonlySet<Status> = new Set([
  Status.UNAUTHENTICATED,
  Status.PERMISSION_DENIED,
  Status.INVALID_ARGUMENT,
  Status.UNIMPLEMENTED,
]);

/** Why start() failed: the admin refused this executor. */
export class ExecutorConnectError extends Error {
  override readonly name = 'ExecutorConnectError';
  /** The gRPC status code, as on nice-grpc's ClientError (for example Status.UNAUTHENTICATED). */
  readonly code: Status;
  /** The status code's name, for example "UNAUTHENTICATED". */
  readonly codeName: string;
  readonly address: string;

  constructor(code: Status, address: string, details: string, cause: unknown) {
    const codeName = Status[code] ?? String(code);
    const hint =
      code === Status.UNAUTHENTICATED ? ' (check accessToken: it must be the token of this appName)' : '';
    super(`admin ${address} refused the executor with ${codeName}: ${details}${hint}`, { cause });
    this.code = code;
    this.codeName = codeName;
    this.address = address;
  }
}

/** Thrown by start() when stop() is called before the first Welcome arrived. */
export class ExecutorStoppedError extends Error {
  override readonly name = 'ExecutorStoppedError';
}

export interface ConnectionOptions {
  addresses: readonly string[];
  /** Undefined when a client certificate authenticates the executor. */
  accessToken: string | undefined;
  credentials: ChannelCredentials | undefined;
  channelOptions: ChannelOptions;
  outboundQueueCapacity: number;
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  logger: Logger;
}

/** What the connection asks of its owner. */
export interface ConnectionHandlers {
  /** The Register for a new stream, built when the stream opens (it lists running runs). */
  buildRegister(): Register;
  onWelcome(session: StreamSession, welcome: Welcome): void;
  /** Handles one admin message after Welcome. Messages are handed over one at a time. */
  onMessage(session: StreamSession, message: AdminMessage): Promise<void>;
  onSessionClosed(session: StreamSession): void;
}

/** One Connect stream: its outgoing queue and how it ends. */
export class StreamSession {
  readonly address: string;
  readonly outbound: BoundedQueue<ExecutorMessage>;
  sessionId = '';
  welcomed = false;
  /**
   * Admin clock minus local clock: measured at Welcome, then refined by the run requests'
   * `sent_at` (see noteAdminClock). Never above the true offset while neither clock is set
   * back, since every sample is short of it by the message's transit time: a time on the
   * admin's clock converted with it comes out late, never early.
   */
  adminClockOffsetMs = 0;
  #offsetWindowStartedAt = 0;
  #offsetWindowBest = Number.NEGATIVE_INFINITY;
  #offsetPreviousBest = Number.NEGATIVE_INFINITY;
  /** A run request read after the process was stalled longer than this is refused. */
  stallLimitMs = Number.POSITIVE_INFINITY;
  /** Set when a stall over stallLimitMs happened while this stream was open. */
  stalledForMs: number | undefined;
  readonly #call = new AbortController();
  readonly #closed = new AbortController();
  #closeRequested = false;
  #closeTimer: NodeJS.Timeout | undefined;

  /**
   * One sample of the admin's clock: `adminTimeMs` read by the admin as it handed a message
   * to the stream, read here now. The offset is the best (largest: least delayed) sample
   * of the last one or two windows, so that a clock set back on either side stops
   * counting after a window or two.
   */
  noteAdminClock(adminTimeMs: number): void {
    const now = Date.now();
    if (now - this.#offsetWindowStartedAt >= CLOCK_OFFSET_WINDOW_MS) {
      this.#offsetPreviousBest = this.#offsetWindowBest;
      this.#offsetWindowBest = Number.NEGATIVE_INFINITY;
      this.#offsetWindowStartedAt = now;
    }
    const sample = adminTimeMs - now;
    if (sample > this.#offsetWindowBest) this.#offsetWindowBest = sample;
    this.adminClockOffsetMs = Math.max(this.#offsetWindowBest, this.#offsetPreviousBest);
  }

  constructor(address: string, queueCapacity: number) {
    this.address = address;
    this.outbound = new BoundedQueue<ExecutorMessage>(queueCapacity);
  }

  /** Cancels the gRPC call when aborted. */
  get callSignal(): AbortSignal {
    return this.#call.signal;
  }

  /** Aborted when the stream is over; per-stream timers hang off it. */
  get closedSignal(): AbortSignal {
    return this.#closed.signal;
  }

  /** True once the executor decided to end this stream (drain or stop): take no new runs on it. */
  get closeRequested(): boolean {
    return this.#closeRequested;
  }

  /** Resolves false when the stream is closing and the message was dropped. */
  send(message: ExecutorMessage): Promise<boolean> {
    return this.outbound.push(message).then(
      () => true,
      (error: unknown) => {
        if (error instanceof QueueClosedError) return false;
        throw error;
      },
    );
  }

  /**
   * What the gRPC writer sends: the queue's messages, what was queued in one event-loop
   * turn packed into ExecutorBatch envelopes (protocol 2).
   */
  async *outboundMessages(): AsyncGenerator<ExecutorMessage, void, undefined> {
    for await (const messages of this.outbound.batches(MAX_BATCH_ITEMS)) {
      yield* packExecutorMessages(messages, MAX_BATCH_ITEMS);
    }
  }

  offerBeat(beat: Beat): boolean {
    return this.outbound.offerLatest({ kind: { $case: 'beat', value: beat } });
  }

  /**
   * Ends the stream gracefully: queued messages are written, the stream is half-closed
   * and the admin ends its side; if that takes too long the call is cancelled.
   */
  close(): void {
    if (this.#closeRequested || this.#closed.signal.aborted) return;
    this.#closeRequested = true;
    this.outbound.close();
    this.#closeTimer = setTimeout(() => this.#call.abort(), STREAM_CLOSE_TIMEOUT_MS);
  }

  /** @internal Cancels the call at once. */
  cancel(): void {
    this.#call.abort();
  }

  /** @internal Called once the call is over. */
  dispose(): void {
    clearTimeout(this.#closeTimer);
    this.outbound.close({ discardQueued: true });
    this.#call.abort();
    this.#closed.abort();
  }
}

type SessionEnd = { welcomed: boolean; closeRequested: boolean; error: unknown };

/**
 * Keeps one Connect stream open to some admin for as long as it runs: connects,
 * registers, hands admin messages to its owner, and reconnects with full-jitter
 * exponential backoff (reset by every Welcome) when the stream ends. A stream the
 * executor closed itself (Drain) is replaced at once, on the next address.
 */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #handlers: ConnectionHandlers;
  readonly #stop = new AbortController();
  #nextAddress: number;
  #session: StreamSession | undefined;
  #loop: Promise<void> | undefined;
  #everWelcomed = false;
  #first: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(options: ConnectionOptions, handlers: ConnectionHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.#nextAddress = Math.floor(Math.random() * options.addresses.length);
  }

  /** The stream that is open and welcomed, if any. */
  get session(): StreamSession | undefined {
    return this.#session?.welcomed === true && !this.#session.closedSignal.aborted
      ? this.#session
      : undefined;
  }

  /**
   * Starts connecting. Resolves on the first Welcome; rejects with an
   * {@link ExecutorConnectError} when the admin refuses the executor before that, or an
   * {@link ExecutorStoppedError} when close() comes first. Other failures are retried.
   */
  start(): Promise<void> {
    if (this.#loop !== undefined) throw new Error('connection already started');
    const first = new Promise<void>((resolve, reject) => {
      this.#first = { resolve, reject };
    });
    this.#loop = this.#run().catch((err: unknown) => {
      this.#options.logger.error({ err }, 'executor connection loop failed');
      this.#settleFirst(err instanceof Error ? err : new Error(String(err)));
    });
    return first;
  }

  /** Closes the current stream and opens a new one on the next address, keeping runs going. */
  reconnect(): void {
    this.#session?.close();
  }

  /** Ends the current stream gracefully and stops reconnecting. */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#session?.close();
    await this.#loop;
    this.#settleFirst(new ExecutorStoppedError('the executor was stopped before it connected to an admin'));
  }

  #settleFirst(error?: Error): void {
    const first = this.#first;
    if (first === undefined) return;
    this.#first = undefined;
    if (error === undefined) first.resolve();
    else first.reject(error);
  }

  async #run(): Promise<void> {
    const { addresses, logger, reconnectBaseDelayMs, reconnectMaxDelayMs } = this.#options;
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      let minDelayMs = 0;
      const address = addresses[this.#nextAddress % addresses.length] ?? addresses[0] ?? '';
      this.#nextAddress = (this.#nextAddress + 1) % addresses.length;
      const end = await this.#runSession(address);
      if (this.#stop.signal.aborted) return;
      if (end.welcomed) failures = 0;
      if (end.error !== undefined) {
        const code = end.error instanceof ClientError ? end.error.code : undefined;
        if (code !== undefined && FATAL_BEFORE_FIRST_WELCOME.has(code)) {
          const err = new ExecutorConnectError(code, address, (end.error as ClientError).details, end.error);
          if (!this.#everWelcomed) {
            this.#settleFirst(err);
            return;
          }
          logger.error({ err, address }, 'admin refused the executor; retrying');
        } else {
          // A rate limit or stream cap: retried like any failure (never fatal, the limit
          // passes), but never at once, which would only be refused again.
          if (code === Status.RESOURCE_EXHAUSTED) minDelayMs = reconnectBaseDelayMs;
          logger.warn({ err: end.error, address }, 'executor stream failed; reconnecting');
        }
      } else if (end.closeRequested) {
        logger.info({ address }, 'executor stream closed; reconnecting');
        continue;
      } else {
        logger.info({ address }, 'admin ended the executor stream; reconnecting');
      }
      const delay = Math.max(
        minDelayMs,
        fullJitterDelay(failures++, reconnectBaseDelayMs, reconnectMaxDelayMs),
      );
      logger.debug({ delayMs: delay, failures }, 'reconnect backoff');
      await sleep(delay, this.#stop.signal);
    }
  }

  async #runSession(address: string): Promise<SessionEnd> {
    const { accessToken, credentials, channelOptions, outboundQueueCapacity, logger } = this.#options;
    const channel = createChannel(
      address,
      credentials ?? ChannelCredentials.createInsecure(),
      channelOptions,
    );
    const client = createClient(encodeAsGiven(ExecutorServiceDefinition, 'requests'), channel);
    const session = new StreamSession(address, outboundQueueCapacity);
    this.#session = session;
    let error: unknown;
    let welcomeTimedOut = false;
    const welcomeTimer = setTimeout(() => {
      welcomeTimedOut = true;
      session.cancel();
    }, WELCOME_TIMEOUT_MS);
    try {
      // The queue is empty, so this cannot wait.
      void session.send({ kind: { $case: 'register', value: this.#handlers.buildRegister() } });
      const responses = client.connect(session.outboundMessages(), {
        metadata:
          accessToken === undefined ? Metadata() : Metadata({ authorization: `Bearer ${accessToken}` }),
        signal: session.callSignal,
      });
      for await (const message of responses) {
        if (!session.welcomed) {
          if (message.kind?.$case !== 'welcome') {
            logger.warn({ address, kind: message.kind?.$case }, 'admin message before Welcome ignored');
            continue;
          }
          clearTimeout(welcomeTimer);
          session.welcomed = true;
          session.sessionId = message.kind.value.sessionId;
          this.#everWelcomed = true;
          logger.info(
            { address, sessionId: session.sessionId, adminInstanceId: message.kind.value.adminInstanceId },
            'connected to admin',
          );
          this.#handlers.onWelcome(session, message.kind.value);
          this.#settleFirst();
          continue;
        }
        await this.#handlers.onMessage(session, message);
      }
    } catch (err) {
      // Errors after the executor chose to close (cancel after the close timeout) are expected.
      if (welcomeTimedOut)
        error = new Error(`admin ${address} sent no Welcome within ${WELCOME_TIMEOUT_MS} ms`);
      else if (!session.closeRequested) error = err;
    } finally {
      clearTimeout(welcomeTimer);
      session.dispose();
      if (this.#session === session) this.#session = undefined;
      this.#handlers.onSessionClosed(session);
      channel.close();
    }
    return { welcomed: session.welcomed, closeRequested: session.closeRequested, error };
  }
}
