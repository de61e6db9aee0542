import { sql } from 'kysely';
import type { Db } from './database.js';
import type { NewTriggerLogRow, TriggerLogRow } from './schema.js';
import type { DispatchOutcome, LogStatus, RunResultInput, TriggerLog, TriggerType } from '../domain.js';
import { compareIds } from '../util/ids.js';
import { LOGS_LISTED_IN_V } from './by-key.js';
import { pgArray, type ArrayElement } from './pg-array.js';

export function toLog(row: TriggerLogRow): TriggerLog {
  return {
    id: row.id,
    jobId: row.job_id,
    groupId: row.group_id,
    triggerType: row.trigger_type,
    executorInstance: row.executor_instance,
    executorSessionId: row.executor_session_id,
    handler: row.handler,
    param: row.param,
    shardIndex: row.shard_index,
    shardTotal: row.shard_total,
    attempt: row.attempt,
    retryOfLogId: row.retry_of_log_id,
    scheduledAt: row.scheduled_at,
    triggeredAt: row.triggered_at,
    dispatchOutcome: row.dispatch_outcome,
    triggerMessage: row.trigger_message,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    outcome: row.outcome,
    handleMessage: row.handle_message,
    alarmStatus: row.alarm_status,
  };
}

export interface NewTriggerLog {
  jobId: string;
  groupId: string;
  triggerType: TriggerType;
  handler: string;
  param: string;
  shardIndex: number;
  shardTotal: number;
  retryOfLogId: string | null;
  scheduledAt: Date;
  triggeredAt: Date;
  /** Shards of a broadcast other than the first name the first one's log. */
  broadcastRootId?: string;
  /**
   * The executor the log is being sent to, recorded with the row (what markSending would
   * set right after): a manual trigger routed before its log is written needs no second
   * statement to name its executor.
   */
  sendingTo?: { executorInstance: string; executorSessionId: string; executorProcess: string };
}

function newRow(log: NewTriggerLog): NewTriggerLogRow {
  return {
    job_id: log.jobId,
    group_id: log.groupId,
    trigger_type: log.triggerType,
    handler: log.handler,
    param: log.param,
    shard_index: log.shardIndex,
    shard_total: log.shardTotal,
    retry_of_log_id: log.retryOfLogId,
    broadcast_root_id: log.broadcastRootId ?? null,
    scheduled_at: log.scheduledAt,
    triggered_at: log.triggeredAt,
    dispatch_outcome: 'PENDING',
    executor_instance: log.sendingTo?.executorInstance ?? null,
    executor_session_id: log.sendingTo?.executorSessionId ?? null,
    executor_process: log.sendingTo?.executorProcess ?? null,
    started_at: null,
    finished_at: null,
    outcome: null,
    result_received_at: null,
  };
}

/** Records triggers before they are dispatched, so a crash mid-dispatch leaves a trace. */
export async function insertLogs(db: Db, logs: readonly NewTriggerLog[]): Promise<TriggerLog[]> {
  if (logs.length === 0) return [];
  // Arrays, not a VALUES list: one short statement text whatever the batch size (a VALUES
  // list of 100 rows is 1,500 parameters for kysely to compile, node-postgres to send and
  // PostgreSQL to parse). Inserted in the arrays' order, so ids follow the logs' order.
  const rows = logs.map(newRow);
  const column = <T extends ArrayElement>(value: (row: NewTriggerLogRow) => T): string =>
    pgArray(rows.map(value));
  const { rows: inserted } = await sql<{ id: string }>`
    insert into trigger_log (job_id, group_id, trigger_type, handler, param, shard_index, shard_total,
                             retry_of_log_id, broadcast_root_id, scheduled_at, triggered_at, dispatch_outcome,
                             executor_instance, executor_session_id, executor_process)
    select job_id, group_id, trigger_type, handler, param, shard_index, shard_total,
           retry_of_log_id, broadcast_root_id, scheduled_at, triggered_at, 'PENDING',
           executor_instance, executor_session_id, executor_process
      from unnest(${column(row => row.job_id)}::bigint[],
                  ${column(row => row.group_id)}::bigint[],
                  ${column(row => row.trigger_type)}::text[],
                  ${column(row => row.handler)}::text[],
                  ${column(row => row.param)}::text[],
                  ${column(row => row.shard_index)}::int[],
                  ${column(row => row.shard_total)}::int[],
                  ${column(row => row.retry_of_log_id)}::bigint[],
                  ${column(row => row.broadcast_root_id)}::bigint[],
                  ${column(row => row.scheduled_at)}::timestamptz[],
                  ${column(row => row.triggered_at)}::timestamptz[],
                  ${column(row => row.executor_instance)}::text[],
                  ${column(row => row.executor_session_id)}::text[],
                  ${column(row => row.executor_process)}::text[])
           with ordinality
           as v(job_id, group_id, trigger_type, handler, param, shard_index, shard_total, retry_of_log_id,
                broadcast_root_id, scheduled_at, triggered_at, executor_instance, executor_session_id,
                executor_process, position)
     order by position
    returning id`.execute(db);
  // Only the ids come back: every other value of a new row is what was sent or a column
  // default (reading all of them back was most of a TriggerJobRuns insert's CPU). Ids
  // follow the logs' order; sorted, they pair with the logs whatever order they come in.
  const ids = inserted.map(row => row.id).sort(compareIds);
  return logs.map((log, index) => insertedLog(log, ids[index]!));
}

