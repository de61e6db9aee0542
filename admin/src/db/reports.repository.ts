import { sql } from 'kysely';
import type { Db } from './database.js';

/**
 * The daily log report, the dashboard's totals and trigger-log retention.
 *
 * Days are 'YYYY-MM-DD' strings of the admin's default time zone. A day's bounds are
 * computed by PostgreSQL (`local midnight AT TIME ZONE zone`), which gets DST right:
 * a day is 23 or 25 hours long around a switch, and in zones that switch at midnight
 * it starts at the first instant that exists.
 */

export interface DayReportRow {
  day: string;
  runningCount: number;
  succeededCount: number;
  failedCount: number;
  /** How long ago the row was computed, by the database's clock (admins' clocks may differ). */
  ageMs: number;
}

interface RawReportRow {
  day: string;
  running_count: number;
  success_count: number;
  fail_count: number;
  age_ms: number;
}

function toReport(row: RawReportRow): DayReportRow {
  return {
    day: row.day,
    runningCount: row.running_count,
    succeededCount: row.success_count,
    failedCount: row.fail_count,
    ageMs: Number(row.age_ms),
  };
}

/**
 * Recounts the trigger logs of `days` (by triggered_at) and stores the counts, in one
 * statement. The classification is logStatus() in SQL: SKIPPED logs (misfires not
 * run) are in no count.
 *
 * Admins refresh concurrently: ON CONFLICT makes a concurrent insert of the same day
 * an update instead of a unique violation, and the rows are written in day order so
 * two refreshes lock them in the same order and cannot deadlock.
 */
export async function refreshReport(
  db: Db,
  days: readonly string[],
  timeZone: string,
): Promise<DayReportRow[]> {
  // ON CONFLICT cannot touch the same row twice in one statement.
  const unique = [...new Set(days)];
  if (unique.length === 0) return [];
  const { rows } = await sql<RawReportRow>`
    insert into log_report (day, running_count, success_count, fail_count, updated_at)
    select d.day,
           count(l.id) filter (where l.outcome is null and l.dispatch_outcome in ('PENDING', 'ACCEPTED')),
           count(l.id) filter (where l.outcome = 'SUCCEEDED' and l.dispatch_outcome <> 'SKIPPED'),
           count(l.id) filter (where l.dispatch_outcome <> 'SKIPPED'
                                 and (l.dispatch_outcome = 'FAILED'
                                      or (l.outcome is not null and l.outcome <> 'SUCCEEDED'))),
           now()
      from unnest(${unique}::date[]) as d(day)
      left join trigger_log l
        on l.triggered_at >= (d.day::timestamp at time zone ${timeZone}::text)
       and l.triggered_at < ((d.day + 1)::timestamp at time zone ${timeZone}::text)
     group by d.day
     order by d.day
    on conflict (day) do update
       set running_count = excluded.running_count,
           success_count = excluded.success_count,
           fail_count = excluded.fail_count,
           updated_at = excluded.updated_at
    returning to_char(day, 'YYYY-MM-DD') as day, running_count, success_count, fail_count, 0::float8 as age_ms`.execute(
    db,
  );
  return rows.map(toReport).sort((a, b) => (a.day < b.day ? -1 : 1));
}

/** The stored report rows from `from` to `to` (both included), oldest first; days never refreshed have none. */
export async function readReport(db: Db, from: string, to: string): Promise<DayReportRow[]> {
  const { rows } = await sql<RawReportRow>`
    select to_char(day, 'YYYY-MM-DD') as day, running_count, success_count, fail_count,
           (extract(epoch from now() - updated_at) * 1000)::float8 as age_ms
      from log_report
     where day between ${from}::date and ${to}::date
     order by day`.execute(db);
  return rows.map(toReport);
}

export interface DashboardTotals {
  jobCount: number;
  runningJobCount: number;
  groupCount: number;
  executorsOnline: number;
}

/** Counts for the dashboard header, in one round trip. `now` is the admin's clock, as in ListExecutors. */
export async function dashboardTotals(db: Db, now: Date): Promise<DashboardTotals> {
  const { rows } = await sql<{
    job_count: string;
    running_job_count: string;
    group_count: string;
    executors_online: string;
  }>`
    select (select count(*) from job) as job_count,
           (select count(*) from job where trigger_status = 'RUNNING') as running_job_count,
           (select count(*) from executor_group) as group_count,
           (select count(*) from executor_registry where expires_at > ${now}::timestamptz) as executors_online`.execute(
    db,
  );
  const row = rows[0]!;
  return {
    jobCount: Number(row.job_count),
    runningJobCount: Number(row.running_job_count),
    groupCount: Number(row.group_count),
    executorsOnline: Number(row.executors_online),
  };
}

/** A log other work still reads or writes by id: see deleteLogBatch. */
function unsettled(alias: 'l' | 's') {
  const ref = (column: string) => sql.ref(`${alias}.${column}`);
  return sql`((${ref('outcome')} is null and ${ref('dispatch_outcome')} in ('PENDING', 'ACCEPTED'))
          or ((${ref('dispatch_outcome')} = 'FAILED' or (${ref('outcome')} is not null and ${ref('outcome')} <> 'SUCCEEDED'))
              and (${ref('alarm_status')} = 'NONE' or ${ref('retry_status')} in ('NONE', 'WAITING'))))`;
}

/**
 * Deletes up to `limit` trigger logs triggered before local midnight starting
 * `beforeDay`; returns how many. One short statement per batch, so retention never
 * holds many row locks or a long transaction next to the scheduler's writes.
 *
 * Kept whatever their age, because work still refers to them by id:
 * - running logs (no outcome, dispatch PENDING or ACCEPTED): the run's result is stored
 *   into its log, and a FIX_DELAY job plans its next fire from that; without the row
 *   the result is dropped and the job never fires again. Lost-run detection, KillRun
 *   and ReadExecutorLog need the row too, and runs may last longer than the retention;
 * - failed logs the failure monitor has not finished with (alarm not yet taken, retry
 *   not yet decided or WAITING): the retry and the alarm are made from the log;
 * - every log of a broadcast trigger while any of its shards is one of the above: child
 *   jobs are triggered once every shard has succeeded, counted over the shards' logs.
 * Retries pointing at a deleted log keep working: retry_of_log_id is set to NULL by
 * its foreign key.
 */
export async function deleteLogBatch(
  db: Db,
  options: { beforeDay: string; timeZone: string; limit: number },
): Promise<number> {
  const result = await sql`
    delete from trigger_log
     where id in (
       select l.id
         from trigger_log l
        where l.triggered_at < (${options.beforeDay}::date::timestamp at time zone ${options.timeZone}::text)
          and not ${unsettled('l')}
          and (l.shard_total = 1 or not exists (
                select 1
                  from trigger_log s
                 where (s.id = coalesce(l.broadcast_root_id, l.id)
                        or s.broadcast_root_id = coalesce(l.broadcast_root_id, l.id))
                   and ${unsettled('s')}))
        limit ${options.limit})`.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}
