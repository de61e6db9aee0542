import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Status } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import { ExecutorConnectError, SDK_NAME, SDK_VERSION } from '../src/index.js';
import { runRequest } from './support/fake-admin.js';
import { Harness, gate } from './support/harness.js';

const h = new Harness();
afterEach(() => h.cleanup());

describe('connecting', () => {
  it('registers with its handler names, capacity and identity, then runs', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin, { capacity: 7, labels: { zone: 'eu-1' } });
    executor.register('echo', ctx => ctx.param).register('other', () => undefined);
    expect(executor.state).toBe('idle');

    await executor.start();
    expect(executor.state).toBe('running');
    const session = await admin.session(0);
    expect(session.register).toEqual({
      appName: 'test-app',
      instanceName: 'test-executor-1',
      hostname: expect.any(String) as string,
      pid: process.pid,
      sdkName: SDK_NAME,
      sdkVersion: SDK_VERSION,
      handlers: ['echo', 'other'],
      capacity: 7,
      labels: { zone: 'eu-1' },
      running: [],
      unacknowledgedResults: [],
      protocolVersion: 3,
      pipelineWindow: 1_000,
      scriptKinds: [], // scripts are off by default
    });
    expect(executor.sessionId).toBe(session.sessionId);
    expect(() => executor.register('late', () => undefined)).toThrow(/before start/);
  });

  it('rejects start() with UNAUTHENTICATED when the token is wrong', async () => {
    const admin = await h.admin({ token: 'right' });
    const executor = await h.executor(admin, { accessToken: 'wrong' });
    executor.register('echo', () => 'x');

    const error = await executor.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ExecutorConnectError);
    expect(error).toMatchObject({
      code: Status.UNAUTHENTICATED,
      codeName: 'UNAUTHENTICATED',
      address: admin.address,
    });
    expect(String(error)).toMatch(/accessToken/);
    expect(executor.state).toBe('stopped');
    expect(admin.rejectedCalls).toBe(1);
    expect(admin.sessions).toHaveLength(0);
  });

  it('keeps retrying until an admin is reachable', async () => {
    const down = await h.admin();
    const address = down.address;
    await down.stop();
    const up = await h.admin();
    // The unreachable address fails fast (connection refused) and the next one is tried.
    const ex = await h.executor(up, { adminAddresses: [address, up.address] });
    ex.register('echo', () => 'x');
    await ex.start();
    expect(ex.state).toBe('running');
    expect(up.sessions).toHaveLength(1);
  });

  it('sends beats with the running and queued counts', async () => {
    const admin = await h.admin({ beatIntervalMs: 50 });
    const executor = await h.executor(admin);
    const release = gate();
    executor.register('hold', () => release.promise);
    await executor.start();
    const session = await admin.session(0);

    await session.run({ logId: '1', handler: 'hold' });
    await session.run({ logId: '2', handler: 'hold' });
    const beat = await session.waitFor(
      () => session.ofKind('beat').find(b => b.runningCount === 1 && b.queuedCount === 1),
      'a beat with 1 running and 1 queued',
    );
    expect(beat.sentAt).toBeInstanceOf(Date);
    expect(beat.eventLoopLagMs).toBeGreaterThanOrEqual(0);
    release.open();
  });

  it('answers BeatRequest', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin);
    executor.register('echo', () => 'x');
    await executor.start();
    const session = await admin.session(0);
    const reply = await session.request({ $case: 'beatRequest', value: {} });
    expect(reply).toMatchObject({ accepted: true, rejectReason: RejectReason.REJECT_REASON_UNSPECIFIED });
  });
});

