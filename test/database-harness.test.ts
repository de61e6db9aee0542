import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';

async function query<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

describe('test database harness', () => {
  let first: TestDatabase;
  let second: TestDatabase;

  beforeAll(async () => {
    [first, second] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  });

  afterAll(async () => {
    await Promise.all([first?.drop(), second?.drop()]);
  });

  it('clones a database that has every migration applied', async () => {
    const tables = await query<{ table_name: string }>(
      first.url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    expect(tables.map(row => row.table_name)).toEqual(
      expect.arrayContaining([
        'executor_group',
        'job',
        'trigger_log',
        'executor_registry',
        'kysely_migration',
      ]),
    );
    const applied = await query<{ name: string }>(first.url, 'SELECT name FROM kysely_migration');
    expect(applied.map(row => row.name)).toContain('2026-11-22T0001-initial');
  });

  it('keeps clones isolated from each other', async () => {
    expect(first.url).not.toBe(second.url);
    await query(
      first.url,
      "INSERT INTO executor_group (app_name, title, address_type, access_token_hash) VALUES ('only-in-first', 'x', 'AUTO', 'h')",
    );
    const inFirst = await query(first.url, "SELECT 1 FROM executor_group WHERE app_name = 'only-in-first'");
    const inSecond = await query(second.url, "SELECT 1 FROM executor_group WHERE app_name = 'only-in-first'");
    expect(inFirst).toHaveLength(1);
    expect(inSecond).toHaveLength(0);
  });

  it('drops a clone even while a connection to it is open', async () => {
    const extra = await createTestDatabase();
    const client = new pg.Client({ connectionString: extra.url });
    // The forced drop ends this connection; its error event must not fail the test.
    client.on('error', () => undefined);
    await client.connect();
    await extra.drop();
    const name = new URL(extra.url).pathname.slice(1);
    const left = await query(first.url, 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    expect(left).toHaveLength(0);
    await client.end().catch(() => undefined);
  });
});
