import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import { BlockStrategy, GlueType, RunOutcome } from '@jobstream/proto/types';
import type { Executor, HandlerContext } from '../src/index.js';
import { RunAbortedError } from '../src/index.js';
import { EVENT_CEILING_MS } from '../../test/support/ceiling.js';
import type { FakeSession } from './support/fake-admin.js';
import { Harness, aborted, gate } from './support/harness.js';
import type { Gate } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

async function connected(
  setup: (executor: Executor) => void,
  options: Parameters<Harness['executor']>[1] = {},
): Promise<{ executor: Executor; session: FakeSession }> {
  const admin = await h.admin();
  const executor = await h.executor(admin, options);
  setup(executor);
  await executor.start();
  return { executor, session: await admin.session(0) };
}

/** Handler "hold": each run waits until the test releases it, ignoring ctx.signal. */
function holdHandler(): {
  contexts: Map<string, HandlerContext>;
  release: (logId: string, message?: string) => void;
  started: (logId: string, session: FakeSession) => Promise<HandlerContext>;
  handler: (ctx: HandlerContext) => Promise<string>;
} {
  const gates = new Map<string, Gate<string>>();
  const contexts = new Map<string, HandlerContext>();
  const gateOf = (logId: string): Gate<string> => {
    let g = gates.get(logId);
    if (g === undefined) gates.set(logId, (g = gate<string>()));
    return g;
  };
  return {
    contexts,
    release: (logId, message = '') => gateOf(logId).open(message),
    started: (logId, session) => session.waitFor(() => contexts.get(logId), `run ${logId} to start`),
    handler: ctx => {
      contexts.set(ctx.logId, ctx);
      return gateOf(ctx.logId).promise;
    },
  };
}