/** A log as insertLogs stores it (the columns' defaults included), with its new id. */
function insertedLog(log: NewTriggerLog, id: string): TriggerLog {
  return {
    id,
    jobId: log.jobId,
    groupId: log.groupId,
    triggerType: log.triggerType,
    executorInstance: log.sendingTo?.executorInstance ?? null,
    executorSessionId: log.sendingTo?.executorSessionId ?? null,
    handler: log.handler,
    param: log.param,
    shardIndex: log.shardIndex,
    shardTotal: log.shardTotal,
    attempt: 1,
    retryOfLogId: log.retryOfLogId,
    scheduledAt: log.scheduledAt,
    triggeredAt: log.triggeredAt,
    dispatchOutcome: 'PENDING',
    triggerMessage: '',
    startedAt: null,
    finishedAt: null,
    outcome: null,
    handleMessage: '',
    alarmStatus: 'NONE',
  };
}

export interface DispatchRecord {
  outcome: Exclude<DispatchOutcome, 'PENDING' | 'SKIPPED'>;
  triggeredAt: Date;
  executorInstance: string | null;
  executorSessionId: string | null;
  message: string;
  /** Recorded only while the log is still claimed by this admin (a scheduled fire). */
  claimedBy?: string | null;
}

/** A run request about to be written to an executor's stream (see markSending). */
export interface SendingMark {
  logId: string;
  /** The admin whose claim the log must still carry: null for a log nobody claims. */
  claimedBy: string | null;
  executorInstance: string;
  executorSessionId: string;
  executorProcess: string;
  triggeredAt: Date;
}

/**
 * Names, before a first run request goes out, the executor and session it goes to, if
 * the log is still this sender's to send: PENDING, sent nowhere yet, and claimed by the
 * same admin (a scheduled fire) or by none. Returns, per mark, whether it was made.
 *
 * This is the fence between an admin that is slow (stopped, starved, cut from the
 * database past its lease) and the peer that takes its fires over: whichever writes
 * first wins. A peer never re-routes nor skips a fire that names an executor (it asks
 * that executor again with the same (log, attempt), which the executor does not run
 * twice), and a sender whose mark fails does not send. Many marks, one statement.
 */
export async function markSending(db: Db, marks: readonly SendingMark[]): Promise<boolean[]> {
  if (marks.length === 0) return [];
  // Two marks of one log in a batch (two sends of one fire) must not both win: the row is
  // updated once, so only the first of them takes part and the others lose.
  const firstIndex = new Map<string, number>();
  marks.forEach((mark, index) => {
    if (!firstIndex.has(mark.logId)) firstIndex.set(mark.logId, index);
  });
  const unique = marks.filter((mark, index) => firstIndex.get(mark.logId) === index);
  const { rows } = await sql<{ id: string }>`
    with v(id, claimed_by, instance, session_id, process, triggered_at) as (
      select * from unnest(
        ${pgArray(unique.map(mark => mark.logId))}::bigint[],
        ${pgArray(unique.map(mark => mark.claimedBy))}::text[],
        ${pgArray(unique.map(mark => mark.executorInstance))}::text[],
        ${pgArray(unique.map(mark => mark.executorSessionId))}::text[],
        ${pgArray(unique.map(mark => mark.executorProcess))}::text[],
        ${pgArray(unique.map(mark => mark.triggeredAt))}::timestamptz[]))
    update trigger_log l
       set executor_instance = v.instance,
           executor_session_id = v.session_id,
           executor_process = v.process,
           triggered_at = v.triggered_at
      from v
     where ${LOGS_LISTED_IN_V}
       and l.dispatch_outcome = 'PENDING'
       and l.outcome is null
       and l.executor_session_id is null
       and l.claimed_by is not distinct from v.claimed_by
    returning l.id`.execute(db);
  const marked = new Set(rows.map(row => String(row.id)));
  return marks.map((mark, index) => marked.has(mark.logId) && firstIndex.get(mark.logId) === index);
}

