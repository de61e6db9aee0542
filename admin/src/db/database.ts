import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export interface DatabaseOptions {
  readonly connectionString: string;
  readonly maxConnections?: number;
}

export function createDatabase(options: DatabaseOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    // A PostgreSQL restart kills pooled connections; fail fast and let the caller retry
    // instead of hanging on a dead socket.
    connectionTimeoutMillis: 5_000,
  });
  // An idle client's error (the server went away) must not crash the process: the pool
  // drops the client and the next query opens a new connection.
  pool.on('error', () => undefined);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
