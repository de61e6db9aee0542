import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogStatus } from '@jobstream/proto/admin';
import { adminClient, finishedLog, TEST_ADMIN_TOKEN, waitFor } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import {
  buildPackages,
  installOffline,
  packWorkspaces,
  repoRoot,
  writeConsumerProject,
} from './support/package-install.js';
import { ChildTs } from './support/processes.js';

const run = promisify(execFile);

/** An application that embeds the SDK the way a user's does: plain JavaScript, plain node. */
const CONSUMER_EXECUTOR = `import { Executor, PROTOCOL_VERSION } from '@jobstream/executor';

const executor = new Executor({
  adminAddresses: [process.env.ADMIN_ADDRESS],
  appName: 'packed',
  accessToken: process.env.ACCESS_TOKEN,
  instanceName: 'packed-1',
  dataDir: process.env.DATA_DIR,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
});
executor.register('greet', ctx => {
  ctx.log('hello from the installed SDK');
  return Promise.resolve('greeted ' + ctx.param);
});
process.on('SIGTERM', () => executor.stop().then(() => process.exit(0)));
await executor.start();
console.log(JSON.stringify({ event: 'ready', protocolVersion: PROTOCOL_VERSION }));
`;

/** The same in TypeScript, type-checked against the installed declaration files. */
const CONSUMER_TYPESCRIPT = `import { Executor, type HandlerContext } from '@jobstream/executor';
import { RunOutcome } from '@jobstream/proto/types';

const executor: Executor = new Executor({ adminAddresses: ['127.0.0.1:1'], appName: 'typed', accessToken: 't' });
executor.register('typed', (ctx: HandlerContext) => Promise.resolve(ctx.param.toUpperCase()));
export const succeeded: number = RunOutcome.RUN_OUTCOME_SUCCEEDED;
`;

/**
 * What a user outside this repository gets: the SDK and the contract package packed with
 * `npm pack`, installed from the tarballs into a new project (dependencies from npm's
 * cache at the locked versions, no registry), and an executor of that project running a
 * job for the admin run from its build (bin → dist, no tsx).
 */
describe('the packages as a user installs them', () => {
  let database: TestDatabase;
  let workDir: string;
  const children: ChildTs[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    workDir = await tempDir('packages');
  });

  afterAll(async () => {
    await Promise.all(children.map(child => child.kill('SIGKILL')));
    await database?.drop();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  it('builds, packs and installs the SDK, whose executor runs a job for the built admin', async () => {
    await buildPackages();
    const packed = await packWorkspaces(
      [
        { name: '@jobstream/proto', folder: 'proto' },
        { name: '@jobstream/executor', folder: 'executor-sdk' },
      ],
      workDir,
    );
    const project = path.join(workDir, 'consumer');
    await mkdir(project);
    await writeConsumerProject(project, packed);
    await installOffline(project);

    // What was installed is the build: no sources, and the SDK never loads the operator API.
    const sdkDir = path.join(project, 'node_modules/@jobstream/executor');
    expect(existsSync(path.join(sdkDir, 'dist/index.js'))).toBe(true);
    expect(existsSync(path.join(sdkDir, 'src'))).toBe(false);
    const sdkFiles = (await readdir(path.join(sdkDir, 'dist'))).filter(file => file.endsWith('.js'));
    for (const file of sdkFiles) {
      const code = await readFile(path.join(sdkDir, 'dist', file), 'utf8');
      expect(code, file).not.toMatch(/@jobstream\/proto\/(admin|peer)|jobstream\/v1\/(admin|peer)/);
    }

    await writeFile(path.join(project, 'typed.ts'), CONSUMER_TYPESCRIPT);
    await writeFile(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: [],
          skipLibCheck: false,
        },
        files: ['typed.ts'],
      }),
    );
    const typecheck = await run(process.execPath, [
      path.join(repoRoot, 'node_modules/typescript/bin/tsc'),
      '-p',
      project,
    ]).catch((error: Error & { stdout?: string }) => ({
      stdout: `tsc failed:\n${error.stdout ?? error.message}`,
    }));
    expect(typecheck.stdout).toBe('');

    const admin = new ChildTs(
      'admin/bin/jobstream-admin.js',
      ['serve'],
      {
        DATABASE_URL: database.url,
        JOBSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        JOBSTREAM_GRPC_PORT: '0',
        JOBSTREAM_METRICS_PORT: 'off',
        JOBSTREAM_CONSOLE_PORT: 'off',
        JOBSTREAM_LOG_LEVEL: 'info',
      },
      { compiled: true },
    );
    children.push(admin);
    const started = await admin.waitForJson(record => record.msg === 'admin started');
    const address = String(started.grpc);
    const { client, channel } = adminClient(address);
    try {
      const { groupId, token } = await createGroup(client, 'packed');
      const jobId = await createJob(client, groupId, 'greet', { param: 'the user' });

      await writeFile(path.join(project, 'executor.mjs'), CONSUMER_EXECUTOR);
      const executor = new ChildTs(
        'executor.mjs',
        [],
        { ADMIN_ADDRESS: address, ACCESS_TOKEN: token, DATA_DIR: path.join(workDir, 'executor-data') },
        { compiled: true, cwd: project },
      );
      children.push(executor);
      const ready = await executor.waitForJson(record => record.event === 'ready');
      expect(ready.protocolVersion).toBe(3);
      await waitFor(
        async () =>
          (await client.listExecutors({ appName: 'packed' })).executors.length === 1 ? true : undefined,
        { what: 'the installed executor to be listed' },
      );

      const { logIds } = await client.triggerJob({ jobId });
      const log = await finishedLog(client, logIds[0]!);
      expect(log.status).toBe(LogStatus.LOG_STATUS_SUCCEEDED);
      expect(log.handleMessage).toBe('greeted the user');
      const read = await client.readExecutorLog({ logId: logIds[0]!, fromLine: 1 });
      expect(read.lines.join('\n')).toContain('hello from the installed SDK');
    } finally {
      channel.close();
    }
  });

  it('runs the admin with the Node flags its launcher (the jobstream-admin command) sets', async () => {
    // Executed as the command is, by its first line, not as `node <file>`.
    const probe = path.join(workDir, 'exec-argv-probe.mjs');
    await writeFile(probe, 'console.log(JSON.stringify({ execArgv: process.execArgv }));\n');
    const launched = await run(path.join(repoRoot, 'admin/bin/jobstream-admin.js'), ['--help'], {
      env: { ...process.env, NODE_OPTIONS: `--import ${pathToFileURL(probe).href}` },
    }).catch((error: Error & { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    const [first] = launched.stdout.split('\n');
    const { execArgv } = JSON.parse(first!) as { execArgv: string[] };
    expect(execArgv).toContain('--max-semi-space-size=64');
  });
});