/**
 * A scheduled fire turned out to be a broadcast: marks its recorded row (shard 0 of
 * `total`) as being sent (see markSending) and records the other shards, in one
 * transaction, so that either this admin sends the broadcast or a peer that took the
 * fire over does, never both. Undefined when the fire is no longer this admin's.
 */
export async function beginBroadcast(
  db: Db,
  mark: SendingMark,
  total: number,
  otherShards: readonly NewTriggerLog[],
): Promise<TriggerLog[] | undefined> {
  return db.transaction().execute(async trx => {
    const [marked] = await markSending(trx, [mark]);
    if (!marked) return undefined;
    await trx.updateTable('trigger_log').set({ shard_total: total }).where('id', '=', mark.logId).execute();
    return insertLogs(trx, otherShards);
  });
}

/** Records many dispatches in one statement (one commit). */
export async function recordDispatches(
  db: Db,
  dispatches: readonly (DispatchRecord & { logId: string })[],
): Promise<void> {
  if (dispatches.length === 0) return;
  const column = <T>(value: (d: DispatchRecord & { logId: string }) => T): T[] => dispatches.map(value);
  await sql`
    with v(id, outcome, triggered_at, instance, session_id, message, claimed_by) as (
      select * from unnest(
        ${pgArray(column(d => d.logId))}::bigint[],
        ${pgArray(column(d => d.outcome))}::text[],
        ${pgArray(column(d => d.triggeredAt))}::timestamptz[],
        ${pgArray(column(d => d.executorInstance))}::text[],
        ${pgArray(column(d => d.executorSessionId))}::text[],
        ${pgArray(column(d => d.message))}::text[],
        ${pgArray(column(d => d.claimedBy ?? null))}::text[]))
    update trigger_log as l
       set dispatch_outcome = v.outcome,
           triggered_at = v.triggered_at,
           claimed_by = null,
           executor_instance = v.instance,
           executor_session_id = v.session_id,
           trigger_message = v.message
      from v
     where ${LOGS_LISTED_IN_V}
       -- Fenced. An executor's acceptance always lands: it runs the run, whatever was
       -- recorded before. A failure lands only on a log still PENDING and, for a fire,
       -- still held by this admin: one a peer took over is the peer's to record.
       and (v.outcome = 'ACCEPTED'
            or (l.dispatch_outcome = 'PENDING' and (v.claimed_by is null or l.claimed_by = v.claimed_by)))`.execute(
    db,
  );
}

/**
 * A run result, and the executor's acceptance of the run when it was not recorded yet
 * (see HeldAcceptances): stored together, one row update instead of two.
 */
export interface ResultToStore extends RunResultInput {
  acceptance?: Omit<DispatchRecord, 'outcome' | 'claimedBy'>;
}

/** Whether an acceptance stored with a result (columns of `v`) may land on log `l`. */
const ACCEPTANCE_STILL_APPLIES = sql`(v.accepted_session_id = l.executor_session_id and l.dispatch_outcome <> 'FAILED')`;

/**
 * Records acceptances that were held back for their results (see HeldAcceptances) and
 * whose results did not come in time. Fenced by the session: one that lands late must
 * not undo what happened meanwhile, so it lands only on a log still naming the session
 * that accepted and not failed. A log the executor's next Register settled (accepted on
 * the new session, released to be sent again, or lost) names another session or none.
 */
