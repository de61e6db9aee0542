import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastTimestampTypes, parseTimestamptz } from '../admin/src/db/pg-timestamps.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

/** node-postgres' own reading of a timestamptz: what the admin read before. */
const reference = pg.types.getTypeParser(1184, 'text') as (text: string) => unknown;

function comparable(value: unknown): unknown {
  return value instanceof Date ? value.getTime() : value;
}

describe('reading timestamptz values', () => {
  it('gives what node-postgres gives for every text form PostgreSQL writes', () => {
    const texts = [
      '2026-12-07 22:13:22+00',
      '2026-12-07 22:13:22.1+00',
      '2026-12-07 22:13:22.029+00',
      '2026-12-07 22:13:22.123456+00',
      '2026-12-07 22:13:22.999999+00',
      '2026-12-07 22:13:22.5-05',
      '2026-12-07 22:13:22.5+05:30',
      '2026-12-07 22:13:22.5+05:45',
      '2026-12-07 22:13:22.5-03:30',
      '1900-01-01 00:00:00-00:44:30',
      '1000-01-01 00:00:00+00',
      '9999-12-31 23:59:59.999999+00',
      '0099-03-04 05:06:07+00',
      '0001-01-01 00:00:00+00 BC',
      '12345-06-07 08:09:10+00',
      'infinity',
      '-infinity',
    ];
    for (const text of texts) {
      expect(comparable(parseTimestamptz(text)), text).toEqual(comparable(reference(text)));
    }
  });

  it('agrees with node-postgres on random instants with random fractions and offsets', () => {
    let seed = 12_345;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const pad = (value: number, width: number) => String(value).padStart(width, '0');
    for (let index = 0; index < 20_000; index += 1) {
      const instant = new Date(
        Date.UTC(1000, 0, 1) + random() * (Date.UTC(9999, 0, 1) - Date.UTC(1000, 0, 1)),
      );
      const fractionDigits = Math.floor(random() * 7);
      const fraction =
        fractionDigits === 0 ? '' : `.${pad(Math.floor(random() * 10 ** fractionDigits), fractionDigits)}`;
      const offsetHours = Math.floor(random() * 15);
      const offsetMinutes = [0, 30, 45][Math.floor(random() * 3)]!;
      const sign = random() < 0.5 ? '+' : '-';
      const offset = `${sign}${pad(offsetHours, 2)}${offsetMinutes === 0 ? '' : `:${pad(offsetMinutes, 2)}`}`;
      const text = `${instant.toISOString().slice(0, 10)} ${instant.toISOString().slice(11, 19)}${fraction}${offset}`;
      expect(comparable(parseTimestamptz(text)), text).toEqual(comparable(reference(text)));
    }
  });

  describe('through a pool, in sessions of several time zones', () => {
    let database: TestDatabase;
    let fast: pg.Pool;
    let plain: pg.Pool;

    beforeAll(async () => {
      database = await createTestDatabase();
      fast = new pg.Pool({ connectionString: database.url, max: 1, types: fastTimestampTypes });
      plain = new pg.Pool({ connectionString: database.url, max: 1 });
    });

    afterAll(async () => {
      await fast?.end();
      await plain?.end();
      await database?.drop();
    });

    it.each(['UTC', 'Asia/Kathmandu', 'America/St_Johns', 'Africa/Monrovia', 'Europe/Amsterdam'])(
      'reads the same instants as node-postgres with TimeZone %s',
      async zone => {
        const query = `
          select t from (
            select timestamptz '1900-01-01 00:00:00+00' + n * interval '3 days 7 hours 11 minutes 13.123457 seconds' as t
              from generate_series(0, 2000) as n
            union all select timestamptz '0050-06-01 12:00:00+00'
            union all select timestamptz '0044-03-15 12:00:00+00 BC'
            union all select 'infinity'::timestamptz
          ) x`;
        const read = async (pool: pg.Pool) => {
          const client = await pool.connect();
          try {
            await client.query(`set time zone '${zone}'`);
            const { rows } = await client.query<{ t: unknown }>(query);
            return rows.map(row => comparable(row.t));
          } finally {
            client.release();
          }
        };
        const [fastRows, plainRows] = [await read(fast), await read(plain)];
        expect(fastRows).toHaveLength(2004);
        expect(fastRows).toEqual(plainRows);
      },
    );
  });
});
