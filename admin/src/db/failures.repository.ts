import { sql } from 'kysely';
import type { Db } from './database.js';
import { toLog } from './logs.repository.js';
import type { TriggerLogRow } from './schema.js';
import type { Job, TriggerLog } from '../domain.js';
import { toJob } from './jobs.repository.js';

/** The SQL condition of a failed log: the trigger failed, or the run ended other than SUCCEEDED. */
const FAILED = sql`(l.dispatch_outcome = 'FAILED' or (l.outcome is not null and l.outcome <> 'SUCCEEDED'))`;

/**
 * Runs waiting on an executor: accepted ones, and runs in doubt (sent, never answered:
 * PENDING with the session they went to). Two arms, each matching a partial index.
 */
const AWAITING_EXECUTOR = sql`(
  select id from trigger_log where dispatch_outcome = 'ACCEPTED' and outcome is null
  union all
  select id from trigger_log
   where dispatch_outcome = 'PENDING' and executor_session_id is not null and outcome is null)`;

/** Every retry waits at most this long, however many doublings the backoff reached. */
export const MAX_RETRY_DELAY_MS = 3_600_000;

/**
 * Runs whose executor is gone: the session they were sent to has no live presence row
 * (the stream ended, or the admin holding it died and its rows expired). They become
 * "unroutable" now and are declared lost after a grace period unless the executor comes
 * back and reports them (see adoptRunningLogs). Returns how many were marked.
 */
export async function markUnroutableRuns(db: Db, sessionId?: string): Promise<number> {
  const { numAffectedRows } = await sql`
    update trigger_log l
       set unroutable_since = now()
     where l.id in ${AWAITING_EXECUTOR}
       and l.outcome is null
       and l.unroutable_since is null
       and ${sessionId === undefined ? sql`true` : sql`l.executor_session_id = ${sessionId}`}
       and not exists (
         select 1 from executor_registry r
          where r.session_id = l.executor_session_id and r.expires_at > now())`.execute(db);
  return Number(numAffectedRows ?? 0n);
}

/**
 * Undoes markUnroutableRuns for a session that turned out to be alive (its presence row
 * had expired while the database was unreachable, and the session beat again since): its
 * accepted runs and its runs still PENDING on it (in doubt, or accepted with the
 * acceptance not stored yet: see HeldAcceptances).
 */
export async function clearUnroutableRuns(db: Db, instanceName: string, sessionId: string): Promise<number> {
  // Each arm's first conditions select a partial index: trigger_log_running_idx and
  // trigger_log_in_doubt_idx.
  const { numAffectedRows } = await sql`
    update trigger_log
       set unroutable_since = null
     where id in (
       select id from trigger_log
        where executor_instance = ${instanceName} and dispatch_outcome = 'ACCEPTED' and outcome is null
          and executor_session_id = ${sessionId} and unroutable_since is not null
       union all
       select id from trigger_log
        where executor_instance = ${instanceName} and dispatch_outcome = 'PENDING'
          and executor_session_id = ${sessionId} and outcome is null and unroutable_since is not null)`.execute(
    db,
  );
  return Number(numAffectedRows ?? 0n);
}

export interface LostRun {
  logId: string;
  jobId: string;
  triggerType: string;
  executorInstance: string | null;
}

/**
 * Fails runs that stayed unroutable for `graceMs`, and (XXL-JOB's backstop) runs with no
 * result after `noResultMs` whose executor instance is not online at all. The update is
 * conditional on the run still having no result, so each is declared lost once whichever
 * admins run this concurrently, and a result that arrives later is ignored.
 */
export async function declareLostRuns(db: Db, graceMs: number, noResultMs: number): Promise<LostRun[]> {
  const { rows } = await sql<{
    id: string;
    job_id: string;
    trigger_type: string;
    executor_instance: string | null;
  }>`
    update trigger_log l
       set outcome = 'LOST',
           finished_at = now(),
           result_received_at = now(),
           handle_message = case
             when l.dispatch_outcome = 'PENDING' then
               'lost: the run request to executor ' || coalesce(l.executor_instance, '?')
               || ' got no answer, and the executor did not reconnect to say whether it had the run within '
               || ${Math.round(graceMs / 1000)} || ' s'
             when l.unroutable_since is not null then
               'lost: executor ' || coalesce(l.executor_instance, '?') || ' went away at '
               || to_char(l.unroutable_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
               || ' and did not report the run within ' || ${Math.round(graceMs / 1000)} || ' s'
             else 'lost: no result after ' || ${Math.round(noResultMs / 1000)} || ' s and executor '
               || coalesce(l.executor_instance, '?') || ' is not online'
           end
     where l.id in ${AWAITING_EXECUTOR}
       and l.outcome is null
       and (l.unroutable_since <= now() - ${graceMs} * interval '1 millisecond'
            or (l.dispatch_outcome = 'ACCEPTED'
                and l.triggered_at <= now() - ${noResultMs} * interval '1 millisecond'
                and not exists (
                  select 1 from executor_registry r
                   where r.instance_name = l.executor_instance and r.expires_at > now())))
    returning l.id, l.job_id, l.trigger_type, l.executor_instance`.execute(db);
  return rows.map(row => ({
    logId: row.id,
    jobId: row.job_id,
    triggerType: row.trigger_type,
    executorInstance: row.executor_instance,
  }));
}