describe('running handlers', () => {
  it('reports success with the returned message, context and timestamps', async () => {
    let seen: HandlerContext | undefined;
    const { session } = await connected(e => {
      e.register('echo', ctx => {
        seen = ctx;
        return `echo:${ctx.param}`;
      });
      e.register('object', () => ({ message: 'from object' }));
      e.register('nothing', () => undefined);
    });

    const before = Date.now();
    const reply = await session.run({
      logId: '101',
      jobId: '7',
      param: 'hello',
      shardIndex: 2,
      shardTotal: 5,
    });
    expect(reply).toMatchObject({ accepted: true, rejectReason: RejectReason.REJECT_REASON_UNSPECIFIED });
    const result = await session.waitForResult('101');
    expect(result).toMatchObject({
      logId: '101',
      attempt: 1,
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'echo:hello',
    });
    expect(result.startedAt!.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(result.finishedAt!.getTime()).toBeGreaterThanOrEqual(result.startedAt!.getTime());
    expect(seen).toMatchObject({
      param: 'hello',
      jobId: '7',
      logId: '101',
      attempt: 1,
      shardIndex: 2,
      shardTotal: 5,
    });
    expect(seen?.signal.aborted).toBe(false);
    expect(seen?.cancelReason).toBeUndefined();

    await session.run({ logId: '102', handler: 'object' });
    await session.run({ logId: '103', handler: 'nothing', attempt: 3 });
    expect(await session.waitForResult('102')).toMatchObject({ message: 'from object' });
    expect(await session.waitForResult('103', 3)).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: '',
    });
  });

  it('reports failure with the error message when the handler throws or rejects', async () => {
    const { session } = await connected(e => {
      e.register('throws', () => {
        throw new Error('sync failure');
      });
      e.register('rejects', () => Promise.reject(new TypeError('async failure')));
    });
    await session.run({ logId: '201', handler: 'throws' });
    await session.run({ logId: '202', handler: 'rejects', jobId: '2' });
    const r1 = await session.waitForResult('201');
    const r2 = await session.waitForResult('202');
    expect(r1).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_FAILED, message: 'sync failure' });
    expect(r2).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_FAILED, message: 'async failure' });
    expect(r1.startedAt).toBeInstanceOf(Date);
    expect(r1.finishedAt).toBeInstanceOf(Date);
  });

  it('rejects unknown handlers, unsupported glue types and runs beyond capacity', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => e.register('hold', hold.handler), {
      capacity: 2,
      pipelineWindow: 0,
    });

    expect(await session.run({ logId: '301', handler: 'missing' })).toMatchObject({
      accepted: false,
      rejectReason: RejectReason.REJECT_REASON_UNKNOWN_HANDLER,
    });
    expect(
      await session.run({
        logId: '302',
        handler: '',
        glueType: GlueType.GLUE_TYPE_SHELL,
        glueSource: 'echo hi',
      }),
    ).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_INVALID });

    expect(await session.run({ logId: '303', handler: 'hold', jobId: '1' })).toMatchObject({
      accepted: true,
    });
    expect(await session.run({ logId: '304', handler: 'hold', jobId: '1' })).toMatchObject({
      accepted: true,
      message: 'queued behind 1 run(s) of job 1',
    });
    const busy = await session.run({ logId: '305', handler: 'hold', jobId: '2' });
    expect(busy).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_BUSY });
    expect(busy.message).toMatch(/capacity 2/);
    hold.release('303', 'done');
    await session.waitForResult('303');
    expect(await session.run({ logId: '306', handler: 'hold', jobId: '2' })).toMatchObject({
      accepted: true,
    });
    hold.release('304');
    hold.release('306');
    await session.waitForResult('306');
  });

  it('holds runs beyond capacity in its pipelining window and starts them in arrival order', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => e.register('hold', hold.handler), {
      capacity: 1,
      pipelineWindow: 2,
    });
    // Job 1 runs; job 2 waits for the slot; job 1's second run arrived after job 2's.
    for (const [logId, jobId] of [
      ['401', '1'],
      ['402', '2'],
      ['403', '1'],
    ] as const) {
      expect(await session.run({ logId, handler: 'hold', jobId })).toMatchObject({ accepted: true });
    }
    const busy = await session.run({ logId: '404', handler: 'hold', jobId: '3' });
    expect(busy).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_BUSY });
    expect(busy.message).toMatch(/capacity 1, pipeline window 2/);

    await hold.started('401', session);
    expect([...hold.contexts.keys()]).toEqual(['401']);
    hold.release('401');
    await hold.started('402', session);
    expect([...hold.contexts.keys()]).toEqual(['401', '402']);
    hold.release('402');
    await hold.started('403', session);
    expect([...hold.contexts.keys()]).toEqual(['401', '402', '403']);
    hold.release('403');
    await session.waitForResult('403');
  });

  it('refuses a run request read after its answer_by, without running it', async () => {
    let calls = 0;
    const { session } = await connected(e =>
      e.register('count', () => {
        calls++;
        return 'ran';
      }),
    );
    // The admin stopped waiting a second ago (the message was held up on the way).
    const late = await session.run({
      logId: '451',
      handler: 'count',
      answerBy: new Date(Date.now() - 1_000),
    });
    expect(late).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_EXPIRED });
    expect(late.message).toMatch(/after its answer_by/);
    const inTime = await session.run({
      logId: '452',
      handler: 'count',
      answerBy: new Date(Date.now() + EVENT_CEILING_MS),
    });
    expect(inTime).toMatchObject({ accepted: true });
    await session.waitForResult('452');
    expect(calls).toBe(1);
    expect(session.results().map(result => result.logId)).toEqual(['452']);
  });

  it('answers a repeated RunRequest for the same (log, attempt) as accepted without running it twice', async () => {
    let calls = 0;
    const release = gate();
    const { session } = await connected(e =>
      e.register('once', async () => {
        calls++;
        await release.promise;
        return 'ran';
      }),
    );
    await session.run({ logId: '401', handler: 'once' });
    const again = await session.run({ logId: '401', handler: 'once' });
    expect(again).toMatchObject({ accepted: true, message: expect.stringMatching(/duplicate/) as string });
    release.open();
    await session.waitForResult('401');
    await session.request({ $case: 'beatRequest', value: {} });
    expect(calls).toBe(1);
    expect(session.results()).toHaveLength(1);
  });

  it('ignores a re-sent RunRequest for a run whose result the admin already acknowledged', async () => {
    let calls = 0;
    const { session } = await connected(e =>
      e.register('once', () => {
        calls++;
        return 'ran';
      }),
    );
    await session.run({ logId: '411', handler: 'once' });
    await session.waitForResult('411');
    // Admin messages are handled in order: once this is answered, the ack sent on
    // receiving the result has been applied and the result left the spool.
    await session.request({ $case: 'beatRequest', value: {} });
    // An admin whose stream to this executor broke mid-request sends it again.
    const again = await session.run({ logId: '411', handler: 'once' });
    expect(again).toMatchObject({ accepted: true, message: expect.stringMatching(/duplicate/) as string });
    await session.request({ $case: 'beatRequest', value: {} });
    expect(calls).toBe(1);
  });

  it('runs init once before the first run, retries it after a failure, and destroy on stop', async () => {
    let initCalls = 0;
    let destroyCalls = 0;
    let unusedDestroyCalls = 0;
    const { executor, session } = await connected(e => {
      e.register('db', () => 'queried', {
        init: () => {
          initCalls++;
          if (initCalls === 1) throw new Error('db down');
        },
        destroy: () => {
          destroyCalls++;
        },
      });
      e.register('unused', () => undefined, { destroy: () => void unusedDestroyCalls++ });
    });
    await session.run({ logId: '501', handler: 'db' });
    expect(await session.waitForResult('501')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_FAILED,
      message: 'handler init failed: db down',
    });
    await session.run({ logId: '502', handler: 'db' });
    await session.run({ logId: '503', handler: 'db' });
    expect(await session.waitForResult('502')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });
    expect(await session.waitForResult('503')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });
    expect(initCalls).toBe(2);
    expect(destroyCalls).toBe(0);
    await executor.stop();
    expect(destroyCalls).toBe(1);
    expect(unusedDestroyCalls).toBe(0);
  });
});

