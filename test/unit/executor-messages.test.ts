import { describe, expect, it } from 'vitest';
import { BlockStrategy, GlueType } from '@jobstream/proto/types';
import { RejectReason } from '@jobstream/proto/executor';
import { rejectReasonLabel, type RunOrder } from '../../admin/src/dispatch/executor-port.js';
import { askToProto, replyToAnswer } from '../../admin/src/wire/executor-messages.js';

const run: RunOrder = {
  logId: '42',
  attempt: 2,
  jobId: '7',
  handler: 'demo',
  param: 'p',
  timeoutMs: 1_500,
  blockStrategy: 'DISCARD_LATER',
  shardIndex: 1,
  shardTotal: 3,
  glueType: 'SHELL',
  glueSource: 'echo hi',
  glueUpdatedAt: new Date('2026-01-02T03:04:05Z'),
  scheduledAt: new Date('2026-01-02T03:04:06Z'),
  startAt: new Date('2026-01-02T03:04:06Z'),
};

describe('executor protocol mapping at the stream edge', () => {
  it('turns a run order into the RunRequest the executor reads, request_id and answer_by left to the session', () => {
    expect(askToProto({ kind: 'run', run })).toEqual({
      $case: 'runRequest',
      value: {
        requestId: '0',
        logId: '42',
        attempt: 2,
        jobId: '7',
        handler: 'demo',
        param: 'p',
        timeout: { seconds: '1', nanos: 500_000_000 },
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER,
        shardIndex: 1,
        shardTotal: 3,
        glueType: GlueType.GLUE_TYPE_SHELL,
        glueSource: 'echo hi',
        glueUpdatedAt: run.glueUpdatedAt,
        startAt: run.startAt,
        scheduledAt: run.scheduledAt,
        answerBy: undefined,
      },
    });
  });

  it('turns the routing probes into beat and idle-beat requests', () => {
    expect(askToProto({ kind: 'beat' })).toEqual({ $case: 'beatRequest', value: { requestId: '0' } });
    expect(askToProto({ kind: 'idle-beat', jobId: '7' })).toEqual({
      $case: 'idleBeatRequest',
      value: { requestId: '0', jobId: '7' },
    });
  });

  it('reads a reply as an answer whose reason is labelled as the protocol names it', () => {
    const reply = (rejectReason: number) => ({
      requestId: '1',
      accepted: false,
      rejectReason: rejectReason as RejectReason,
      message: 'no',
      logChunk: undefined,
    });
    expect(replyToAnswer(reply(RejectReason.REJECT_REASON_BUSY))).toEqual({
      accepted: false,
      rejectReason: 'BUSY',
      message: 'no',
    });
    expect(rejectReasonLabel(replyToAnswer(reply(RejectReason.REJECT_REASON_BUSY)).rejectReason)).toBe(
      'REJECT_REASON_BUSY',
    );
    expect(rejectReasonLabel(replyToAnswer(reply(0)).rejectReason)).toBe('REJECT_REASON_UNSPECIFIED');
    // A reason from a newer executor reads as the generated code has always printed it.
    expect(rejectReasonLabel(replyToAnswer(reply(99)).rejectReason)).toBe('UNRECOGNIZED');
  });
});
