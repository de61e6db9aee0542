import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminApp } from './app.js';
import { findGroupByAppName, insertGroup, setGroupTokenHash } from './db/groups.repository.js';
import { insertJob, listJobs } from './db/jobs.repository.js';
import type { JobSpec } from './domain.js';
import { generateToken, hashToken } from './auth/tokens.js';
import { createUserAccount } from './auth/create-user.js';
import { generatePassword } from './auth/passwords.js';
import { countUsers, findCredentials, insertUserToken } from './db/users.repository.js';

export const DEMO_APP_NAME = 'demo';

/** Reads a secret kept in the data dir, or creates it (mode 0600) on first use. */
export async function persistentSecret(file: string): Promise<string> {
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  await mkdir(path.dirname(file), { recursive: true });
  const secret = generateToken();
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

const demoJobs = (groupId: string): JobSpec[] =>
  [
    { description: 'Say hello', handler: 'hello', param: 'world' },
    {
      description: 'Count down, logging each step (try ReadExecutorLog and KillRun)',
      handler: 'countdown',
      param: '10',
    },
    { description: 'Fail on purpose', handler: 'flaky', param: '' },
  ].map(job => ({
    groupId,
    author: 'demo',
    alarmEmail: '',
    scheduleType: 'NONE',
    scheduleConf: '',
    timeZone: '',
    misfireStrategy: 'DO_NOTHING',
    routeStrategy: 'FIRST',
    blockStrategy: 'SERIAL_EXECUTION',
    timeoutSeconds: 0,
    failRetryCount: 0,
    failRetryDelayMs: 0,
    glueType: 'BEAN',
    glueSource: '',
    glueRemark: '',
    childJobIds: [],
    ...job,
  }));

/**
 * Prepares the demo: the "demo" executor group with a token kept under the data dir,
 * and a few jobs. Returns the executor's token.
 */
export async function prepareDemo(app: AdminApp): Promise<{ executorToken: string; jobIds: string[] }> {
  const tokenFile = path.join(app.config.dataDir, 'demo-executor-token');
  const hadToken = existsSync(tokenFile);
  const executorToken = await persistentSecret(tokenFile);
  let group = await findGroupByAppName(app.db, DEMO_APP_NAME);
  if (!group) {
    group = await insertGroup(
      app.db,
      {
        appName: DEMO_APP_NAME,
        title: 'Demo executors',
        addressType: 'AUTO',
        addresses: [],
        scriptKinds: [],
      },
      hashToken(executorToken),
    );
  } else if (!hadToken) {
    await setGroupTokenHash(app.db, group.id, hashToken(executorToken), null);
  }
  let { jobs } = await listJobs(app.db, { groupId: group.id }, { afterId: undefined, limit: 10 });
  if (jobs.length === 0) {
    jobs = [];
    for (const spec of demoJobs(group.id)) jobs.push(await insertJob(app.db, spec));
  }
  return { executorToken, jobIds: jobs.map(job => job.id) };
}

export const DEMO_ADMIN_USERNAME = 'admin';

export interface DemoAccess {
  /** Set only on the start that created the admin user: shown once, never stored in clear. */
  generatedPassword: string | undefined;
  /** A session token of the demo admin user for this run, so the printed commands work as-is. */
  sessionToken: string | undefined;
  expiresAt: Date | undefined;
}

/**
 * The demo's operator access. There is no default password: on the first start
 * (no user yet) an "admin" user gets a generated password, printed once; every start
 * opens a session for it so the printed grpcurl commands work without a login.
 */
export async function prepareDemoAccess(app: AdminApp): Promise<DemoAccess> {
  let generatedPassword: string | undefined;
  if ((await countUsers(app.db)) === 0) {
    generatedPassword = generatePassword();
    await createUserAccount(app.db, {
      username: DEMO_ADMIN_USERNAME,
      password: generatedPassword,
      role: 'ADMIN',
      groupIds: [],
    });
  }
  const admin = await findCredentials(app.db, { username: DEMO_ADMIN_USERNAME });
  if (!admin || admin.user.role !== 'ADMIN') {
    return { generatedPassword, sessionToken: undefined, expiresAt: undefined };
  }
  const sessionToken = generateToken('jss_');
  const expiresAt = new Date(Date.now() + app.config.sessionTtlMs);
  await insertUserToken(app.db, {
    userId: admin.user.id,
    kind: 'SESSION',
    name: 'demo',
    tokenHash: hashToken(sessionToken),
    expiresAt,
  });
  return { generatedPassword, sessionToken, expiresAt };
}

/** Starts the demo executor as a separate process, the way applications run executors. */
export function spawnDemoExecutor(options: {
  adminAddress: string;
  accessToken: string;
  dataDir: string;
}): ChildProcess {
  // The demo executor is the SDK's example, run from a jobstream checkout: from the sources
  // (admin/src) or from the build (admin/dist/admin/src).
  const candidates = [
    '../../executor-sdk/examples/demo-executor.ts',
    '../../../../executor-sdk/examples/demo-executor.ts',
  ].map(relative => fileURLToPath(new URL(relative, import.meta.url)));
  const script = candidates.find(candidate => existsSync(candidate));
  if (script === undefined) {
    throw new Error(`the demo needs a jobstream checkout; no demo executor at ${candidates.join(' or ')}`);
  }
  const child = spawn(process.execPath, ['--conditions=jobstream-source', '--import', 'tsx', script], {
    env: {
      ...process.env,
      JOBSTREAM_ADMIN_ADDRESSES: options.adminAddress,
      JOBSTREAM_APP_NAME: DEMO_APP_NAME,
      JOBSTREAM_ACCESS_TOKEN: options.accessToken,
      JOBSTREAM_EXECUTOR_DATA_DIR: options.dataDir,
      JOBSTREAM_INSTANCE_NAME: 'demo-executor-1',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return child;
}