export async function recordHeldAcceptances(
  db: Db,
  acceptances: readonly (Omit<DispatchRecord, 'outcome' | 'claimedBy'> & {
    logId: string;
    attempt: number;
  })[],
): Promise<void> {
  if (acceptances.length === 0) return;
  await sql`
    with v(id, attempt, triggered_at, session_id, message) as (
      select * from unnest(
        ${pgArray(acceptances.map(a => a.logId))}::bigint[],
        ${pgArray(acceptances.map(a => a.attempt))}::int[],
        ${pgArray(acceptances.map(a => a.triggeredAt))}::timestamptz[],
        ${pgArray(acceptances.map(a => a.executorSessionId))}::text[],
        ${pgArray(acceptances.map(a => a.message))}::text[]))
    update trigger_log as l
       set dispatch_outcome = 'ACCEPTED',
           triggered_at = v.triggered_at,
           claimed_by = null,
           trigger_message = v.message
      from v
     where ${LOGS_LISTED_IN_V}
       and l.attempt = v.attempt
       and l.executor_session_id = v.session_id
       and l.dispatch_outcome in ('PENDING', 'ACCEPTED')`.execute(db);
}

/** A result this call stored, with what follow-up work needs to know. */
export interface StoredResult {
  jobId: string;
  /** The job has child jobs (triggered when the run succeeded). */
  hasChildJobs: boolean;
}

/** What is known of a run request that went out and got no answer. */
export interface RunInDoubt {
  logId: string;
  /** The session the log names now: none for a first send, else the one it was moved to. */
  currentSessionId: string | null;
  triggeredAt: Date;
  executorInstance: string;
  executorSessionId: string;
  executorProcess: string;
  message: string;
}

/**
 * Records a run request that may have reached its executor but got no answer: it stays
 * PENDING, now naming the executor and session it went to, and is unroutable from now
 * on (the session is ended), so it is declared lost after the grace period unless the
 * executor settles it first (settleRunsInDoubt, claimRunInDoubt). Returns false when the
 * log already has another fate (a result, settled at a Register, sent again by another
 * admin), so the caller must leave it alone.
 */
