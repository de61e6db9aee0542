import type {
  AdminMessage,
  BeatRequest,
  IdleBeatRequest,
  KillRequest,
  LogReadRequest,
  Register,
  Reply,
  RunRequest,
} from '../gen/jobstream/v1/executor.js';
import { BoundedQueue } from '../util/bounded-queue.js';
import { Semaphore } from '../util/semaphore.js';
import { sanitizeReply } from './reply-limits.js';

/** How many admin messages may wait for a slow stream before senders are made to wait. */
const OUTBOUND_QUEUE_CAPACITY = 1024;

export class ExecutorRequestError extends Error {
  override readonly name = 'ExecutorRequestError';
  readonly kind: 'no-answer' | 'session-closed';
  constructor(kind: 'no-answer' | 'session-closed', message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface ExecutorLoad {
  runningCount: number;
  queuedCount: number;
  eventLoopLagMs: number;
  lastBeatAt: Date;
  unresponsiveLogIds: string[];
}

export type RequestBody =
  | { $case: 'runRequest'; value: Omit<RunRequest, 'requestId'> }
  | { $case: 'killRequest'; value: Omit<KillRequest, 'requestId'> }
  | { $case: 'idleBeatRequest'; value: Omit<IdleBeatRequest, 'requestId'> }
  | { $case: 'beatRequest'; value: Omit<BeatRequest, 'requestId'> }
  | { $case: 'logReadRequest'; value: Omit<LogReadRequest, 'requestId'> };

interface PendingRequest {
  resolve(reply: Reply): void;
  reject(error: Error): void;
}

/**
 * The admin's side of one executor stream: what the executor registered, and the
 * request/reply correlation that turns the stream into calls with deadlines.
 *
 * Flow control has two layers. Run requests take a permit from a semaphore sized by
 * the executor's declared capacity until they are answered, so the admin never has
 * more unanswered runs in flight than the executor accepts. Every message then goes
 * through a bounded queue that the gRPC writer drains only as fast as the stream
 * accepts writes (nice-grpc waits for 'drain' when grpc-js `write()` returns false).
 */
export class ExecutorSession {
  readonly sessionId: string;
  readonly appName: string;
  readonly instanceName: string;
  readonly register: Register;
  readonly connectedAt: Date;
  load: ExecutorLoad;

  readonly #outbound = new BoundedQueue<AdminMessage>(OUTBOUND_QUEUE_CAPACITY);
  readonly #pending = new Map<string, PendingRequest>();
  readonly #runPermits: Semaphore;
  readonly #closed = new AbortController();
  readonly #inFlight = new Set<AbortController>();
  #nextRequestId = 1n;
  #endedByAdmin: string | undefined;
  /**
   * "logId/attempt" of the runs whose results this session may report: those sent down
   * this stream and those adopted at Register. A token proves the group, not which runs
   * an executor was given, so a result for any other run is refused.
   */
  readonly #reportableRuns = new Set<string>();
  #lastReplyAt = 0;

  constructor(sessionId: string, register: Register, connectedAt: Date) {
    this.sessionId = sessionId;
    this.register = register;
    this.appName = register.appName;
    this.instanceName = register.instanceName;
    this.connectedAt = connectedAt;
    this.#runPermits = new Semaphore(register.capacity);
    this.load = {
      runningCount: 0,
      queuedCount: 0,
      eventLoopLagMs: 0,
      lastBeatAt: connectedAt,
      unresponsiveLogIds: [],
    };
  }

  /** Aborts when the stream ends. */
  get closedSignal(): AbortSignal {
    return this.#closed.signal;
  }

  get isClosed(): boolean {
    return this.#closed.signal.aborted;
  }

  /** The messages to write to the stream, in order; ends when the session closes. */
  outboundMessages(): AsyncGenerator<AdminMessage, void, undefined> {
    return this.#outbound.drain();
  }

  /** Sends a message that needs no reply (Welcome, ResultAck, Drain). */
  async send(message: AdminMessage): Promise<void> {
    await this.#outbound.push(message, this.#closed.signal);
  }

  /**
   * Sends a request and resolves with the executor's reply. Rejects with
   * ExecutorRequestError when there is no reply within `deadlineMs` (including time
   * spent waiting for a run permit or for room on the stream) or the stream ends.
   */
  async request(body: RequestBody, deadlineMs: number): Promise<Reply> {
    // One controller and one timer per request: AbortSignal.timeout + AbortSignal.any cost
    // several times more, and a burst of fires sends thousands of requests at once.
    const abort = new AbortController();
    const { signal } = abort;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort(new Error('deadline'));
    }, deadlineMs);
    // Tracked in a set rather than as listeners on the session's signal: removing one of
    // thousands of event listeners is linear, a set delete is not.
    this.#inFlight.add(abort);
    const isRun = body.$case === 'runRequest';
    if (isRun) this.#reportableRuns.add(runKey(body.value.logId, body.value.attempt));
    const requestId = (this.#nextRequestId++).toString();
    let permitHeld = false;
    try {
      if (this.#closed.signal.aborted) throw new Error('session closed');
      if (isRun) {
        await this.#runPermits.acquire(signal);
        permitHeld = true;
      }
      const replied = new Promise<Reply>((resolve, reject) => {
        this.#pending.set(requestId, { resolve, reject });
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
      });
      // Awaited below unless `push` fails first; then nothing else may observe it.
      replied.catch(() => undefined);
      // The request is registered before it is sent: a fast executor may answer before
      // `push` returns.
      await this.#outbound.push(
        { kind: { ...body, value: { ...body.value, requestId } } as AdminMessage['kind'] },
        signal,
      );
      return await replied;
    } catch (error) {
      if (this.#closed.signal.aborted) {
        throw new ExecutorRequestError('session-closed', `executor ${this.instanceName} disconnected`);
      }
      if (timedOut) {
        throw new ExecutorRequestError(
          'no-answer',
          `executor ${this.instanceName} did not answer within ${deadlineMs} ms`,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(abort);
      this.#pending.delete(requestId);
      if (permitHeld) this.#runPermits.release();
    }
  }

  /** Whether a result for this run may come from this session. */
  mayReport(logId: string, attempt: number): boolean {
    return this.#reportableRuns.has(runKey(logId, attempt));
  }

  /** Runs of this instance the database confirmed at Register (still running, or results to re-send). */
  adoptRuns(runs: readonly { logId: string; attempt: number }[]): void {
    for (const run of runs) this.#reportableRuns.add(runKey(run.logId, run.attempt));
  }

  /** A run's result was stored: nothing more is expected for it. */
  runReported(logId: string, attempt: number): void {
    this.#reportableRuns.delete(runKey(logId, attempt));
  }

  /**
   * When the executor was last heard from: its last beat or reply (ms since the epoch).
   * A live executor beats every beat interval whatever else it sends.
   */
  get lastHeardAt(): number {
    return Math.max(this.load.lastBeatAt.getTime(), this.#lastReplyAt);
  }

  /** Routes a Reply to the request waiting for it. Returns false for an unknown request id. */
  handleReply(reply: Reply): boolean {
    this.#lastReplyAt = Date.now();
    const pending = this.#pending.get(reply.requestId);
    if (!pending) return false;
    this.#pending.delete(reply.requestId);
    pending.resolve(sanitizeReply(reply));
    return true;
  }

  /** Why the admin ended the session, if it did (as opposed to the executor leaving). */
  get endedByAdmin(): string | undefined {
    return this.#endedByAdmin;
  }

  /**
   * Ends the session: queued messages are dropped, waiting requests fail. With a
   * reason, the admin is the one ending it and the executor is told why.
   */
  close(reason?: string): void {
    if (this.#closed.signal.aborted) return;
    this.#endedByAdmin = reason;
    for (const request of this.#inFlight) request.abort(new Error('session closed'));
    this.#closed.abort(
      new ExecutorRequestError('session-closed', `executor ${this.instanceName} disconnected`),
    );
    this.#outbound.close();
    for (const pending of this.#pending.values()) {
      pending.reject(
        new ExecutorRequestError('session-closed', `executor ${this.instanceName} disconnected`),
      );
    }
    this.#pending.clear();
  }
}

function runKey(logId: string, attempt: number): string {
  return `${logId}/${attempt}`;
}
