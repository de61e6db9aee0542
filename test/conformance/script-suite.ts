import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import type { Reply, RunRequest } from '@jobstream/proto/executor';
import { GlueType, RunOutcome } from '@jobstream/proto/types';
import { FakeAdmin } from '../../executor-sdk/test/support/fake-admin.js';
import type { FakeSession } from '../../executor-sdk/test/support/fake-admin.js';
import { EVENT_CEILING_MS, PROCESS_START_CEILING_MS } from '../support/ceiling.js';
import { tempDir } from '../support/fixtures.js';
import { processAlive, processGone } from '../support/process-alive.js';
import type { ChildTs } from '../support/processes.js';
import { DEBIAN_PYTHON } from '../support/python-reflection.js';
import { GLUE_TYPE, SCRIPTS } from './scripts.js';
import type { ConformanceScriptKind, SdkUnderTest } from './sdks.js';

/**
 * Script (GLUE) runs, checked against one SDK over real gRPC with a scripted admin (the
 * executor SDK's FakeAdmin), so every request the contract allows, and some it forbids, can
 * be sent as is. Two executors of the SDK: one that opted into every kind the SDK runs, one
 * with no script option at all. Real processes throughout: the scripts' grandchildren are
 * looked for by pid.
 */
export function scriptSuite(sdk: SdkUnderTest): void {
  const kinds = sdk.scriptKinds;
  let admin: FakeAdmin;
  /** The session of the executor that opted into `kinds`. */
  let scripted: FakeSession;
  /** The session of the executor without the option. */
  let plain: FakeSession;
  let plainChild: ChildTs;
  let markers: string;
  const children: ChildTs[] = [];
  let nextId = 1_000;
  const id = (): string => String((nextId += 1));

  async function startExecutor(instanceName: string, scriptKinds: readonly ConformanceScriptKind[]) {
    const child = sdk.spawn({
      adminAddresses: [admin.address],
      appName: 'conformance-scripts',
      accessToken: admin.token,
      instanceName,
      dataDir: await tempDir(instanceName),
      capacity: 8,
      scriptKinds,
      pythonInterpreter: existsSync(DEBIAN_PYTHON) ? DEBIAN_PYTHON : 'python3',
      scriptKillGraceMs: 2_000,
    });
    children.push(child);
    await child.waitForJson(record => record.event === 'ready', PROCESS_START_CEILING_MS);
    const session = await admin.session(admin.sessions.length - 1);
    expect(session.register.instanceName).toBe(instanceName);
    return { child, session };
  }

  function run(
    session: FakeSession,
    kind: ConformanceScriptKind | GlueType,
    source: string,
    more: Partial<Omit<RunRequest, 'requestId'>> = {},
  ): { logId: string; reply: Promise<Reply> } {
    const logId = id();
    const reply = session.run({
      logId,
      jobId: logId,
      handler: '',
      glueType: typeof kind === 'string' ? GLUE_TYPE[kind] : kind,
      glueSource: source,
      glueUpdatedAt: new Date(),
      ...more,
    });
    return { logId, reply };
  }

  async function readLog(session: FakeSession, logId: string): Promise<{ lines: string[]; end: boolean }> {
    const reply = await session.request({
      $case: 'logReadRequest',
      value: { logId, fromLine: 1, maxLines: 0 },
    });
    expect(reply.accepted).toBe(true);
    return { lines: reply.logChunk!.lines, end: reply.logChunk!.end };
  }

  /**
   * Reads the log of a running hold script until it names its grandchild and has ticked at
   * least twice, while the run has no result: its output is readable live.
   */
  async function grandchildOf(session: FakeSession, logId: string, live = true): Promise<number> {
    const deadline = Date.now() + EVENT_CEILING_MS;
    while (Date.now() < deadline) {
      const { lines, end } = await readLog(session, logId);
      const named = lines.find(line => / grandchild \d+$/.test(line));
      if (named !== undefined && (!live || lines.filter(line => line.endsWith(' tick')).length >= 2)) {
        if (live) {
          expect(end).toBe(false);
          expect(session.results().some(result => result.logId === logId)).toBe(false);
        }
        return Number(/ grandchild (\d+)$/.exec(named)![1]);
      }
      await delay(50);
    }
    throw new Error(`log ${logId} never named its grandchild and ticked`);
  }

  beforeAll(async () => {
    admin = await FakeAdmin.start({ token: 'conformance-scripts-token', beatIntervalMs: 2_000 });
    markers = await tempDir('conformance-script-markers');
    ({ session: scripted } = await startExecutor('scripts-on', kinds));
    ({ session: plain, child: plainChild } = await startExecutor('scripts-off', []));
  });

  afterAll(async () => {
    await Promise.all(children.map(child => child.kill('SIGKILL')));
    await admin?.stop();
  });

  it('advertises the script kinds it opted into at Register, and none without the option', () => {
    expect([...scripted.register.scriptKinds].sort()).toEqual(kinds.map(kind => GLUE_TYPE[kind]).sort());
    expect(plain.register.scriptKinds).toEqual([]);
  });

  it('runs a script: exit code 0 is SUCCEEDED, stdout and stderr are in its log, param and shard come as arguments and environment', async () => {
    await Promise.all(
      kinds.map(async kind => {
        const { logId, reply } = run(scripted, kind, SCRIPTS[kind].report, {
          param: 'two words',
          shardIndex: 2,
          shardTotal: 5,
        });
        expect(await reply).toMatchObject({ accepted: true });
        expect(await scripted.waitForResult(logId)).toMatchObject({
          outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
        });
        const { lines, end } = await readLog(scripted, logId);
        expect(end).toBe(true);
        for (const expected of ['argv=two words|2|5', `env=two words|2|5|${logId}|${logId}`, 'to stderr']) {
          expect(
            lines.some(line => line.endsWith(` ${expected}`)),
            `${kind}: ${expected}`,
          ).toBe(true);
        }
      }),
    );
  });

  it('fails a script that exits non-zero: FAILED, the message is the last lines of its stderr', async () => {
    await Promise.all(
      kinds.map(async kind => {
        const { logId, reply } = run(scripted, kind, SCRIPTS[kind].fail);
        expect(await reply).toMatchObject({ accepted: true });
        const result = await scripted.waitForResult(logId);
        expect(result.outcome, kind).toBe(RunOutcome.RUN_OUTCOME_FAILED);
        const messageLines = result.message.split('\n');
        expect(messageLines.at(-1), kind).toBe('problem 100');
        expect(messageLines, kind).not.toContain('problem 1');
        expect(result.message, kind).not.toContain('some output');
        const { lines } = await readLog(scripted, logId);
        expect(lines.some(line => line.endsWith(' problem 1'))).toBe(true);
      }),
    );
  });

  it('streams a running script’s output to live log reads; KillRun ends its whole process group, grandchild included', async () => {
    await Promise.all(
      kinds.map(async kind => {
        const { logId, reply } = run(scripted, kind, SCRIPTS[kind].hold);
        expect(await reply).toMatchObject({ accepted: true });
        const grandchild = await grandchildOf(scripted, logId);
        expect(processAlive(grandchild)).toBe(true);
        const killed = await scripted.request({
          $case: 'killRequest',
          value: { logId, reason: 'conformance' },
        });
        expect(killed.accepted).toBe(true);
        expect(await scripted.waitForResult(logId)).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_KILLED });
        await processGone(grandchild);
      }),
    );
  });

  it('ends a script’s whole process group at the job timeout: TIMED_OUT, grandchild gone', async () => {
    await Promise.all(
      kinds.map(async kind => {
        const { logId, reply } = run(scripted, kind, SCRIPTS[kind].hold, {
          timeout: { seconds: '8', nanos: 0 },
        });
        expect(await reply).toMatchObject({ accepted: true });
        const grandchild = await grandchildOf(scripted, logId, false);
        expect(await scripted.waitForResult(logId)).toMatchObject({
          outcome: RunOutcome.RUN_OUTCOME_TIMED_OUT,
        });
        await processGone(grandchild);
      }),
    );
  });

  it('refuses a script kind it did not opt into with REJECT_REASON_INVALID, whatever the request says, and starts nothing', async () => {
    const refusals: { session: FakeSession; kind: ConformanceScriptKind | GlueType; marker: string }[] = [];
    for (const kind of ['SHELL', 'PYTHON', 'NODEJS'] as const) {
      refusals.push({ session: plain, kind, marker: path.join(markers, `off-${kind}`) });
      if (!kinds.includes(kind))
        refusals.push({ session: scripted, kind, marker: path.join(markers, `on-${kind}`) });
    }
    for (const kind of [GlueType.GLUE_TYPE_POWERSHELL, GlueType.GLUE_TYPE_PHP]) {
      refusals.push({ session: scripted, kind, marker: path.join(markers, `on-${kind}`) });
    }
    const sent = refusals.map(({ session, kind, marker }) => {
      const source = typeof kind === 'string' ? SCRIPTS[kind].marker(marker) : `touch '${marker}'`;
      // A registered handler named too: the glue type decides, and the handler must not run either.
      return { ...run(session, kind, source, { handler: 'echo' }), marker };
    });
    for (const { reply, marker } of sent) {
      const answer = await reply;
      expect(answer, marker).toMatchObject({
        accepted: false,
        rejectReason: RejectReason.REJECT_REASON_INVALID,
      });
      expect(answer.message, marker).toMatch(/does not run [A-Z]+ scripts/);
    }
    // Anything started would have had time to write its marker while these round trips ran.
    for (const session of [plain, scripted]) {
      await session.request({ $case: 'beatRequest', value: {} });
    }
    await delay(500);
    for (const { logId, marker } of sent) {
      expect(existsSync(marker), marker).toBe(false);
      expect(plainChild.records(record => record.event === 'run-started' && record.logId === logId)).toEqual(
        [],
      );
    }
    expect(scripted.results().filter(result => sent.some(s => s.logId === result.logId))).toEqual([]);
  });
}
