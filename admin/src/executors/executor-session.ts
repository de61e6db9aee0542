import type {
  AdminMessage,
  BeatRequest,
  IdleBeatRequest,
  KillRequest,
  LogReadRequest,
  Register,
  Reply,
  RunRef,
  RunRequest,
} from '@jobstream/proto/executor';
import { RejectReason } from '@jobstream/proto/executor';
import { GlueType } from '@jobstream/proto/types';
import {
  BATCHED_PROTOCOL_VERSION,
  MAX_BATCH_ITEMS,
  START_AT_PROTOCOL_VERSION,
  runKey,
} from '@jobstream/proto';
import { BoundedQueue } from '@jobstream/proto/concurrency';
import { ExecutorRequestError, type ExecutorAnswer, type ExecutorAsk } from '../dispatch/executor-port.js';
import { packAdminMessages } from '../wire/batching.js';
import {
  askToProto,
  isUnacceptedScript,
  registeredScriptKinds,
  replyToAnswer,
} from '../wire/executor-messages.js';
import type { ScriptKind } from '../domain.js';
import { Semaphore, type Cancellation } from '../util/semaphore.js';
import { sanitizeReply } from './reply-limits.js';

/** How many admin messages may wait for a slow stream before senders are made to wait. */
const OUTBOUND_QUEUE_CAPACITY = 1024;

/**
 * Run requests that may wait here for one of an executor's run slots. Beyond it a run is
 * refused at once as not sent (the dispatcher asks again a moment later): the bound on
 * what a saturated executor holds in this admin's memory.
 */
export const MAX_RUNS_WAITING_PER_EXECUTOR = 10_000;

/**
 * How a run request waits for a run slot: `until-free` as long as the session lives (the
 * dispatcher's own sends: overload waits, in order); `within-deadline` only as long as
 * the request's deadline (a peer admin's forwarded request, whose caller gives up then).
 */
export type SlotWait = 'until-free' | 'within-deadline';

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
  /** For a run request holding a run slot: its run, which keeps the slot once accepted. */
  slotRun?: string;
  /** Set when the reply accepted the run: the slot now belongs to the run, not the request. */
  slotTransferred?: boolean;
}

/**
 * A message waiting for the stream. `onWrite` runs as the writer takes it: a request that
 * gave up meanwhile returns false and is dropped, so it is never sent late.
 */
interface OutboundMessage {
  message: AdminMessage;
  onWrite?: () => boolean;
}

/**
 * How long after a run request's `answer_by` the admin still waits for the reply. The
 * executor refuses a request it reads after `answer_by` (by its estimate of the admin's
 * clock, off by up to the time Welcome took to arrive), so a reply can only come later
 * than this when it was held in transit: that case is in doubt, not a failure.
 */
export function answerGraceMs(deadlineMs: number): number {
  return Math.max(50, Math.min(1_000, Math.round(deadlineMs / 4)));
}

/**
 * The admin's side of one executor stream: what the executor registered, and the
 * request/reply correlation that turns the stream into calls with deadlines.
 *
 * Flow control has two layers. A run takes one of the executor's run slots (its declared
 * capacity plus its pipelining window: runs executing or queued on it) from before its
 * request is sent until its
 * result arrives, so the admin never gives an executor more runs than it can hold and
 * an executor at capacity is never answered with work it must refuse as busy: runs wait
 * here instead, in order (a bounded number, MAX_RUNS_WAITING_PER_EXECUTOR). Every message
 * then goes through a bounded queue that the gRPC writer drains only as fast as the
 * stream accepts writes (nice-grpc waits for 'drain' when grpc-js `write()` returns false).
 */
export class ExecutorSession {
  readonly sessionId: string;
  readonly appName: string;
  readonly instanceName: string;
  readonly register: Register;
  readonly connectedAt: Date;
  /** The script kinds the executor opted into at Register (see registeredScriptKinds). */
  readonly scriptKinds: readonly ScriptKind[];
  load: ExecutorLoad;