/**
 * Logs created by a trigger whose admin stopped before dispatching them (manual, retry
 * and child triggers; scheduled fires are covered by leases instead), and scheduled fires
 * an admin released after a dispatch that failed without a verdict. Failing them lets
 * retry and alarm see them instead of leaving them "running" forever. Returns their ids.
 */
export async function failUndispatchedLogs(db: Db, olderThanMs: number): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    update trigger_log l
       set dispatch_outcome = 'FAILED',
           trigger_message = l.trigger_message
             || case when l.trigger_message = '' then '' else '; ' end
             || 'trigger failed: no dispatch was recorded (its admin stopped or gave up before recording one)'
     where l.dispatch_outcome = 'PENDING'
       and l.claimed_by is null
       -- A run in doubt names its session; it is settled by its executor or declared lost.
       and l.executor_session_id is null
       and l.outcome is null
       and l.triggered_at <= now() - ${olderThanMs} * interval '1 millisecond'
    returning l.id`.execute(db);
  return rows.map(row => row.id);
}

export interface FailureWork {
  /** Failed logs whose alarm this admin now holds (alarm status LOCKED). */
  toAlarm: TriggerLog[];
  /** Retry logs recorded now (PENDING), to be dispatched by this admin. */
  retries: TriggerLog[];
  /** Failed logs that will be retried later (retry status WAITING). */
  waiting: number;
}

/**
 * Takes the next failed logs that need a retry decision, a due retry or an alarm, in
 * one transaction: rows are locked with SKIP LOCKED so concurrent admins take disjoint
 * sets, alarms are claimed (NONE -> LOCKED), and each due retry's log row is inserted in
 * the same transaction that marks the failed log DONE, so a retry is recorded at most
 * once. Retries re-send the failed log's parameter and shard; `attempt` counts up.
 *
 * Not retried: KILLED (an operator stopped it) and COVERED (a newer run replaced it).
 */
export async function takeFailureWork(db: Db, limit: number): Promise<FailureWork> {
  return db.transaction().execute(async trx => {
    const { rows } = await sql<
      TriggerLogRow & {
        fail_retry_count: number | null;
        fail_retry_delay_ms: number | null;
        job_handler: string | null;
        failed_at: Date;
        now: Date;
      }
    >`
      select l.*, j.fail_retry_count, j.fail_retry_delay_ms, j.handler as job_handler,
             coalesce(l.result_received_at, l.finished_at, l.triggered_at) as failed_at, now() as now
        from trigger_log l
        left join job j on j.id = l.job_id
       where ${FAILED}
         and (l.alarm_status = 'NONE' or l.retry_status in ('NONE', 'WAITING'))
         and (l.alarm_status = 'NONE' or l.retry_status = 'NONE'
              or (l.retry_status = 'WAITING' and l.retry_at <= now()))
       order by l.id
       limit ${limit}
       for update of l skip locked`.execute(trx);

    const toAlarm: TriggerLog[] = [];
    const retryNow: typeof rows = [];
    const decisions: {
      id: string;
      alarm: boolean;
      retry: 'WAITING' | 'DONE' | 'NOT_NEEDED' | null;
      at: Date | null;
    }[] = [];
    let waiting = 0;
    for (const row of rows) {
      const alarm = row.alarm_status === 'NONE';
      if (alarm) toAlarm.push({ ...toLog(row), alarmStatus: 'LOCKED' });
      let retry: 'WAITING' | 'DONE' | 'NOT_NEEDED' | null = null;
      let at: Date | null = null;
      if (row.retry_status === 'NONE' || row.retry_status === 'WAITING') {
        const retriesLeft = (row.fail_retry_count ?? 0) - (row.attempt - 1);
        const retryable = row.outcome !== 'KILLED' && row.outcome !== 'COVERED' && row.job_handler !== null;
        if (!retryable || retriesLeft <= 0) {
          retry = 'NOT_NEEDED';
        } else {
          const delayMs = Math.min(
            MAX_RETRY_DELAY_MS,
            (row.fail_retry_delay_ms ?? 0) * 2 ** (row.attempt - 1),
          );
          at = row.retry_at ?? new Date(row.failed_at.getTime() + delayMs);
          if (at.getTime() <= row.now.getTime()) {
            retry = 'DONE';
            retryNow.push(row);
          } else {
            retry = 'WAITING';
            waiting += 1;
          }
        }
      }
      decisions.push({ id: row.id, alarm, retry, at });
    }

    const retries: TriggerLog[] = [];
    if (retryNow.length > 0) {
      const inserted = await trx
        .insertInto('trigger_log')
        .values(
          retryNow.map(row => ({
            job_id: row.job_id,
            group_id: row.group_id,
            trigger_type: 'RETRY' as const,
            handler: row.job_handler ?? row.handler,
            param: row.param,
            shard_index: row.shard_index,
            shard_total: row.shard_total,
            attempt: row.attempt + 1,
            retry_of_log_id: row.id,
            broadcast_root_id: row.shard_total > 1 ? (row.broadcast_root_id ?? row.id) : null,
            scheduled_at: row.retry_at ?? row.now,
            triggered_at: row.now,
            dispatch_outcome: 'PENDING' as const,
          })),
        )
        .returningAll()
        .execute();
      retries.push(...inserted.map(toLog));
    }
    const retryLogOf = new Map(retries.map(log => [log.retryOfLogId, log.id]));

    for (const decision of decisions) {
      await trx
        .updateTable('trigger_log')
        .set(eb => ({
          alarm_status: decision.alarm ? 'LOCKED' : eb.ref('alarm_status'),
          retry_status: decision.retry ?? eb.ref('retry_status'),
          retry_at: decision.at,
          retry_log_id: retryLogOf.get(decision.id) ?? null,
        }))
        .where('id', '=', decision.id)
        .execute();
    }
    return { toAlarm, retries, waiting };
  });
}

/** Records how an alarm went (from LOCKED). */
export async function recordAlarmOutcome(
  db: Db,
  logId: string,
  status: 'SENT' | 'FAILED' | 'NOT_NEEDED',
): Promise<void> {
  await db
    .updateTable('trigger_log')
    .set({ alarm_status: status })
    .where('id', '=', logId)
    .where('alarm_status', '=', 'LOCKED')
    .execute();
}

/**
 * Claims the child-job trigger of a succeeded log: for a broadcast, on the root log and
 * only once every shard of the trigger has a succeeded attempt. Returns true for exactly
 * one caller, whichever admins store the results of the shards.
 */
export async function claimChildTrigger(db: Db, logId: string): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`
    with me as (
      select coalesce(l.broadcast_root_id, l.id) as root_id, l.shard_total
        from trigger_log l where l.id = ${logId} and l.outcome = 'SUCCEEDED'
    ), shards_ok as (
      select count(distinct s.shard_index) as n
        from trigger_log s, me
       where (s.id = me.root_id or s.broadcast_root_id = me.root_id) and s.outcome = 'SUCCEEDED'
    )
    update trigger_log r
       set children_triggered_at = now()
      from me, shards_ok
     where r.id = me.root_id
       and r.children_triggered_at is null
       and shards_ok.n >= me.shard_total
    returning r.id`.execute(db);
  return rows.length > 0;
}

/** The job of a log (the root log of a broadcast) and its child jobs that still exist. */
export async function findJobAndChildrenOfLog(
  db: Db,
  logId: string,
): Promise<{ rootLogId: string; parent: Job; children: Map<string, Job> } | undefined> {
  const log = await db
    .selectFrom('trigger_log')
    .select(['job_id', 'broadcast_root_id'])
    .where('id', '=', logId)
    .executeTakeFirst();
  if (!log) return undefined;
  const parent = await db.selectFrom('job').selectAll().where('id', '=', log.job_id).executeTakeFirst();
  if (!parent) return undefined;
  const childIds = parent.child_job_ids;
  const children =
    childIds.length === 0 ? [] : await db.selectFrom('job').selectAll().where('id', 'in', childIds).execute();
  return {
    rootLogId: log.broadcast_root_id ?? logId,
    parent: toJob(parent),
    children: new Map(children.map(row => [row.id, toJob(row)])),
  };
}

/** Appends a line to a log's handle message (the child-job trace). */
export async function appendHandleMessage(db: Db, logId: string, line: string): Promise<void> {
  await sql`
    update trigger_log
       set handle_message = handle_message || case when handle_message = '' then '' else E'\n' end || ${line}
     where id = ${logId}`.execute(db);
}
