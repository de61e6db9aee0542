import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import { createUserAccount, CreateUserError } from './auth/create-user.js';
import { generatePassword } from './auth/passwords.js';
import type { UserRole } from './domain.js';
import { AdminApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { DEMO_ADMIN_USERNAME, prepareDemo, prepareDemoAccess, spawnDemoExecutor } from './demo.js';
import { createLogger } from './logger.js';

const USAGE = `usage: jobstream-admin [serve|migrate|demo|create-user]

  serve        run the admin (default); configured by environment variables
  migrate      apply database migrations to DATABASE_URL and exit
  demo         run the admin (embedded PostgreSQL unless DATABASE_URL is set) with a demo executor
  create-user  --username NAME [--role admin|operator|viewer] [--group ID]... [--password-file FILE]
               add a user to DATABASE_URL; the password is read from FILE, or from stdin when
               it is not a terminal, or else generated and printed once

Environment: DATABASE_URL, JOBSTREAM_ADMIN_TOKEN, JOBSTREAM_GRPC_HOST, JOBSTREAM_GRPC_PORT,
JOBSTREAM_METRICS_PORT ("off" to disable), JOBSTREAM_CONSOLE_HOST, JOBSTREAM_CONSOLE_PORT ("off" to
disable), JOBSTREAM_CONSOLE_DIR, JOBSTREAM_DATA_DIR, JOBSTREAM_BEAT_INTERVAL_MS,
JOBSTREAM_REQUEST_DEADLINE_MS, JOBSTREAM_LOG_LEVEL, JOBSTREAM_INITIAL_ADMIN_USERNAME,
JOBSTREAM_INITIAL_ADMIN_PASSWORD_FILE, JOBSTREAM_TLS_CERT, JOBSTREAM_TLS_KEY, JOBSTREAM_TLS_CLIENT_CA,
JOBSTREAM_TLS_CA. See README.md.`;

/** Stops `stop` on the first SIGINT/SIGTERM; a second signal exits at once. */
function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(1);
      stopping = true;
      stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

async function serve(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.logLevel });
  const app = new AdminApp(config, logger);
  onShutdownSignal(() => app.stop());
  await app.start();
}

async function migrate(): Promise<void> {
  const config = loadConfig(process.env);
  if (config.databaseUrl === undefined) throw new ConfigError(['DATABASE_URL is required for migrate']);
  const db = createDatabase({ connectionString: config.databaseUrl });
  try {
    const { results } = await migrateToLatest(db);
    for (const result of results ?? []) console.log(`${result.status}: ${result.migrationName}`);
    if (!results?.length) console.log('schema is up to date');
  } finally {
    await db.destroy();
  }
}

const ROLES: Readonly<Record<string, UserRole>> = { admin: 'ADMIN', operator: 'OPERATOR', viewer: 'VIEWER' };

async function createUser(args: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      username: { type: 'string' },
      role: { type: 'string', default: 'admin' },
      group: { type: 'string', multiple: true, default: [] },
      'password-file': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const problems: string[] = [];
  const role = ROLES[values.role];
  if (values.username === undefined) problems.push('--username is required');
  if (role === undefined) problems.push(`--role must be admin, operator or viewer, got "${values.role}"`);
  const groupIds = values.group;
  for (const id of groupIds)
    if (!/^[1-9][0-9]{0,18}$/.test(id)) problems.push(`--group "${id}" is not an id`);
  const databaseUrl = process.env.DATABASE_URL || undefined;
  if (databaseUrl === undefined) problems.push('DATABASE_URL is required for create-user');
  if (problems.length > 0 || values.username === undefined || role === undefined || !databaseUrl) {
    throw new ConfigError(problems);
  }
  let password: string;
  let generated = false;
  if (values['password-file'] !== undefined) {
    password = (await readFile(values['password-file'], 'utf8')).replace(/\r?\n$/, '');
  } else if (!process.stdin.isTTY) {
    password = (await text(process.stdin)).replace(/\r?\n$/, '');
  } else {
    password = generatePassword();
    generated = true;
  }
  const db = createDatabase({ connectionString: databaseUrl });
  try {
    await migrateToLatest(db);
    const user = await createUserAccount(db, { username: values.username, password, role, groupIds });
    console.log(`created user "${user.username}" (id ${user.id}, role ${role.toLowerCase()})`);
    if (generated) console.log(`generated password (shown only now): ${password}`);
  } finally {
    await db.destroy();
  }
}

async function demo(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: config.logLevel });
  const app = new AdminApp(config, logger);
  const demoExecutor: { process?: ReturnType<typeof spawnDemoExecutor> } = {};
  onShutdownSignal(async () => {
    const child = demoExecutor.process;
    if (child && child.exitCode === null) {
      const exited = new Promise(resolve => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await app.stop();
  });
  await app.start();
  const { executorToken, jobIds } = await prepareDemo(app);
  const access = await prepareDemoAccess(app);
  demoExecutor.process = spawnDemoExecutor({
    adminAddress: app.grpcAddress,
    accessToken: executorToken,
    dataDir: path.join(config.dataDir, 'demo-executor'),
  });
  const target = app.grpcAddress;
  const auth = access.sessionToken
    ? `-H 'authorization: Bearer ${access.sessionToken}'`
    : "-H 'authorization: Bearer <token from Login>'";
  const password = access.generatedPassword
    ? `password (generated now, shown only this once): ${access.generatedPassword}`
    : 'password: the one printed on the first start (or add a user with `jobstream-admin create-user`)';
  console.log(`
jobstream admin is up.
  gRPC (AdminService, ExecutorService, reflection, health): ${target}
  web console: ${app.consoleUrl ?? 'off (JOBSTREAM_CONSOLE_PORT=off)'}
  Prometheus metrics: ${app.metricsPort === undefined ? 'off' : `http://${config.metricsHost}:${app.metricsPort}/metrics`}
  admin user: ${DEMO_ADMIN_USERNAME}
  ${password}
  session token for this run${access.expiresAt ? ` (valid until ${access.expiresAt.toISOString()})` : ''}: ${access.sessionToken ?? '(none: the "admin" user is gone)'}

Try it (grpcurl needs no .proto files: the admin serves reflection):
  grpcurl -plaintext ${target} list
  grpcurl -plaintext -d '{"username": "${DEMO_ADMIN_USERNAME}", "password": "…"}' ${target} jobstream.v1.AdminService/Login
  grpcurl -plaintext ${auth} ${target} jobstream.v1.AdminService/ListExecutors
  grpcurl -plaintext ${auth} -d '{"jobId": "${jobIds[0] ?? '1'}", "param": "grpcurl"}' ${target} jobstream.v1.AdminService/TriggerJob
  grpcurl -plaintext ${auth} -d '{"jobId": "${jobIds[0] ?? '1'}"}' ${target} jobstream.v1.AdminService/ListLogs
`);
}

async function main(argv: readonly string[]): Promise<void> {
  const command = argv[0] ?? 'serve';
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      return migrate();
    case 'demo':
      return demo();
    case 'create-user':
      return createUser(argv.slice(1));
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return;
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const expected =
    error instanceof ConfigError ||
    error instanceof CreateUserError ||
    (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION';
  console.error(expected ? (error as Error).message : error);
  process.exit(1);
});
