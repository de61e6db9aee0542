import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RejectReason } from '@jobstream/proto/executor';
import type { RunRequest } from '@jobstream/proto/executor';
import { BlockStrategy, GlueType, RunOutcome } from '@jobstream/proto/types';
import { Executor, silentLogger } from '../src/index.js';
import type { ExecutorOptions } from '../src/index.js';
import { EVENT_CEILING_MS } from '../../test/support/ceiling.js';
import { processAlive, processGone } from '../../test/support/process-alive.js';
import type { FakeSession } from './support/fake-admin.js';
import { Harness } from './support/harness.js';

// Script (GLUE) runs of the Node SDK on real processes. test/conformance/ checks the contract
// (success, failure, arguments, live logs, kill and timeout of the whole group, refusal) for
// every SDK; these check what is the Node SDK's own: options, caching, work directories, stop.

const h = new Harness();
afterEach(() => h.cleanup());

async function connected(
  options: Partial<ExecutorOptions> = {},
): Promise<{ executor: Executor; session: FakeSession; dataDir: string }> {
  const admin = await h.admin();
  const dataDir = await h.tempDir();
  const executor = await h.executor(admin, { dataDir, ...options });
  await executor.start();
  return { executor, session: await admin.session(0), dataDir };
}

function script(
  logId: string,
  glueType: GlueType,
  glueSource: string,
  more: Partial<Omit<RunRequest, 'requestId'>> = {},
): Partial<Omit<RunRequest, 'requestId'>> & { logId: string } {
  return { logId, handler: '', glueType, glueSource, glueUpdatedAt: new Date(1_700_000_000_000), ...more };
}

async function logLines(session: FakeSession, logId: string): Promise<string[]> {
  const reply = await session.request({
    $case: 'logReadRequest',
    value: { logId, fromLine: 1, maxLines: 0 },
  });
  // Each line starts with its timestamp.
  return (reply.logChunk?.lines ?? []).map(line => line.slice(line.indexOf(' ') + 1));
}

describe('script options', () => {
  it('lists every problem of the scripts option at once', () => {
    const withScripts = (scripts: unknown) => () =>
      new Executor({
        adminAddresses: ['127.0.0.1:1'],
        appName: 'app',
        accessToken: 'token',
        logger: silentLogger,
        scripts: scripts as ExecutorOptions['scripts'],
      });
    expect(
      withScripts({
        kinds: ['SHELL', 'PHP'],
        interpreters: { RUBY: 'ruby' },
        killGraceMs: -1,
        stderrTailLines: 0,
        colour: 'blue',
      }),
    ).toThrow(
      /"scripts\.colour"[\s\S]*"PHP" is not a script kind[\s\S]*"RUBY" is not a script kind[\s\S]*scripts\.killGraceMs[\s\S]*scripts\.stderrTailLines/,
    );
    expect(withScripts({})).toThrow(/scripts\.kinds must be a list/);
    expect(withScripts({ kinds: ['SHELL'], interpreters: { SHELL: '' } })).toThrow(
      /scripts\.interpreters\.SHELL must be a non-empty path/,
    );
  });

  it('advertises the kinds it opted into at Register, and none by default', async () => {
    const on = await connected({ scripts: { kinds: ['SHELL', 'NODEJS'] } });
    expect(on.session.register.scriptKinds).toEqual([GlueType.GLUE_TYPE_SHELL, GlueType.GLUE_TYPE_NODEJS]);
    const off = await connected({ instanceName: 'test-executor-2' });
    expect(off.session.register.scriptKinds).toEqual([]);
  });
});