  readonly #outbound = new BoundedQueue<OutboundMessage>(OUTBOUND_QUEUE_CAPACITY);
  /** By request number: Map lookups by small integers, not by freshly made strings. */
  readonly #pending = new Map<number, PendingRequest>();
  readonly #runSlots: Semaphore;
  /** Runs holding a run slot: accepted by the executor (or adopted at Register), no result yet. */
  readonly #slotHolders = new Set<string>();
  /** Run requests begun and not yet written to the stream (waiting for a slot or for room), by request id. */
  readonly #unsentRuns = new Map<number, RunRef>();
  readonly #closed = new AbortController();
  readonly #inFlight = new Set<RequestAbort>();
  #nextRequestNumber = 1;
  #endedByAdmin: string | undefined;
  /**
   * "logId/attempt" of the runs whose results this session may report: those sent down
   * this stream and those adopted at Register. A token proves the group, not which runs
   * an executor was given, so a result for any other run is refused.
   */
  readonly #reportableRuns = new Set<string>();
  #lastReplyAt = 0;
  /** Acknowledgements waiting for the end of this event-loop turn (see acknowledge). */
  #ackBatch: { refs: RunRef[]; sent: Promise<void> } | undefined;

  /** Whether the executor holds a run request until its start_at (see ExecutorTarget). */
  get holdsUntilStartAt(): boolean {
    return this.register.protocolVersion >= START_AT_PROTOCOL_VERSION;
  }

  /** The executor process behind this stream, `hostname/pid` as it registered. */
  get process(): string {
    return `${this.register.hostname}/${this.register.pid}`;
  }

