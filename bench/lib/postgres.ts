import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { progress } from './util.js';

const LOCAL_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';
const NAME_PREFIX = 'jobstream_bench_';
const NAME_PATTERN = /^jobstream_bench_([0-9a-z]{8})_/;
/** Databases left by a run that was killed outright are dropped by a later run after this long. */
const STALE_AFTER_MS = 6 * 60 * 60 * 1000;
/** Every query of the harness is bounded (a lock wait must not hang a run). */
const STATEMENT_TIMEOUT_MS = 60_000;

export interface DatabaseServer {
  /** URL of the server's maintenance database (databases are created through it). */
  readonly url: string;
  /** Where it came from, for the report (no credentials). */
  readonly description: string;
  stop(): Promise<void>;
}

/** The server's URL with any password removed, for reports and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/**
 * BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the machine's PostgreSQL on
 * 127.0.0.1:5432 when it answers, else (or with BENCH_EMBEDDED_POSTGRES=1) an embedded
 * server in a temporary directory.
 */
export async function resolveDatabaseServer(): Promise<DatabaseServer> {
  // BENCH_EMBEDDED_POSTGRES=1 skips the servers configured or found, e.g. to compare.
  if (process.env.BENCH_EMBEDDED_POSTGRES !== '1') {
    for (const name of ['BENCH_DATABASE_URL', 'TEST_DATABASE_URL'] as const) {
      const url = process.env[name];
      if (url) {
        await withClient(url, client => client.query('select 1'));
        return { url, description: `${name} (${redactUrl(url)})`, stop: () => Promise.resolve() };
      }
    }
    try {
      await withClient(LOCAL_SERVER, client => client.query('select 1'), 3_000);
      return {
        url: LOCAL_SERVER,
        description: `local server (${LOCAL_SERVER})`,
        stop: () => Promise.resolve(),
      };
    } catch {
      progress('postgres', 'no server at 127.0.0.1:5432; starting an embedded PostgreSQL');
    }
  }
  const { startEmbeddedPostgres } = await import('../../admin/src/db/embedded-postgres.js');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'jobstream-bench-pg-'));
  // As root the server runs as `postgres`, which must be able to enter this directory.
  await fs.chmod(dir, 0o755);
  try {
    const server = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data') });
    return {
      url: server.connectionString,
      description: `embedded PostgreSQL (${redactUrl(server.connectionString)})`,
      stop: async () => {
        await server.stop();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await fs.rm(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  /** A small pool for the harness's own queries. */
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh, empty database on the server (the admin migrates it when it starts). */
export async function createBenchDatabase(server: DatabaseServer, label: string): Promise<BenchDatabase> {
  const stamp = Date.now().toString(36).padStart(8, '0');
  const name = `${NAME_PREFIX}${stamp}_${label.replace(/[^a-z0-9]/gi, '').toLowerCase()}_${randomBytes(3).toString('hex')}`;
  await withClient(server.url, client => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  const url = new URL(server.url);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: 4,
    connectionTimeoutMillis: 10_000,
    statement_timeout: STATEMENT_TIMEOUT_MS,
  });
  pool.on('error', () => undefined);
  let dropping: Promise<void> | undefined;
  return {
    name,
    url: url.toString(),
    pool,
    drop: () => {
      dropping ??= (async () => {
        await pool.end().catch(() => undefined);
        // FORCE (PostgreSQL 13+) ends the connections of admins that were killed.
        await withClient(server.url, client =>
          client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`),
        );
      })();
      return dropping;
    },
  };
}

/** Drops bench databases that runs killed outright (no cleanup) left behind. */
export async function dropStaleBenchDatabases(server: DatabaseServer): Promise<void> {
  await withClient(server.url, async client => {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'jobstream\\_bench\\_%'",
    );
    for (const { datname } of rows) {
      const created = NAME_PATTERN.exec(datname)?.[1];
      if (created === undefined || Date.now() - Number.parseInt(created, 36) < STALE_AFTER_MS) continue;
      progress('postgres', `dropping stale database ${datname}`);
      await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`);
    }
  });
}

async function withClient<T>(
  connectionString: string,
  use: (client: pg.Client) => Promise<T>,
  connectTimeoutMs = 10_000,
): Promise<T> {
  const client = new pg.Client({
    connectionString,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: STATEMENT_TIMEOUT_MS,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
