import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgArray } from '../admin/src/db/pg-array.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

/**
 * The admin writes its batched parameters as array literals of its own (pgArray). What
 * PostgreSQL reads back must be exactly what was written, element by element: a value
 * that split into two elements would shift every later column of an unnest.
 */
describe('pgArray, read by PostgreSQL', () => {
  let database: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await database?.drop();
  });

  async function readBack(type: string, literal: string): Promise<unknown[]> {
    const { rows } = await client.query<{ value: unknown[] }>(`select $1::${type}[] as value`, [literal]);
    return rows[0]!.value;
  }

  it('keeps text exactly, whatever it contains', async () => {
    const texts = [
      '',
      'NULL',
      'null',
      '42',
      '-7',
      '007',
      'a,b',
      '{x}',
      '"quoted"',
      'back\\slash',
      '\\"',
      ' padded ',
      'line\nbreak\ttab',
      'ünïcödé 日本 🙂',
      '1,2',
    ];
    expect(await readBack('text', pgArray([...texts, null]))).toEqual([...texts, null]);
  });

  it('keeps ids, numbers, booleans and instants', async () => {
    expect(await readBack('bigint', pgArray(['1', '9007199254740993', null]))).toEqual([
      '1',
      '9007199254740993',
      null,
    ]);
    expect(await readBack('int', pgArray([0, -3, 2_147_483_647]))).toEqual([0, -3, 2_147_483_647]);
    expect(await readBack('boolean', pgArray([true, false, null]))).toEqual([true, false, null]);
    const instants = [new Date('2026-12-07T12:00:00.123Z'), new Date(0), null];
    expect(await readBack('timestamptz', pgArray(instants))).toEqual(instants);
  });

  it('writes instants as Date.toISOString does, across days, years and the four-digit range', async () => {
    const instants = [
      new Date(-62_167_219_200_000),
      new Date(-1),
      new Date(0),
      new Date(86_399_999),
      new Date('2026-12-07T23:59:59.999Z'),
      new Date('2026-12-08T00:00:00.000Z'),
      new Date('2026-12-08T00:00:00.000Z'),
      new Date(253_402_300_799_999),
      new Date(253_402_300_800_000),
      ...Array.from({ length: 2_000 }, (_, index) => new Date(1_765_000_000_000 + index * 7_919_993)),
    ];
    expect(pgArray(instants)).toBe(`{${instants.map(instant => `"${instant.toISOString()}"`).join(',')}}`);
    const sample = instants.slice(1, 8);
    expect(await readBack('timestamptz', pgArray(sample))).toEqual(sample);
  });

  it('refuses what has no array form instead of storing something else', async () => {
    expect(() => pgArray([Number.NaN])).toThrow(RangeError);
    expect(() => pgArray([new Date(Number.NaN)])).toThrow(RangeError);
    // A value that is not an id stays one element, which the cast then refuses.
    await expect(readBack('bigint', pgArray(['1,2']))).rejects.toThrow(
      /invalid input syntax for type bigint/,
    );
  });
});
