import { sql, type RawBuilder } from 'kysely';

/**
 * Orders row ids given as decimal strings (bigint ids, no sign, no leading zeros) as
 * numbers: statements that lock several rows visit them in id order, so two of them
 * never wait for each other's rows in opposite orders.
 */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The condition that joins the `trigger_log l` rows of a batch statement to its list
 * (`list`, a CTE with an `id` column), such that they are fetched by primary key.
 *
 * Written as the join `l.id = v.id` alone, the statement was planned as a hash join over
 * a scan of the whole table whenever the statistics said the table was small: a young
 * table, one never analyzed (autovacuum off) or analyzed while idle. Each batch then read
 * every row. An array built from the list has a size the planner cannot know and takes
 * to be small, so the rows are fetched by key whatever the statistics say.
 */
export function logsListedIn(list: 'v'): RawBuilder<boolean> {
  const source = sql.raw(list);
  return sql<boolean>`l.id = any(array(select id from ${source})) and l.id = ${source}.id`;
}