  constructor(sessionId: string, register: Register, connectedAt: Date) {
    this.sessionId = sessionId;
    this.register = register;
    this.appName = register.appName;
    this.instanceName = register.instanceName;
    this.connectedAt = connectedAt;
    this.scriptKinds = registeredScriptKinds(register.scriptKinds);
    this.#runSlots = new Semaphore(register.capacity + register.pipelineWindow);
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

  /**
   * The messages to write to the stream, in order; ends when the session closes. What is
   * queued in one event-loop turn is written together: for an executor speaking protocol
   * 2, its run requests and acknowledgements in one AdminBatch envelope.
   */
  async *outboundMessages(): AsyncGenerator<AdminMessage, void, undefined> {
    const batched = this.register.protocolVersion >= BATCHED_PROTOCOL_VERSION;
    for await (const outbound of this.#outbound.batches(MAX_BATCH_ITEMS)) {
      const messages: AdminMessage[] = [];
      for (const { message, onWrite } of outbound) {
        if (onWrite === undefined || onWrite()) messages.push(message);
      }
      yield* batched ? packAdminMessages(messages, MAX_BATCH_ITEMS) : messages;
    }
  }

  /** Sends a message that needs no reply (Welcome, ResultAck, Drain). */
  async send(message: AdminMessage): Promise<void> {
    await this.#outbound.push({ message }, this.#closed.signal);
  }

  /**
   * Sends a request and resolves with the executor's reply, or rejects with an
   * ExecutorRequestError that says whether the executor may have the request.
   *
   * A run request first waits for a run slot: as long as the session lives with
   * `until-free`, at most `deadlineMs` with `within-deadline`. Then `deadlineMs` bounds two
   * waits separately. Before the request is handed to the stream (room on the stream) it
   * bounds the wait for that; nothing was sent when it expires. Once handed to the stream
   * it bounds the executor's silence: a run request
   * carries `answer_by` = hand-off + `deadlineMs`, and the reply is awaited a grace period
   * longer (see answerGraceMs). A run request that still gets no reply ends the session:
   * the executor reconnects and says at Register which runs it has, which settles the
   * doubt (see the dispatcher).
   */
  async request(
    body: RequestBody,
    deadlineMs: number,
    slotWait: SlotWait = 'within-deadline',
  ): Promise<Reply> {
    // One timer per phase and no AbortController unless the request has to wait for a
    // slot or for room on the stream: a burst of fires sends thousands of requests at once,
    // and most of them wait for neither.
    const abort = new RequestAbort();
    const progress = { written: false };
    const startDeadline = () => setTimeout(() => abort.abort(new Error('deadline')), deadlineMs);
    const isRun = body.$case === 'runRequest';
    // The protocol forbids sending a script of a kind the executor did not opt into. The
    // dispatcher routes script runs only to executors that did; this catches the paths it
    // does not route (a run sent again on a new stream, a peer's forwarded request).
    if (isRun && body.value.glueType > GlueType.GLUE_TYPE_BEAN) {
      if (isUnacceptedScript(body.value.glueType, this.scriptKinds)) {
        return {
          requestId: '0',
          accepted: false,
          rejectReason: RejectReason.REJECT_REASON_INVALID,
          message: `not sent by the admin: executor ${this.instanceName} did not opt into running scripts of this kind (its script_kinds: ${this.scriptKinds.join(', ') || 'none'})`,
        };
      }
    }
    let timer = isRun && slotWait === 'until-free' ? undefined : startDeadline();
    // Tracked in a set rather than as listeners on the session's signal: removing one of
    // thousands of event listeners is linear, a set delete is not.
    this.#inFlight.add(abort);
    const requestNumber = this.#nextRequestNumber++;
    const requestId = String(requestNumber);
    const slotRun = isRun ? runKey(body.value.logId, body.value.attempt) : undefined;
    if (isRun) this.#unsentRuns.set(requestNumber, body.value);
    let slotHeld = false;
    const pending: PendingRequest = { resolve: () => undefined, reject: () => undefined };
    try {
      if (this.#closed.signal.aborted) throw new Error('session closed');
      if (isRun) {
        if (!this.#runSlots.tryAcquire()) {
          if (this.#runSlots.waiting >= MAX_RUNS_WAITING_PER_EXECUTOR) {
            throw new ExecutorRequestError(
              'not-sent',
              `executor ${this.instanceName} is at capacity (${this.register.capacity}) with ${MAX_RUNS_WAITING_PER_EXECUTOR} runs already waiting for it`,
            );
          }
          await this.#runSlots.acquire(abort);
        }
        slotHeld = true;
        pending.slotRun = slotRun;
        timer ??= startDeadline();
      }
      const replied = new Promise<Reply>((resolve, reject) => {
        pending.resolve = resolve;
        pending.reject = reject;
        this.#pending.set(requestNumber, pending);
        abort.onAbort(reject);
      });
      // Awaited below unless `push` fails first; then nothing else may observe it.
      replied.catch(() => undefined);
      const value = { ...body.value, requestId };
      const onWrite = (): boolean => {
        if (abort.aborted) return false;
        progress.written = true;
        this.#unsentRuns.delete(requestNumber);
        clearTimeout(timer);
        if (isRun) {
          // A result may come from this session as soon as the request can have arrived.
          const run = body.value;
          this.#reportableRuns.add(runKey(run.logId, run.attempt));
          const now = Date.now();
          (value as RunRequest).answerBy = new Date(now + deadlineMs);
          if (this.holdsUntilStartAt) (value as RunRequest).sentAt = new Date(now);
        }
        timer = setTimeout(
          // One more turn of the event loop first: when this process was stalled past the
          // deadline (a CPU-starved or stopped admin), the reply may already be waiting
          // in the socket, and timers run before I/O is read.
          () => setImmediate(() => abort.abort(new Error('deadline'))),
          deadlineMs + (isRun ? answerGraceMs(deadlineMs) : 0),
        );
        return true;
      };
      // The request is registered before it is sent: a fast executor may answer before
      // `push` returns.
      const outbound: OutboundMessage = {
        message: { kind: { ...body, value } as AdminMessage['kind'] },
        onWrite,
      };
      if (!this.#outbound.tryPush(outbound)) await this.#outbound.push(outbound, abort.signal);
      return await replied;
    } catch (error) {
      const { written } = progress;
      if (this.#closed.signal.aborted) {
        throw new ExecutorRequestError(
          written ? 'session-closed' : 'not-connected',
          `executor ${this.instanceName} disconnected`,
        );
      }
      if (abort.aborted) {
        if (!written) {
          throw new ExecutorRequestError(
            'not-sent',
            isRun && !slotHeld
              ? `executor ${this.instanceName} had no free run slot (capacity ${this.register.capacity}) within ${deadlineMs} ms`
              : `executor ${this.instanceName} did not take the request off its stream within ${deadlineMs} ms`,
          );
        }
        if (isRun) {
          this.close(`no answer to run request for log ${body.value.logId} within ${deadlineMs} ms`);
        }
        throw new ExecutorRequestError(
          'no-answer',
          `executor ${this.instanceName} did not answer within ${deadlineMs} ms`,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(abort);
      this.#pending.delete(requestNumber);
      this.#unsentRuns.delete(requestNumber);
      // An accepted run keeps its slot until its result (runFinished); any other outcome
      // frees it now.
      if (slotHeld && pending.slotTransferred !== true) this.#runSlots.release();
    }
  }

  /** A request of the dispatcher's, in its terms: see `request` for what a failure says. */
  async ask(ask: ExecutorAsk, deadlineMs: number): Promise<ExecutorAnswer> {
    return replyToAnswer(await this.request(askToProto(ask), deadlineMs, 'until-free'));
  }

  /**
   * Acknowledges a stored result. The results of one commit are stored together, so their
   * acknowledgements are sent together: one ResultAck per event-loop turn carries every
   * run acknowledged in it (up to MAX_ACKS_PER_MESSAGE), instead of one message per run.
   * Resolves once that message is queued on the stream.
   */
  acknowledge(logId: string, attempt: number): Promise<void> {
    let batch = this.#ackBatch;
    if (batch === undefined) {
      const refs: RunRef[] = [];
      const created: { refs: RunRef[]; sent: Promise<void> } = {
        refs,
        sent: new Promise<void>(resolve => setImmediate(resolve)).then(() => {
          if (this.#ackBatch === created) this.#ackBatch = undefined;
          return this.send({ kind: { $case: 'resultAck', value: { results: refs, refused: [] } } });
        }),
      };
      batch = this.#ackBatch = created;
    }
    batch.refs.push({ logId, attempt });
    // A full message goes as it is; the next acknowledgement starts another.
    if (batch.refs.length >= MAX_ACKS_PER_MESSAGE) this.#ackBatch = undefined;
    return batch.sent;
  }

  /** Whether a result for this run may come from this session. */
  mayReport(logId: string, attempt: number): boolean {
    return this.#reportableRuns.has(runKey(logId, attempt));
  }

  /** Runs of this instance the database confirmed at Register (still running, or results to re-send). */
  adoptRuns(runs: readonly { logId: string; attempt: number }[]): void {
    for (const run of runs) {
      const key = runKey(run.logId, run.attempt);
      this.#reportableRuns.add(key);
      // The executor holds these already: they occupy its slots like runs sent on this stream.
      if (!this.#slotHolders.has(key) && this.#runSlots.tryAcquire()) this.#slotHolders.add(key);
    }
  }

  /**
   * The executor sent a run's result: the run no longer occupies one of its slots, so the
   * next run waiting for this executor goes out (before the result is even stored).
   */
  runFinished(logId: string, attempt: number): void {
    if (this.#slotHolders.delete(runKey(logId, attempt))) this.#runSlots.release();
  }

  /** Runs occupying the executor's slots, and run requests waiting for one (for metrics and tests). */
  get slotUse(): { held: number; waiting: number } {
    return { held: this.#slotHolders.size, waiting: this.#runSlots.waiting };
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
    const requestNumber = Number(reply.requestId);
    const pending = this.#pending.get(requestNumber);
    // Only the very id sent matches (not " 12" or "12.0" for 12).
    if (!pending || String(requestNumber) !== reply.requestId) return false;
    this.#pending.delete(requestNumber);
    // Decided here, as the reply is read, not when the waiting request resumes: the run's
    // result may be the very next message, and it must find the slot to free.
    // A run the executor holds already (adopted, or asked again) keeps the one slot it has.
    if (pending.slotRun !== undefined && reply.accepted && !this.#slotHolders.has(pending.slotRun)) {
      pending.slotTransferred = true;
      this.#slotHolders.add(pending.slotRun);
    }
    pending.resolve(sanitizeReply(reply));
    return true;
  }

  /** Why the admin ended the session, if it did (as opposed to the executor leaving). */
  get endedByAdmin(): string | undefined {
    return this.#endedByAdmin;
  }

  /**
   * Ends the session: queued messages are dropped, waiting requests fail. With a
   * reason, the admin is the one ending it and the executor is told why. Returns the runs
   * whose requests had begun here and were never written to the stream: this admin knows
   * the executor never had them (empty when the session was closed already).
   */
  close(reason?: string): RunRef[] {
    if (this.#closed.signal.aborted) return [];
    // Copied: the map holds the requests themselves.
    const unsent = [...this.#unsentRuns.values()].map(run => ({ logId: run.logId, attempt: run.attempt }));
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
    return unsent;
  }
}

/**
 * Ends one request: its deadline or the session's end. An AbortSignal is made only for
 * the waits that need one (a run slot, room on the stream); the reply's promise is
 * rejected directly.
 */
class RequestAbort implements Cancellation {
  #reason: Error | undefined;
  #controller: AbortController | undefined;
  #onAbort: ((reason: Error) => void)[] = [];

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  get reason(): Error | undefined {
    return this.#reason;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  onAbort(listener: (reason: Error) => void): void {
    if (this.#reason !== undefined) listener(this.#reason);
    else this.#onAbort.push(listener);
  }

  abort(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    for (const listener of this.#onAbort) listener(reason);
  }
}

/** Runs acknowledged in one ResultAck at most: a few tens of kilobytes. */
const MAX_ACKS_PER_MESSAGE = 1_000;
