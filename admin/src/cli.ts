import path from 'node:path';
import { AdminApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { persistentSecret, prepareDemo, spawnDemoExecutor } from './demo.js';
import { createLogger } from './logger.js';

const USAGE = `usage: jobstream-admin [serve|migrate|demo]

  serve    run the admin (default); configured by environment variables
  migrate  apply database migrations to DATABASE_URL and exit
  demo     run the admin (embedded PostgreSQL unless DATABASE_URL is set) with a demo executor

Environment: DATABASE_URL, JOBSTREAM_ADMIN_TOKEN, JOBSTREAM_GRPC_HOST, JOBSTREAM_GRPC_PORT,
JOBSTREAM_METRICS_PORT ("off" to disable), JOBSTREAM_DATA_DIR, JOBSTREAM_BEAT_INTERVAL_MS,
JOBSTREAM_REQUEST_DEADLINE_MS, JOBSTREAM_LOG_LEVEL. See README.md.`;

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
  const config = loadConfig(process.env, { requireAdminToken: false });
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

async function demo(): Promise<void> {
  const dataDir = path.resolve(process.env.JOBSTREAM_DATA_DIR ?? 'data');
  const adminToken =
    process.env.JOBSTREAM_ADMIN_TOKEN || (await persistentSecret(path.join(dataDir, 'admin-token')));
  const config = loadConfig({ ...process.env, JOBSTREAM_ADMIN_TOKEN: adminToken });
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
  demoExecutor.process = spawnDemoExecutor({
    adminAddress: app.grpcAddress,
    accessToken: executorToken,
    dataDir: path.join(config.dataDir, 'demo-executor'),
  });
  const target = app.grpcAddress;
  const auth = `-H 'authorization: Bearer ${adminToken}'`;
  console.log(`
jobstream admin is up.
  gRPC (AdminService, ExecutorService, reflection, health): ${target}
  Prometheus metrics: ${app.metricsPort === undefined ? 'off' : `http://${config.metricsHost}:${app.metricsPort}/metrics`}
  admin token (kept in ${path.join(dataDir, 'admin-token')}): ${adminToken}

Try it (grpcurl needs no .proto files: the admin serves reflection):
  grpcurl -plaintext ${target} list
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
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
