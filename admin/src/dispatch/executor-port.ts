import type { BlockStrategy, GlueType, ScriptKind } from '../domain.js';

/*
 * What the dispatcher and the router need from executors, in the domain's terms. The
 * executor stream edge (executors/) implements it and maps these shapes to and from the
 * protocol's messages (wire/executor-messages.ts), so nothing in dispatch/ depends on how
 * a request travels or how the protocol encodes it.
 */

/** A run for an executor to start. The same order is sent again to settle a doubt. */
export interface RunOrder {
  logId: string;
  attempt: number;
  jobId: string;
  handler: string;
  param: string;
  /** Zero means no timeout. */
  timeoutMs: number;
  blockStrategy: BlockStrategy;
  shardIndex: number;
  shardTotal: number;
  glueType: GlueType;
  glueSource: string;
  /** Lets an executor cache a compiled script. */
  glueUpdatedAt: Date;
  scheduledAt: Date;
  /**
   * When the executor is to start the run, if not on arrival: a scheduled fire sent
   * ahead of its time, only to an executor that `holdsUntilStartAt`.
   */
  startAt: Date | undefined;
}

/**
 * What is asked of an executor: to start a run, or, to route FAILOVER and BUSYOVER,
 * whether it answers at all (`beat`) and whether it has nothing of a job running or
 * queued (`idle-beat`).
 */
export type ExecutorAsk =
  | {
      kind: 'run';
      run: RunOrder;
      /**
       * The trigger message of the run's acceptance, when whoever holds the executor's
       * stream may record the acceptance itself (with the run's result, which arrives
       * there; see HeldAcceptances). Only a peer admin does: the answer then says
       * `acceptanceRecorded` and the sender records nothing.
       */
      acceptanceMessage?: string;
    }
  | { kind: 'beat' }
  | { kind: 'idle-beat'; jobId: string };

/**
 * Why an executor refused. UNSPECIFIED is what an accepted answer carries; UNRECOGNIZED
 * is a reason this admin does not know (a newer executor).
 */
export type RejectReason =
  | 'UNSPECIFIED'
  | 'UNKNOWN_HANDLER'
  | 'BUSY'
  | 'DISCARDED'
  | 'SHUTTING_DOWN'
  | 'UNKNOWN_RUN'
  | 'INVALID'
  | 'EXPIRED'
  | 'UNRECOGNIZED';

/** An executor's answer. To an idle beat, a busy executor answers BUSY. */
export interface ExecutorAnswer {
  accepted: boolean;
  rejectReason: RejectReason;
  /** The executor's explanation, bounded and storable (it ends up in trigger messages). */
  message: string;
  /** The peer admin holding the stream records the acceptance (see ExecutorAsk's acceptanceMessage). */
  acceptanceRecorded?: boolean;
}

/**
 * How trigger messages name a reject reason: as the executor protocol spells it, which
 * is what operators have always seen and search for.
 */
export function rejectReasonLabel(reason: RejectReason): string {
  return reason === 'UNRECOGNIZED' ? reason : `REJECT_REASON_${reason}`;
}

/**
 * Why a request got no answer, which decides what the admin may conclude about it:
 * - `not-sent`: it never left this admin (no free run slot or no room on the stream in
 *   time). The executor cannot have it.
 * - `not-connected`: the stream ended before the request left. The executor cannot have
 *   it, and may take it on its next stream.
 * - `no-answer`: it was handed to the stream and no answer came by its deadline.
 * - `session-closed`: it was handed to the stream, which then ended before an answer.
 * In the last two cases the executor may have it: the outcome is in doubt until the
 * executor says, on a later stream, whether it has the run.
 */
export type ExecutorRequestFailure = 'not-sent' | 'not-connected' | 'no-answer' | 'session-closed';

export class ExecutorRequestError extends Error {
  override readonly name = 'ExecutorRequestError';
  readonly kind: ExecutorRequestFailure;
  /**
   * The executor's stream may still be open: the request went through a peer admin that
   * did not say (its answer was late, or the call to it broke), so nobody ended that
   * stream. A doubt is then settled by asking on the same stream again, not by waiting
   * for the executor's next one, which may never come.
   */
  readonly streamMayBeOpen: boolean;
  constructor(kind: ExecutorRequestFailure, message: string, options: { streamMayBeOpen?: boolean } = {}) {
    super(message);
    this.kind = kind;
    this.streamMayBeOpen = options.streamMayBeOpen ?? false;
  }

  /** Whether the executor may have received the request. */
  get mayHaveArrived(): boolean {
    return this.kind === 'no-answer' || this.kind === 'session-closed';
  }
}

/** An executor that can be asked, whichever admin holds its stream. */
export interface ExecutorTarget {
  readonly appName: string;
  readonly instanceName: string;
  readonly sessionId: string;
  /** The executor process behind the stream, `hostname/pid` as it registered. */
  readonly process: string;
  /** The script kinds it opted into at Register: a script run goes only to an executor listing its kind. */
  readonly scriptKinds: readonly ScriptKind[];
  /**
   * Whether it holds a run request until the run's `startAt` (protocol revision 3): only
   * then may a run be sent ahead of its time.
   */
  readonly holdsUntilStartAt: boolean;
  /** Resolves with the executor's answer; rejects with ExecutorRequestError when there is none. */
  ask(ask: ExecutorAsk, deadlineMs: number): Promise<ExecutorAnswer>;
}

/** The cluster's connected executors, as the dispatcher looks them up. */
export interface ExecutorLookup {
  /**
   * The group's executors, local and remote, in a stable order; shared, not to be changed.
   * Without a promise when they are at hand (the common case, once per fire). Executors
   * connected to other admins are as the registry listed them at most a moment ago; with
   * `mayBeStale`, a few seconds ago while it is read again, unless none were listed (for
   * routing over the whole group, where any executor listed will do).
   */
  candidates(
    appName: string,
    mayBeStale?: boolean,
  ): readonly ExecutorTarget[] | Promise<readonly ExecutorTarget[]>;
  /** One executor by name, wherever its stream is; undefined when it is not connected. */
  find(appName: string, instanceName: string): Promise<ExecutorTarget | undefined>;
}