describe('script runs', () => {
  it('refuses a kind it did not opt into, and PHP, as INVALID without starting anything', async () => {
    const { session, dataDir } = await connected({ scripts: { kinds: ['SHELL'] } });
    const python = await session.run(script('11', GlueType.GLUE_TYPE_PYTHON, 'print(1)'));
    expect(python).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_INVALID });
    expect(python.message).toBe(
      'this executor does not run PYTHON scripts (not enabled in its scripts option)',
    );
    const php = await session.run(script('12', GlueType.GLUE_TYPE_PHP, '<?php echo 1;'));
    expect(php).toMatchObject({ accepted: false, rejectReason: RejectReason.REJECT_REASON_INVALID });
    expect(php.message).toMatch(/does not run PHP scripts/);
    expect(await readdir(path.join(dataDir, 'glue', 'scripts'))).toEqual([]);
  });

  it('runs a NODEJS script with its arguments and environment, in a fresh working directory removed afterwards', async () => {
    const { session, dataDir } = await connected({ scripts: { kinds: ['NODEJS'] } });
    const source = [
      'const e = process.env;',
      "console.log('argv=' + JSON.stringify(process.argv.slice(2)));",
      "console.log('env=' + [e.JOBSTREAM_PARAM, e.JOBSTREAM_SHARD_INDEX, e.JOBSTREAM_SHARD_TOTAL, e.JOBSTREAM_JOB_ID, e.JOBSTREAM_LOG_ID].join('|'));",
      "console.log('cwd=' + process.cwd());",
      "console.log('module=' + typeof require);",
    ].join('\n');
    const request = script('21', GlueType.GLUE_TYPE_NODEJS, source, {
      jobId: '5',
      param: 'a b "c"',
      shardIndex: 1,
      shardTotal: 3,
    });
    expect(await session.run(request)).toMatchObject({ accepted: true });
    expect(await session.waitForResult('21')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED,
      message: 'exit code 0',
    });
    const lines = await logLines(session, '21');
    expect(lines[0]).toMatch(/^\[jobstream\] run started: script=NODEJS job=5 log=21/);
    expect(lines).toContain('argv=["a b \\"c\\"","1","3"]');
    expect(lines).toContain('env=a b "c"|1|3|5|21');
    expect(lines).toContain('module=function');
    const cwd = lines.find(line => line.startsWith('cwd='))!.slice('cwd='.length);
    expect(path.dirname(cwd)).toBe(path.join(dataDir, 'glue', 'runs'));
    expect(await readdir(path.join(dataDir, 'glue', 'runs'))).toEqual([]);
  });

  it('caches the script file per (job, glue_updated_at): the same version is reused, a new one replaces it', async () => {
    const { session, dataDir } = await connected({ scripts: { kinds: ['SHELL'] } });
    const first = new Date(1_700_000_000_000);
    const second = new Date(1_700_000_100_000);
    const runs: [string, string, Date][] = [
      ['31', 'echo one', first],
      ['32', 'echo two', first], // same version: the cached file (echo one) runs
      ['33', 'echo two', second],
    ];
    for (const [logId, source, updatedAt] of runs) {
      await session.run(
        script(logId, GlueType.GLUE_TYPE_SHELL, source, { jobId: '9', glueUpdatedAt: updatedAt }),
      );
      await session.waitForResult(logId);
    }
    expect(await logLines(session, '31')).toContain('one');
    expect(await logLines(session, '32')).toContain('one');
    expect(await logLines(session, '33')).toContain('two');
    // The older version is pruned once a newer one is written.
    expect(await readdir(path.join(dataDir, 'glue', 'scripts'))).toEqual([`9-${second.getTime()}.sh`]);
  });

  it('fails a non-zero exit with the last stderrTailLines lines of stderr, and says the exit code when stderr is empty', async () => {
    const { session } = await connected({ scripts: { kinds: ['SHELL'], stderrTailLines: 2 } });
    await session.run(
      script('81', GlueType.GLUE_TYPE_SHELL, 'for i in 1 2 3; do echo "e$i" >&2; done\nexit 4'),
    );
    await session.run(script('82', GlueType.GLUE_TYPE_SHELL, 'echo out\nkill -9 $$', { jobId: '2' }));
    expect(await session.waitForResult('81')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_FAILED,
      message: 'e2\ne3',
    });
    expect(await session.waitForResult('82')).toMatchObject({
      outcome: RunOutcome.RUN_OUTCOME_FAILED,
      message: 'script failed: ended by signal SIGKILL',
    });
    expect(await logLines(session, '81')).toContain('[jobstream] script exit code 4');
  });

  it('fails a run whose interpreter cannot start', async () => {
    const { session } = await connected({
      scripts: { kinds: ['SHELL'], interpreters: { SHELL: '/nonexistent/jobstream-shell' } },
    });
    await session.run(script('41', GlueType.GLUE_TYPE_SHELL, 'echo hi'));
    const result = await session.waitForResult('41');
    expect(result.outcome).toBe(RunOutcome.RUN_OUTCOME_FAILED);
    expect(result.message).toMatch(/could not start the SHELL interpreter "\/nonexistent\/jobstream-shell"/);
  });

  it('ends a group that ignores SIGTERM with SIGKILL after the grace; COVER_EARLY ends the covered script', async () => {
    const { session } = await connected({ scripts: { kinds: ['SHELL'], killGraceMs: 300 } });
    const stubborn = 'trap \'\' TERM\nsleep 300 &\necho "grandchild $!"\nwhile :; do sleep 0.1; done';
    await session.run(
      script('51', GlueType.GLUE_TYPE_SHELL, stubborn, {
        jobId: '51',
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY,
      }),
    );
    const pid = await grandchild(session, '51');
    expect(processAlive(pid)).toBe(true);
    await session.run(
      script('52', GlueType.GLUE_TYPE_SHELL, 'echo covered it', {
        jobId: '51',
        blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY,
        glueUpdatedAt: new Date(1_800_000_000_000),
      }),
    );
    expect(await session.waitForResult('51')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_COVERED });
    expect(await session.waitForResult('52')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });
    await processGone(pid);
  });

  it('ends running scripts with their groups on stop(): SHUTDOWN, grandchild gone', async () => {
    const { executor, session } = await connected({ scripts: { kinds: ['SHELL'], killGraceMs: 2_000 } });
    await session.run(script('61', GlueType.GLUE_TYPE_SHELL, 'sleep 300 &\necho "grandchild $!"\nwait'));
    const pid = await grandchild(session, '61');
    await executor.stop();
    expect(await session.waitForResult('61')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SHUTDOWN });
    await processGone(pid);
  });

  it('ends what a script left running in its group when it exits', async () => {
    const { session } = await connected({ scripts: { kinds: ['SHELL'] } });
    await session.run(script('71', GlueType.GLUE_TYPE_SHELL, 'sleep 300 &\necho "grandchild $!"\nexit 0'));
    expect(await session.waitForResult('71')).toMatchObject({ outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED });
    const pid = await grandchild(session, '71');
    await processGone(pid);
  });
});

/** The pid a test script printed as "grandchild <pid>", read from its log while it runs. */
async function grandchild(session: FakeSession, logId: string): Promise<number> {
  const deadline = Date.now() + EVENT_CEILING_MS;
  while (Date.now() < deadline) {
    const line = (await logLines(session, logId)).find(text => text.startsWith('grandchild '));
    if (line !== undefined) return Number(line.slice('grandchild '.length));
    await delay(20);
  }
  throw new Error(`log ${logId} never named its grandchild`);
}