describe('handler lifecycle', () => {
  it('destroys a handler that stays idle and initializes it again before its next run', async () => {
    const idleMs = 150;
    const events: string[] = [];
    const finish601 = gate();
    const { executor, session } = await connected(
      e => {
        e.register(
          'pooled',
          async ctx => {
            events.push(`run ${ctx.logId}`);
            if (ctx.logId === '601') await finish601.promise;
            return 'ok';
          },
          { init: () => void events.push('init'), destroy: () => void events.push('destroy') },
        );
      },
      { handlerIdleDestroyMs: idleMs },
    );
    await session.run({ logId: '601', handler: 'pooled' });
    await session.run({ logId: '602', handler: 'pooled', jobId: '2' });
    await session.waitForResult('602');
    // 601 keeps the handler busy for longer than the idle period (the wait is the point:
    // time passing while busy; on a slow machine it only gets longer).
    await delay(2 * idleMs);
    expect(events.filter(event => event === 'destroy')).toHaveLength(0);
    finish601.open();
    await session.waitForResult('601');
    await expect.poll(() => events.includes('destroy'), { timeout: EVENT_CEILING_MS }).toBe(true);
    await session.run({ logId: '603', handler: 'pooled' });
    await session.waitForResult('603');
    expect(events).toEqual(['init', 'run 601', 'run 602', 'destroy', 'init', 'run 603']);
    await executor.stop();
    expect(events.at(-1)).toBe('destroy');
  });
});

describe('block strategies', () => {
  it('SERIAL_EXECUTION runs a burst of one job one at a time, in order', async () => {
    const events: string[] = [];
    let active = 0;
    let maxActive = 0;
    const { session } = await connected(e =>
      e.register('work', async ctx => {
        active++;
        maxActive = Math.max(maxActive, active);
        events.push(`start ${ctx.logId}`);
        await delay(5);
        events.push(`end ${ctx.logId}`);
        active--;
      }),
    );
    const ids = ['601', '602', '603', '604', '605', '606'];
    const replies = await Promise.all(
      ids.map((logId, i) =>
        session.run({
          logId,
          handler: 'work',
          // UNSPECIFIED means serial as well.
          blockStrategy:
            i % 2 === 0
              ? BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION
              : BlockStrategy.BLOCK_STRATEGY_UNSPECIFIED,
        }),
      ),
    );
    expect(replies.every(r => r.accepted)).toBe(true);
    for (const id of ids) await session.waitForResult(id);
    expect(maxActive).toBe(1);
    expect(events).toEqual(ids.flatMap(id => [`start ${id}`, `end ${id}`]));
  });

  it('runs different jobs concurrently', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => e.register('hold', hold.handler));
    await session.run({ logId: '701', handler: 'hold', jobId: '1' });
    await session.run({ logId: '702', handler: 'hold', jobId: '2' });
    await hold.started('701', session);
    await hold.started('702', session);
    hold.release('702', 'second first');
    expect(await session.waitForResult('702')).toMatchObject({ message: 'second first' });
    hold.release('701', 'first');
    await session.waitForResult('701');
  });

  it('DISCARD_LATER rejects while a run of the job is running; IdleBeat reflects it', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => e.register('hold', hold.handler));
    const discard = BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER;

    expect(await session.run({ logId: '801', handler: 'hold', blockStrategy: discard })).toMatchObject({
      accepted: true,
    });
    const second = await session.run({ logId: '802', handler: 'hold', blockStrategy: discard });
    expect(second).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_DISCARDED });
    expect(
      await session.run({ logId: '803', handler: 'hold', jobId: '2', blockStrategy: discard }),
    ).toMatchObject({
      accepted: true,
    });

    expect(await session.request({ $case: 'idleBeatRequest', value: { jobId: '1' } })).toMatchObject({
      accepted: false,
      rejectReason: RejectReason.REJECT_REASON_BUSY,
    });
    expect(await session.request({ $case: 'idleBeatRequest', value: { jobId: '3' } })).toMatchObject({
      accepted: true,
    });

    await hold.started('801', session);
    hold.release('801', 'ok');
    await session.waitForResult('801');
    expect(await session.request({ $case: 'idleBeatRequest', value: { jobId: '1' } })).toMatchObject({
      accepted: true,
    });
    expect(await session.run({ logId: '804', handler: 'hold', blockStrategy: discard })).toMatchObject({
      accepted: true,
    });
    hold.release('803');
    await hold.started('804', session);
    hold.release('804');
  });

  it('COVER_EARLY aborts the running run, drops queued ones, then runs the new one', async () => {
    const contexts = new Map<string, HandlerContext>();
    const { session } = await connected(e =>
      e.register('coverable', async ctx => {
        contexts.set(ctx.logId, ctx);
        if (ctx.param === 'wait') {
          await aborted(ctx.signal);
          throw ctx.signal.reason;
        }
        return 'newest';
      }),
    );
    await session.run({ logId: '901', handler: 'coverable', param: 'wait' });
    await session.run({ logId: '902', handler: 'coverable', param: 'wait' });
    await session.waitFor(() => contexts.get('901'), 'run 901 to start');

    const reply = await session.run({
      logId: '903',
      handler: 'coverable',
      blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY,
    });
    expect(reply).toMatchObject({ accepted: true, message: 'covered 2 earlier run(s) of job 1' });

    const covered = await session.waitForResult('901');
    expect(covered).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_COVERED });
    expect(covered.message).toMatch(/covered by a newer run .*log 903/);
    const dropped = await session.waitForResult('902');
    expect(dropped).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_COVERED, startedAt: undefined });
    expect(await session.waitForResult('903')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'newest',
    });

    const ctx = contexts.get('901');
    expect(ctx?.cancelReason).toBe('covered');
    expect(ctx?.signal.reason).toBeInstanceOf(RunAbortedError);
    expect((ctx?.signal.reason as RunAbortedError).reason).toBe('covered');
    expect(contexts.has('902')).toBe(false);
    expect(session.results().map(r => r.logId)).toHaveLength(3);
  });
});