export async function recordRunInDoubt(db: Db, run: RunInDoubt): Promise<boolean> {
  const result = await db
    .updateTable('trigger_log')
    .set({
      triggered_at: run.triggeredAt,
      claimed_by: null,
      executor_instance: run.executorInstance,
      executor_session_id: run.executorSessionId,
      executor_process: run.executorProcess,
      trigger_message: run.message,
      unroutable_since: sql<Date>`now()`,
    })
    .where('id', '=', run.logId)
    .where('dispatch_outcome', '=', 'PENDING')
    .where('outcome', 'is', null)
    .where(eb =>
      run.currentSessionId === null
        ? eb('executor_session_id', 'is', null)
        : eb('executor_session_id', '=', run.currentSessionId),
    )
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Takes the settling of a run in doubt by asking the executor's new session: the run
 * moves from the session it went to onto `to`. False when the run was settled meanwhile
 * (by the executor's Register, or a result) or moved on already, and, unless the request
 * certainly never reached the executor (`certainlyNotReceived`), when `to` is another
 * process than the one it went to: that one may have started it before it ended, and
 * sending it to its successor could run it twice.
 */
export async function claimRunInDoubt(
  db: Db,
  logId: string,
  fromSessionId: string,
  to: { sessionId: string; process: string },
  certainlyNotReceived = false,
): Promise<boolean> {
  const result = await db
    .updateTable('trigger_log')
    .set({ executor_session_id: to.sessionId, executor_process: to.process, unroutable_since: null })
    .where('id', '=', logId)
    .where('dispatch_outcome', '=', 'PENDING')
    .where('outcome', 'is', null)
    .where('executor_session_id', '=', fromSessionId)
    .where(
      certainlyNotReceived
        ? sql<boolean>`true`
        : sql<boolean>`executor_process is not distinct from ${to.process}`,
    )
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * At an executor's Register, settles its runs in doubt from earlier sessions, and the runs
 * an earlier process of the same instance had. The executor builds Register only after its
 * previous stream ended and never starts a run request read from an ended stream, so what
 * it lists (running, or results not yet acknowledged, including those a previous process
 * left in the spool) is exactly what it took: runs in doubt among those are ACCEPTED on
 * the new session. Runs in doubt sent to this same process (`process`, hostname/pid) and
 * not listed certainly never started and never will, so they are released to be sent again
 * (PENDING with no executor, returned for the caller to dispatch).
 *
 * A registering process that is not the one a run went to replaced it: an instance name
 * has one live stream, and the process it went to ended (killed, then started again) or
 * gave up the name. Its runs that the new process does not list are lost now, not after
 * the grace period (which waits for the same process to come back): a run request in
 * doubt may have started there, an accepted run did, and neither can report a result any
 * more. They are returned as `lost` (the job's fail retry runs the next attempt; a
 * FIX_DELAY job plans its next fire).
 */
export async function settleRunsInDoubt(
  db: Db,
  groupId: string,
  instanceName: string,
  sessionId: string,
  process: string,
  listed: readonly { logId: string; attempt: number }[],
  neverSent: readonly { logId: string; attempt: number }[] = [],
): Promise<{ accepted: string[]; released: string[]; lost: string[] }> {
  const { rows } = await sql<{ settled: 'accepted' | 'released' | 'lost'; id: string }>`
    with doubt as (
      select l.id, l.attempt, l.dispatch_outcome = 'PENDING' as in_doubt,
             -- Certainly not started: sent to this same process and not listed, or never
             -- written to the replaced stream at all (the caller, its admin, knows).
             (l.executor_process is not distinct from ${process}
              or (l.id, l.attempt) in (
                select * from unnest(${pgArray(neverSent.map(run => run.logId))}::bigint[],
                                     ${pgArray(neverSent.map(run => run.attempt))}::bigint[]))) as certainly_not_started
        from trigger_log l
       where l.executor_instance = ${instanceName}
         and l.outcome is null
         and l.group_id = ${groupId}
         and l.executor_session_id <> ${sessionId}
         and (l.dispatch_outcome = 'PENDING'
              -- Accepted runs of the same process are reconciled on the new session.
              or (l.dispatch_outcome = 'ACCEPTED' and l.executor_process <> ${process}))
       for update
    ), listed(id, attempt) as (
      select * from unnest(${pgArray(listed.map(run => run.logId))}::bigint[], ${pgArray(listed.map(run => run.attempt))}::bigint[])
    ), accepted as (
      update trigger_log l
         set dispatch_outcome = 'ACCEPTED',
             claimed_by = null,
             executor_session_id = ${sessionId},
             executor_process = ${process},
             unroutable_since = null,
             trigger_message = l.trigger_message || '; settled: the executor had the run when it reconnected'
        from doubt d
       where l.id = d.id
         and d.in_doubt
         and exists (select 1 from listed x where x.id = d.id and x.attempt = d.attempt)
      returning l.id
    ), released as (
      update trigger_log l
         set executor_instance = null,
             executor_session_id = null,
             executor_process = null,
             -- Also a fire its admin is still sending (marked, its answer not in yet): that
             -- admin's writes are fenced by its claim, so whoever sends it again owns it.
             claimed_by = null,
             unroutable_since = null,
             triggered_at = now(),
             trigger_message = l.trigger_message
               || '; settled: the executor reconnected without the run (it never started); sending it again'
        from doubt d
       where l.id = d.id
         and d.in_doubt
         and d.certainly_not_started
         and not exists (select 1 from listed x where x.id = d.id and x.attempt = d.attempt)
      returning l.id
    ), lost as (
      update trigger_log l
         set outcome = 'LOST',
             claimed_by = null,
             finished_at = now(),
             result_received_at = now(),
             handle_message = case
               when d.in_doubt then
                 'lost: the run request went to executor ' || l.executor_instance || ' (process '
                 || coalesce(l.executor_process, '?') || '), which ended without answering; it came back as process '
                 || ${process} || ' without the run (it may have started before the process ended)'
               else
                 'lost: executor ' || l.executor_instance || ' (process ' || l.executor_process
                 || ') ended while running it; it came back as process ' || ${process}
                 || ' without the run or its result'
             end
        from doubt d
       where l.id = d.id
         and not d.certainly_not_started
         and not exists (select 1 from listed x where x.id = d.id and x.attempt = d.attempt)
      returning l.id
    )
    select 'accepted' as settled, id from accepted
    union all
    select 'released' as settled, id from released
    union all
    select 'lost' as settled, id from lost`.execute(db);
  return {
    accepted: rows.filter(row => row.settled === 'accepted').map(row => row.id),
    released: rows.filter(row => row.settled === 'released').map(row => row.id),
    lost: rows.filter(row => row.settled === 'lost').map(row => row.id),
  };
}

/**
 * Stores run results unless one is already stored for that (log, attempt), many in one
 * statement (one commit). Returns, per result, what was stored, or undefined for a
 * duplicate (a re-sent result after a reconnect, or repeated within the batch), which
 * changes nothing, so follow-up work (retries, child jobs, alarms) is done exactly once
 * by whoever stored the result.
 */
export async function applyRunResults(
  db: Db,
  results: readonly ResultToStore[],
  receivedAt: Date,
): Promise<(StoredResult | undefined)[]> {
  if (results.length === 0) return [];
  const seen = new Set<string>();
  const unique = results.filter(result => {
    const key = `${result.logId}/${result.attempt}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  // Locked in id order, as the take locks them.
  unique.sort((a, b) => compareIds(a.logId, b.logId));
  const column = <T>(value: (result: ResultToStore) => T): T[] => unique.map(value);
  // FIX_DELAY schedules its next fire N seconds after a scheduled run finished. Doing it
  // in the statement that stores the result makes it atomic with it and costs no extra
  // round trip; a duplicate result updates nothing, so it advances nothing either.
  const { rows } = await sql<{ id: string; attempt: number; job_id: string; has_child_jobs: boolean }>`
    with v(id, attempt, outcome, message, started_at, finished_at,
           accepted_at, accepted_session_id, trigger_message) as (
      select * from unnest(
        ${pgArray(column(r => r.logId))}::bigint[],
        ${pgArray(column(r => r.attempt))}::int[],
        ${pgArray(column(r => r.outcome))}::text[],
        ${pgArray(column(r => r.message))}::text[],
        ${pgArray(column(r => r.startedAt))}::timestamptz[],
        ${pgArray(column(r => r.finishedAt))}::timestamptz[],
        ${pgArray(column(r => r.acceptance?.triggeredAt ?? null))}::timestamptz[],
        ${pgArray(column(r => r.acceptance?.executorSessionId ?? null))}::text[],
        ${pgArray(column(r => r.acceptance?.message ?? null))}::text[])),
    applied as (
      update trigger_log l
         set outcome = v.outcome,
             handle_message = v.message,
             started_at = v.started_at,
             finished_at = v.finished_at,
             result_received_at = ${receivedAt}::timestamptz,
             -- A result proves the executor took the run, even if the admin that sent it
             -- died before recording the executor's answer.
             dispatch_outcome = case when l.dispatch_outcome = 'PENDING' then 'ACCEPTED' else l.dispatch_outcome end,
             -- An acceptance stored with its result is fenced as recordHeldAcceptances is.
             triggered_at = case when ${ACCEPTANCE_STILL_APPLIES} then v.accepted_at else l.triggered_at end,
             trigger_message = case when ${ACCEPTANCE_STILL_APPLIES} then v.trigger_message else l.trigger_message end,
             claimed_by = null,
             unroutable_since = null
        from v
       where ${LOGS_LISTED_IN_V}
         and l.attempt = v.attempt and l.outcome is null
       returning l.id, l.attempt, l.job_id, l.trigger_type, coalesce(l.finished_at, l.result_received_at) as ended_at
    ), fix_delay as (
      update job j
         set next_trigger_at = applied.ended_at + (j.schedule_conf || ' seconds')::interval
        from applied
       where j.id = applied.job_id
         and applied.trigger_type in ('SCHEDULE', 'MISFIRE')
         and j.schedule_type = 'FIX_DELAY'
         and j.trigger_status = 'RUNNING'
         and j.next_trigger_at is null
      returning j.id
    )
    select a.id, a.attempt, a.job_id, cardinality(j.child_job_ids) > 0 as has_child_jobs
      from applied a join job j on j.id = a.job_id`.execute(db);
  const stored = new Map(
    rows.map(row => [`${row.id}/${row.attempt}`, { jobId: row.job_id, hasChildJobs: row.has_child_jobs }]),
  );
  const claimed = new Set<string>();
  return results.map(result => {
    const key = `${result.logId}/${result.attempt}`;
    if (claimed.has(key)) return undefined;
    claimed.add(key);
    return stored.get(key);
  });
}

/**
 * After a reconnect, runs the executor reports as still executing belong to its new
 * session: kills, log reads and results go to the live stream.
 */
/**
 * Which of the runs an executor lists at Register are its own and unfinished: of its
 * group, sent to this instance, or whose dispatch was never recorded (the admin that sent
 * it died first), and not given up on. Results for these may be reported on the new
 * session.
 */
export async function reconcilableRuns(
  db: Db,
  groupId: string,
  instanceName: string,
  runs: readonly { logId: string; attempt: number }[],
): Promise<{ logId: string; attempt: number }[]> {
  if (runs.length === 0) return [];
  const rows = await db
    .selectFrom('trigger_log')
    .select(['id', 'attempt'])
    .where(
      'id',
      'in',
      runs.map(run => run.logId),
    )
    .where('group_id', '=', groupId)
    .where('outcome', 'is', null)
    // A dispatch recorded as failed was given up on (and may have been retried elsewhere).
    .where('dispatch_outcome', '!=', 'FAILED')
    .where(eb => eb.or([eb('executor_instance', '=', instanceName), eb('executor_instance', 'is', null)]))
    .execute();
  const found = new Set(rows.map(row => `${row.id}/${row.attempt}`));
  return runs.filter(run => found.has(`${run.logId}/${run.attempt}`));
}

export async function adoptRunningLogs(
  db: Db,
  instanceName: string,
  sessionId: string,
  logIds: readonly string[],
): Promise<void> {
  if (logIds.length === 0) return;
  await db
    .updateTable('trigger_log')
    .set({ executor_session_id: sessionId, unroutable_since: null })
    .where('id', 'in', logIds)
    .where('executor_instance', '=', instanceName)
    .where('outcome', 'is', null)
    .execute();
}

export async function findLogById(db: Db, id: string): Promise<TriggerLog | undefined> {
  const row = await db.selectFrom('trigger_log').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toLog(row);
}

export interface LogFilter {
  groupId?: string;
  /** Only logs of these groups (a caller's grants); undefined means all. */
  groupIds?: readonly string[] | undefined;
  jobId?: string;
  status?: LogStatus;
  triggeredAfter?: Date;
  triggeredBefore?: Date;
}

/** Newest first, paged by a (triggered_at, id) keyset so deep pages stay cheap. */
export async function listLogs(
  db: Db,
  filter: LogFilter,
  page: { before: { triggeredAt: Date; id: string } | undefined; limit: number },
): Promise<TriggerLog[]> {
  let query = db.selectFrom('trigger_log').selectAll();
  if (filter.groupId !== undefined) query = query.where('group_id', '=', filter.groupId);
  if (filter.groupIds !== undefined) {
    if (filter.groupIds.length === 0) return [];
    query = query.where('group_id', 'in', filter.groupIds);
  }
  if (filter.jobId !== undefined) query = query.where('job_id', '=', filter.jobId);
  if (filter.triggeredAfter) query = query.where('triggered_at', '>=', filter.triggeredAfter);
  if (filter.triggeredBefore) query = query.where('triggered_at', '<', filter.triggeredBefore);
  switch (filter.status) {
    case 'SUCCEEDED':
      query = query.where('outcome', '=', 'SUCCEEDED');
      break;
    case 'FAILED':
      query = query.where(eb =>
        eb.or([
          eb('dispatch_outcome', '=', 'FAILED'),
          eb.and([eb('outcome', 'is not', null), eb('outcome', '!=', 'SUCCEEDED')]),
        ]),
      );
      break;
    case 'RUNNING':
      query = query.where('outcome', 'is', null).where('dispatch_outcome', 'in', ['PENDING', 'ACCEPTED']);
      break;
    case 'SKIPPED':
      query = query.where('dispatch_outcome', '=', 'SKIPPED');
      break;
    case undefined:
      break;
  }
  if (page.before) {
    const { triggeredAt, id } = page.before;
    query = query.where(sql<boolean>`(triggered_at, id) < (${triggeredAt}::timestamptz, ${id}::bigint)`);
  }
  const rows = await query.orderBy('triggered_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
  return rows.map(toLog);
}
