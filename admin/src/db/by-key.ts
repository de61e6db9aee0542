import { sql } from 'kysely';

/**
 * The condition that joins the `trigger_log l` rows of a batch statement to its list (a
 * CTE `v` with an `id` column), such that they are fetched by primary key.
 *
 * Written as the join `l.id = v.id` alone, the statement was planned as a hash join over
 * a scan of the whole table whenever the statistics said the table was small: a young
 * table, one never analyzed (autovacuum off) or analyzed while idle. Each batch then read
 * every row. An array built from the list has a size the planner cannot know and takes
 * to be small, so the rows are fetched by key whatever the statistics say.
 */
export const LOGS_LISTED_IN_V = sql<boolean>`l.id = any(array(select id from v)) and l.id = v.id`;
