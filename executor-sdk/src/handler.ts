/**
 * Why a run's `ctx.signal` was aborted.
 *
 * - `killed`: the admin sent a KillRequest for this run.
 * - `timeout`: the job's timeout elapsed.
 * - `covered`: a newer run of the same job arrived with block strategy COVER_EARLY.
 * - `shutdown`: the executor is stopping and the grace period ran out.
 */
export type CancelReason = 'killed' | 'timeout' | 'covered' | 'shutdown';

/**
 * The value `ctx.signal.reason` carries once a run is aborted, so a handler can
 * `ctx.signal.throwIfAborted()` or `throw ctx.signal.reason` and still get a real Error.
 */
export class RunAbortedError extends Error {
  override readonly name = 'RunAbortedError';
  readonly reason: CancelReason;

  constructor(reason: CancelReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

export function isRunAbortedError(value: unknown): value is RunAbortedError {
  return value instanceof RunAbortedError;
}

/** What a handler sees of the run it executes. */
export interface HandlerContext {
  /** The job parameter, as configured on the job (may be empty). */
  readonly param: string;
  /** The job id (int64 as a decimal string). */
  readonly jobId: string;
  /** The trigger log id this run reports to (int64 as a decimal string). */
  readonly logId: string;
  /** The attempt of this log, starting at 1. */
  readonly attempt: number;
  /** This executor's position among the shards, from 0. */
  readonly shardIndex: number;
  /** The number of shards; 1 when the job is not sharded. */
  readonly shardTotal: number;
  /** The handler name the run was dispatched to. */
  readonly handlerName: string;
  /** When the schedule wanted this run to fire, if the admin said. */
  readonly scheduledAt: Date | undefined;
  /**
   * Aborted on kill, timeout, cover or shutdown; `signal.reason` is a {@link RunAbortedError}.
   * JavaScript cannot force-stop a function: a handler that ignores the signal keeps
   * running in the background, but its result is no longer reported.
   */
  readonly signal: AbortSignal;
  /** Why `signal` was aborted, or undefined while it is not. */
  readonly cancelReason: CancelReason | undefined;
  /**
   * Appends one line (arguments formatted like console.log) to this run's log, which
   * the admin reads with LogReadRequest. After the run's result is reported, calls are
   * ignored. A function of its own: it may be taken out of the context.
   */
  readonly log: (...args: unknown[]) => void;
}

/**
 * What a handler may return. A string or `{ message }` becomes the success message;
 * anything else means success with no message. Throwing (or rejecting) fails the run
 * with the error's message.
 */
export type HandlerResult = string | { readonly message?: string } | void | undefined | null;

export type Handler = (ctx: HandlerContext) => HandlerResult | Promise<HandlerResult>;

/**
 * Lifecycle hooks of one handler.
 *
 * `init` runs once, before the first run of the handler on this executor (runs that
 * start while it is in progress wait for it). If it throws, that run fails with the
 * error's message and the next run tries `init` again.
 *
 * `destroy` runs once when the executor stops, after the last run ended, for every
 * handler that was initialized: its `init` completed, or — for a handler without
 * `init` — it ran at least once.
 */
export interface HandlerHooks {
  init?: () => void | Promise<void>;
  destroy?: () => void | Promise<void>;
}
