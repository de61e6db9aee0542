import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { fastTimestampTypes } from './pg-timestamps.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface DatabaseOptions {
  readonly connectionString: string;
  readonly maxConnections?: number;
  /** Called after every statement (metrics: statements per run, time spent in them). */
  readonly onStatement?: (durationMs: number, failed: boolean) => void;
}

export function createDatabase(options: DatabaseOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    // A PostgreSQL restart kills pooled connections; fail fast and let the caller retry
    // instead of hanging on a dead socket.
    connectionTimeoutMillis: 5_000,
    types: fastTimestampTypes,
  });
  // An idle client's error (the server went away) must not crash the process: the pool
  // drops the client and the next query opens a new connection.
  pool.on('error', () => undefined);
  // A checked-out client has no pool listener: when the server ends its connection
  // between two of its messages (a restart terminates every backend, and the error can
  // arrive right after a query's last reply, before the client is released), the client
  // emits 'error' with nobody listening, which would crash the admin. The query in flight
  // already failed, and the pool drops the broken client when it is released.
  pool.on('connect', client => client.on('error', () => undefined));
  const { onStatement } = options;
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool }),
    ...(onStatement && {
      log: event => onStatement(event.queryDurationMillis, event.level === 'error'),
    }),
  });
}