describe('batched envelopes (protocol 2)', () => {
  it('handles the run requests of an AdminBatch in order, answers each, and applies its acknowledgement', async () => {
    const admin = await h.admin({ autoAck: false });
    const executor = await h.executor(admin);
    const started: string[] = [];
    executor.register('echo', ctx => {
      started.push(ctx.logId);
      return `echo:${ctx.param}`;
    });
    await executor.start();
    const s0 = await admin.session(0);

    await s0.run({ logId: '1', handler: 'echo', param: 'single' });
    await s0.waitForResult('1');
    const logIds = ['2', '3', '4', '5'];
    s0.send({
      kind: {
        $case: 'batch',
        value: {
          runRequests: logIds.map((logId, i) => ({
            ...runRequest({ logId, param: `p${logId}`, jobId: '7' }),
            requestId: String(100 + i),
          })),
          resultAck: { results: [{ logId: '1', attempt: 1 }], refused: [] },
        },
      },
    });
    const results = await Promise.all(logIds.map(logId => s0.waitForResult(logId)));
    expect(results.map(r => r.message)).toEqual(logIds.map(logId => `echo:p${logId}`));
    // One job, serial: started in the order of the batch.
    expect(started).toEqual(['1', ...logIds]);
    const replies = s0.ofKind('reply').filter(r => Number(r.requestId) >= 100);
    expect(replies.map(r => [r.requestId, r.accepted])).toEqual([
      ['100', true],
      ['101', true],
      ['102', true],
      ['103', true],
    ]);

    // The batch's acknowledgement was applied: a new stream re-sends only the others.
    s0.end();
    const s1 = await admin.session(1);
    expect(s1.register.unacknowledgedResults.map(r => r.logId).sort()).toEqual(logIds);
  });

  it('packs the replies and results of a burst into ExecutorBatch envelopes', async () => {
    const admin = await h.admin();
    const executor = await h.executor(admin, { capacity: 100 });
    executor.register('echo', ctx => `echo:${ctx.param}`);
    await executor.start();
    const s0 = await admin.session(0);
    const logIds = Array.from({ length: 50 }, (_, i) => String(1000 + i));
    const replies = await Promise.all(
      logIds.map(logId => s0.run({ logId, handler: 'echo', jobId: logId, param: logId })),
    );
    expect(replies.every(r => r.accepted)).toBe(true);
    const results = await Promise.all(logIds.map(logId => s0.waitForResult(logId)));
    expect(results.map(r => r.message)).toEqual(logIds.map(logId => `echo:${logId}`));
    // 100 items (50 replies, 50 results) travelled in far fewer stream messages.
    expect(s0.batchesReceived).toBeGreaterThan(0);
    expect(s0.streamMessages).toBeLessThan(25);
  });
});

describe('reconnecting', () => {
  it('re-sends unacknowledged results after every reconnect until they are acknowledged', async () => {
    const admin = await h.admin({ autoAck: false });
    const executor = await h.executor(admin);
    executor.register('echo', ctx => `echo:${ctx.param}`);
    await executor.start();

    const s0 = await admin.session(0);
    await s0.run({ logId: '11', handler: 'echo', param: 'a' });
    const first = await s0.waitForResult('11');
    expect(first).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, message: 'echo:a' });

    s0.end();
    const s1 = await admin.session(1);
    expect(s1.register.unacknowledgedResults).toEqual([{ logId: '11', attempt: 1 }]);
    expect(await s1.waitForResult('11')).toEqual(first);

    s1.send({ kind: { $case: 'resultAck', value: { results: [{ logId: '11', attempt: 1 }] } } });
    // Admin messages are handled in order, so once this is answered the ack was applied.
    await s1.request({ $case: 'beatRequest', value: {} });
    s1.fail(Status.UNAVAILABLE);

    const s2 = await admin.session(2);
    expect(s2.register.unacknowledgedResults).toEqual([]);
    await s2.request({ $case: 'beatRequest', value: {} });
    expect(s2.results()).toEqual([]);
  });

  it('re-sends spooled results from a new executor process with the same dataDir', async () => {
    const admin = await h.admin({ autoAck: false });
    const dataDir = await h.tempDir();
    const first = await h.executor(admin, { dataDir, resultFlushTimeoutMs: 50 });
    first.register('fail', () => {
      throw new Error('boom');
    });
    await first.start();
    const s0 = await admin.session(0);
    await s0.run({ logId: '21', handler: 'fail' });
    const original = await s0.waitForResult('21');
    expect(original).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_FAILED, message: 'boom' });
    await first.stop();
    const spooled = await readFile(path.join(dataDir, 'results.spool.jsonl'), 'utf8');
    expect(spooled).toContain('"logId":"21"');

    const second = await h.executor(admin, { dataDir });
    second.register('fail', () => undefined);
    await second.start();
    const s1 = await admin.session(1);
    expect(s1.register.unacknowledgedResults).toEqual([{ logId: '21', attempt: 1 }]);
    expect(await s1.waitForResult('21')).toEqual(original);
    s1.send({ kind: { $case: 'resultAck', value: { results: [{ logId: '21', attempt: 1 }] } } });
    await s1.request({ $case: 'beatRequest', value: {} });
    await second.stop();

    const third = await h.executor(admin, { dataDir });
    third.register('fail', () => undefined);
    await third.start();
    const s2 = await admin.session(2);
    expect(s2.register.unacknowledgedResults).toEqual([]);
  });

  it('on Drain closes the stream and reconnects to the next address, keeping runs', async () => {
    const a = await h.admin();
    const b = await h.admin();
    const executor = await h.executor([a, b]);
    const release = gate();
    executor.register('hold', () => release.promise.then(() => 'held'));
    await executor.start();

    const [first, other] = a.sessions.length === 1 ? [a, b] : [b, a];
    const s0 = await first.session(0);
    await s0.run({ logId: '31', handler: 'hold' });
    s0.send({ kind: { $case: 'drain', value: { reason: 'rolling restart' } } });

    await s0.waitForClose();
    const s1 = await other.session(0);
    expect(s1.register.running).toEqual([{ logId: '31', attempt: 1 }]);
    release.open();
    expect(await s1.waitForResult('31')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'held',
    });
    expect(s0.results()).toEqual([]);
  });
});
