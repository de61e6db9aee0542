import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../../admin/src/db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../admin/src/db/embedded-postgres.js';
import { migrateToLatest } from '../../admin/src/db/migrate.js';
import { CHILD_MARK_VARIABLE, TEST_RUN_ID_VARIABLE } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the server's `postgres` database: tests create their databases through it. */
    databaseServerUrl: string;
    /** A migrated database that test databases are cloned from; nothing connects to it. */
    databaseTemplate: string;
    /** Every test database of this run is named with it, so teardown can find leftovers. */
    databaseClonePrefix: string;
  }
}

const NAME_PATTERN = /^jobstream_(?:tpl|t)_([0-9a-z]{8})[0-9a-f]{6}(?:_|$)/;
// Runs killed outright (no teardown) leave databases on a shared server; the machine's
// PostgreSQL outlives sessions, so they would pile up. No test run lasts this long.
const STALE_AFTER_MS = 12 * 60 * 60 * 1000;

/**
 * One PostgreSQL server and one migrated template per `vitest run`: TEST_DATABASE_URL's
 * server when set (CI points it at the machine's PostgreSQL), an embedded one otherwise.
 * Test files clone the template (test/support/database.ts), which takes milliseconds
 * where migrating each database would take far longer.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let embedded: { server: EmbeddedPostgres; dir: string } | undefined;
  const stopEmbedded = async (): Promise<void> => {
    if (embedded === undefined) return;
    await embedded.server.stop();
    await fs.rm(embedded.dir, { recursive: true, force: true });
  };

  let serverUrl = process.env.TEST_DATABASE_URL ?? '';
  if (serverUrl === '') {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jobstream-test-pg-'));
    // As root the server runs as `postgres`, which must be able to enter this directory.
    await fs.chmod(dir, 0o755);
    try {
      const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data') });
      embedded = { server, dir };
      serverUrl = server.connectionString;
    } catch (error) {
      await fs.rm(dir, { recursive: true, force: true });
      throw error;
    }
  }
  const server = serverUrl;

  const runId = `${Date.now().toString(36).padStart(8, '0')}${randomBytes(3).toString('hex')}`;
  // Workers inherit it and mark the processes they spawn with it (processes.ts).
  process.env[TEST_RUN_ID_VARIABLE] = runId;
  const template = `jobstream_tpl_${runId}`;
  const clonePrefix = `jobstream_t_${runId}_`;
  const databaseUrl = (name: string): string => {
    const url = new URL(server);
    url.pathname = `/${name}`;
    return url.toString();
  };

  try {
    await withClient(server, async client => {
      await dropStaleDatabases(client);
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(template)}`);
    });
    const db = createDatabase({ connectionString: databaseUrl(template), maxConnections: 1 });
    try {
      await migrateToLatest(db);
    } finally {
      await db.destroy();
    }
    // CREATE DATABASE ... TEMPLATE fails while anything is connected to the template.
    await withClient(server, client =>
      client.query(`ALTER DATABASE ${client.escapeIdentifier(template)} ALLOW_CONNECTIONS false`),
    );
  } catch (error) {
    await withClient(server, client => dropDatabases(client, [template])).catch(() => undefined);
    await stopEmbedded();
    throw error;
  }

  project.provide('databaseServerUrl', server);
  project.provide('databaseTemplate', template);
  project.provide('databaseClonePrefix', clonePrefix);

  return async () => {
    const killed = await killMarkedProcesses(runId);
    if (killed > 0) process.stderr.write(`teardown killed ${killed} process(es) tests left running\n`);
    try {
      await withClient(server, async client => {
        // Clones a crashed or careless test file did not drop go with the template.
        const { rows } = await client.query<{ datname: string }>(
          'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
          [clonePrefix],
        );
        await dropDatabases(client, [...rows.map(row => row.datname), template]);
      });
    } finally {
      await stopEmbedded();
    }
  };
}

/**
 * SIGKILLs processes spawned by this run's tests that outlived their worker (one that
 * crashed or was killed before its cleanup ran). Linux only: elsewhere finds none.
 */
async function killMarkedProcesses(runId: string): Promise<number> {
  const mark = `${CHILD_MARK_VARIABLE}=${runId}`;
  const pids = await fs.readdir('/proc').catch(() => []);
  let killed = 0;
  for (const entry of pids) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    if (!environ.split('\0').includes(mark)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed += 1;
    } catch {
      // Gone meanwhile.
    }
  }
  return killed;
}

async function withClient<T>(connectionString: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
  } catch (error) {
    const where = connectionString.replace(/\/\/[^@/]*@/, '//');
    throw new Error(`cannot connect to the test database server at ${where}`, { cause: error });
  }
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function dropDatabases(client: pg.Client, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  }
}

async function dropStaleDatabases(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname LIKE 'jobstream\\_t%'",
  );
  const stale = rows
    .map(row => row.datname)
    .filter(name => {
      const created = NAME_PATTERN.exec(name)?.[1];
      return created !== undefined && Date.now() - Number.parseInt(created, 36) > STALE_AFTER_MS;
    });
  await dropDatabases(client, stale);
}