describe('timeouts and kills', () => {
  it('reports TIMED_OUT at the timeout even when the handler ignores the signal, and frees the job', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => {
      e.register('hold', hold.handler);
      e.register('echo', () => 'next');
    });
    await session.run({ logId: '1001', handler: 'hold', timeout: { seconds: '0', nanos: 100_000_000 } });
    const result = await session.waitForResult('1001');
    expect(result).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_TIMED_OUT,
      message: 'timed out after 100 ms',
    });
    expect(result.finishedAt!.getTime() - result.startedAt!.getTime()).toBeGreaterThanOrEqual(95);
    const ctx = hold.contexts.get('1001');
    expect(ctx?.signal.aborted).toBe(true);
    expect(ctx?.cancelReason).toBe('timeout');

    // The abandoned handler no longer blocks its job.
    await session.run({ logId: '1002', handler: 'echo' });
    expect(await session.waitForResult('1002')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });

    // Its late settle is ignored.
    hold.release('1001', 'too late');
    await session.request({ $case: 'beatRequest', value: {} });
    expect(session.results().filter(r => r.logId === '1001')).toHaveLength(1);
  });

  it('kills exactly the named run, running or queued', async () => {
    const hold = holdHandler();
    const { session } = await connected(e => e.register('hold', hold.handler));
    await session.run({ logId: '1101', handler: 'hold', jobId: '1' });
    await session.run({ logId: '1102', handler: 'hold', jobId: '2' });
    await session.run({ logId: '1103', handler: 'hold', jobId: '2' });
    await hold.started('1101', session);
    await hold.started('1102', session);

    const kill = await session.request({
      $case: 'killRequest',
      value: { logId: '1101', reason: 'operator said so' },
    });
    expect(kill).toMatchObject({ accepted: true });
    const killed = await session.waitForResult('1101');
    expect(killed).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_KILLED,
      message: 'killed: operator said so',
    });
    expect(hold.contexts.get('1101')?.cancelReason).toBe('killed');
    expect(hold.contexts.get('1102')?.signal.aborted).toBe(false);

    expect(
      await session.request({ $case: 'killRequest', value: { logId: '1103', reason: '' } }),
    ).toMatchObject({
      accepted: true,
    });
    expect(await session.waitForResult('1103')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_KILLED,
      startedAt: undefined,
    });

    expect(await session.request({ $case: 'killRequest', value: { logId: '9999' } })).toMatchObject({
      accepted: false,
      rejectReason: RejectReason.REJECT_REASON_UNKNOWN_RUN,
    });

    hold.release('1102', 'survived');
    expect(await session.waitForResult('1102')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'survived',
    });
    expect(hold.contexts.has('1103')).toBe(false);
  });
});
