import { durationFromMs } from '@jobstream/proto';
import type { GlueType as WireGlueType } from '@jobstream/proto/types';
import {
  RejectReason as WireRejectReason,
  type BeatRequest,
  type IdleBeatRequest,
  type Reply,
  type RunRequest,
} from '@jobstream/proto/executor';
import type { ExecutorAnswer, ExecutorAsk, RejectReason, RunOrder } from '../dispatch/executor-port.js';
import { isScriptKind, SCRIPT_KINDS, type ScriptKind } from '../domain.js';
import { blockStrategies, EnumCodec, glueTypes } from './enums.js';

/*
 * The executor protocol's side of the dispatcher's asks and answers: the dispatcher
 * speaks domain types (dispatch/executor-port.ts), the executor stream edge writes and
 * reads wire messages, and this is where one becomes the other.
 */

/** UNRECOGNIZED has no wire value of its own: it stands for every number not listed. */
const rejectReasons = new EnumCodec<Exclude<RejectReason, 'UNRECOGNIZED'>, WireRejectReason>(
  WireRejectReason,
  'REJECT_REASON_',
  [
    'UNSPECIFIED',
    'UNKNOWN_HANDLER',
    'BUSY',
    'DISCARDED',
    'SHUTTING_DOWN',
    'UNKNOWN_RUN',
    'INVALID',
    'EXPIRED',
  ],
);

/**
 * The requests an ask becomes. Their request_id is a placeholder ('0'): the session
 * numbers each copy it sends. (Present all the same: V8 copies `{ ...value, requestId }`
 * far faster when the spread only overwrites a property than when it adds one.)
 */
export type AskRequest =
  | { $case: 'runRequest'; value: RunRequest }
  | { $case: 'beatRequest'; value: BeatRequest }
  | { $case: 'idleBeatRequest'; value: IdleBeatRequest };

function runOrderToProto(run: RunOrder): RunRequest {
  return {
    requestId: '0',
    logId: run.logId,
    attempt: run.attempt,
    jobId: run.jobId,
    handler: run.handler,
    param: run.param,
    timeout: durationFromMs(run.timeoutMs),
    blockStrategy: blockStrategies.toProto(run.blockStrategy),
    shardIndex: run.shardIndex,
    shardTotal: run.shardTotal,
    glueType: glueTypes.toProto(run.glueType),
    glueSource: run.glueSource,
    glueUpdatedAt: run.glueUpdatedAt,
    scheduledAt: run.scheduledAt,
    // Set by the session when the request goes on the wire.
    answerBy: undefined,
    startAt: run.startAt,
    sentAt: undefined,
  };
}

export function askToProto(ask: ExecutorAsk): AskRequest {
  switch (ask.kind) {
    case 'run':
      return { $case: 'runRequest', value: runOrderToProto(ask.run) };
    case 'beat':
      return { $case: 'beatRequest', value: { requestId: '0' } };
    case 'idle-beat':
      return { $case: 'idleBeatRequest', value: { requestId: '0', jobId: ask.jobId } };
  }
}

/** A reply already made safe to use (sanitizeReply) as the dispatcher's answer. */
export function replyToAnswer(reply: Reply): ExecutorAnswer {
  return {
    accepted: reply.accepted,
    rejectReason: rejectReasons.toDomain(reply.rejectReason) ?? 'UNRECOGNIZED',
    message: reply.message,
  };
}

/**
 * The script kinds an executor opted into (Register.script_kinds), each once. Values that
 * are no script kind this admin runs (BEAN, UNSPECIFIED, PHP, or a kind newer than this
 * admin) are left out rather than refused: such an executor still runs what it can.
 */
export function registeredScriptKinds(values: readonly WireGlueType[]): ScriptKind[] {
  const kinds = new Set<ScriptKind>();
  for (const value of values) {
    const type = glueTypes.toDomain(value);
    if (type !== undefined && isScriptKind(type) && SCRIPT_KINDS.includes(type)) kinds.add(type);
  }
  return SCRIPT_KINDS.filter(kind => kinds.has(kind));
}

/** Whether a run request's glue type is a script kind outside `accepted` (BEAN runs always pass). */
export function isUnacceptedScript(glueType: WireGlueType, accepted: readonly ScriptKind[]): boolean {
  const type = glueTypes.toDomain(glueType);
  return type !== undefined && type !== 'BEAN' && !(accepted as readonly string[]).includes(type);
}
