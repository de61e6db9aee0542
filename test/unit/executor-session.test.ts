import { describe, expect, it } from 'vitest';
import { RejectReason, type AdminMessage, type Register } from '@jobstream/proto/executor';
import { BlockStrategy, GlueType } from '@jobstream/proto/types';
import { ExecutorSession } from '../../admin/src/executors/executor-session.js';

function register(scriptKinds: GlueType[]): Register {
  return {
    appName: 'app',
    instanceName: 'worker-1',
    hostname: 'host',
    pid: 1,
    sdkName: 'test',
    sdkVersion: '0',
    handlers: ['echo'],
    capacity: 2,
    labels: {},
    running: [],
    unacknowledgedResults: [],
    protocolVersion: 2,
    pipelineWindow: 0,
    scriptKinds,
  };
}

function runBody(glueType: GlueType) {
  return {
    $case: 'runRequest' as const,
    value: {
      logId: '7',
      attempt: 1,
      jobId: '3',
      handler: glueType === GlueType.GLUE_TYPE_BEAN ? 'echo' : '',
      param: '',
      timeout: undefined,
      blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
      shardIndex: 0,
      shardTotal: 1,
      glueType,
      glueSource: glueType === GlueType.GLUE_TYPE_BEAN ? '' : 'echo hi',
      glueUpdatedAt: new Date(0),
      scheduledAt: new Date(0),
      answerBy: undefined,
    },
  };
}

/** The first message the session writes to its stream, if one comes within a few turns. */
async function firstWritten(session: ExecutorSession): Promise<AdminMessage | undefined> {
  const messages = session.outboundMessages();
  const next = messages.next();
  const timeout = new Promise<undefined>(resolve => setTimeout(resolve, 50, undefined));
  const result: IteratorResult<AdminMessage, void> | undefined = await Promise.race([next, timeout]);
  session.close();
  return result?.done === false ? result.value : undefined;
}

describe('ExecutorSession', () => {
  it('never writes a script run of a kind its executor did not opt into, whatever asks for it', async () => {
    const session = new ExecutorSession('s1', register([GlueType.GLUE_TYPE_PYTHON]), new Date());
    const reply = await session.request(runBody(GlueType.GLUE_TYPE_SHELL), 1_000, 'until-free');
    expect(reply.accepted).toBe(false);
    expect(reply.rejectReason).toBe(RejectReason.REJECT_REASON_INVALID);
    expect(reply.message).toContain('did not opt into running scripts of this kind');
    expect(await firstWritten(session)).toBeUndefined();
  });

  it('writes a script run of a kind its executor opted into', async () => {
    const session = new ExecutorSession('s2', register([GlueType.GLUE_TYPE_SHELL]), new Date());
    const asked = session
      .request(runBody(GlueType.GLUE_TYPE_SHELL), 1_000, 'until-free')
      .catch(() => undefined);
    const written = await firstWritten(session);
    await asked;
    const runs =
      written?.kind?.$case === 'batch'
        ? written.kind.value.runRequests
        : written?.kind?.$case === 'runRequest'
          ? [written.kind.value]
          : [];
    expect(runs.map(run => run.glueType)).toEqual([GlueType.GLUE_TYPE_SHELL]);
  });

  it('answers a request only with a reply carrying exactly the id it was sent with', async () => {
    const session = new ExecutorSession('s3', register([]), new Date());
    const asked = session.request(runBody(GlueType.GLUE_TYPE_BEAN), 1_000, 'until-free');
    const messages = session.outboundMessages();
    const written = (await messages.next()).value;
    const runs =
      written?.kind?.$case === 'batch'
        ? written.kind.value.runRequests
        : written?.kind?.$case === 'runRequest'
          ? [written.kind.value]
          : [];
    const requestId = runs[0]!.requestId;
    const reply = (id: string) => ({
      requestId: id,
      accepted: true,
      rejectReason: RejectReason.REJECT_REASON_UNSPECIFIED,
      message: '',
    });
    for (const lookalike of [` ${requestId}`, `${requestId}.0`, `0${requestId}`, `${requestId}x`, '']) {
      expect(session.handleReply(reply(lookalike)), JSON.stringify(lookalike)).toBe(false);
    }
    expect(session.handleReply(reply(requestId))).toBe(true);
    expect((await asked).accepted).toBe(true);
    // Answered once: the same id again is unknown.
    expect(session.handleReply(reply(requestId))).toBe(false);
    session.close();
  });
});
