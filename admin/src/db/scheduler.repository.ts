import { sql, type Transaction } from 'kysely';
import type { Db } from './database.js';
import type { Database, JobRow } from './schema.js';
import { toJob } from './jobs.repository.js';
import type { Job, TriggerType } from '../domain.js';
import { pgArray } from './pg-array.js';
import { compareIds } from '../util/ids.js';

/** The queries of the scheduler's hot path, with the reasoning behind their locking. */

export interface PlannedFire {
  jobId: string;
  groupId: string;
  handler: string;
  param: string;
  scheduledAt: Date;
  triggerType: Extract<TriggerType, 'SCHEDULE' | 'MISFIRE'>;
  /** A missed fire recorded as skipped (DO_NOTHING) instead of claimed. */
  skipped: boolean;
}

export interface JobAdvance {
  jobId: string;
  nextTriggerAt: Date | null;
  lastTriggerAt: Date | null;
  /** STOPPED when the schedule never fires again (a cron expression whose years are over). */
  status: 'RUNNING' | 'STOPPED';
}

export interface ClaimedFire {
  logId: string;
  jobId: string;
  scheduledAt: Date;
  triggerType: 'SCHEDULE' | 'MISFIRE';
}

/**
 * Claims the due jobs of one batch and records their fires, in one transaction.
 *
 * `FOR UPDATE SKIP LOCKED` spreads the work over all admins: each locks a disjoint set
 * of due jobs, nobody waits for another admin's batch, and there is no global lock
 * row to serialise on (XXL-JOB's schedule_lock). The fires are inserted and the jobs'
 * next fire times advanced in the same transaction, so a crash either keeps both or
 * neither: a fire is never lost between "planned" and "recorded". The unique index
 * on (job, scheduled time, shard) makes a second recording of the same fire a no-op
 * even if two admins somehow planned it.
 */
export async function claimDueJobs(
  db: Db,
  options: { horizon: Date; limit: number; adminInstanceId: string },
  plan: (jobs: Job[]) => { fires: PlannedFire[]; advances: JobAdvance[] },
): Promise<{ claimed: ClaimedFire[]; jobs: Job[]; skipped: PlannedFire[]; advances: JobAdvance[] }> {
  return db.transaction().execute(async trx => {
    const rows: JobRow[] = await trx
      .selectFrom('job')
      .selectAll()
      .where('trigger_status', '=', 'RUNNING')
      .where('next_trigger_at', '<=', options.horizon)
      .orderBy('next_trigger_at')
      .limit(options.limit)
      .forUpdate()
      .skipLocked()
      .execute();
    if (rows.length === 0) return { claimed: [], jobs: [], skipped: [], advances: [] };
    const jobs = rows.map(toJob);
    const { fires, advances } = plan(jobs);
    const claimed = await insertFires(trx, fires, options.adminInstanceId);
    await advanceJobs(trx, advances);
    return { claimed, jobs, skipped: fires.filter(fire => fire.skipped), advances };
  });
}

async function insertFires(
  trx: Transaction<Database>,
  fires: readonly PlannedFire[],
  adminInstanceId: string,
): Promise<ClaimedFire[]> {
  const claimed: ClaimedFire[] = [];
  // Bounded statements: a claim of many thousands of fires is several short ones.
  for (let start = 0; start < fires.length; start += INSERT_CHUNK_ROWS) {
    claimed.push(
      ...(await insertFireChunk(trx, fires.slice(start, start + INSERT_CHUNK_ROWS), adminInstanceId)),
    );
  }
  return claimed;
}

const INSERT_CHUNK_ROWS = 1_000;

async function insertFireChunk(
  trx: Transaction<Database>,
  fires: readonly PlannedFire[],
  adminInstanceId: string,
): Promise<ClaimedFire[]> {
  if (fires.length === 0) return [];
  const column = <T>(value: (fire: PlannedFire) => T): T[] => fires.map(value);
  // Arrays, not a VALUES list: one statement text whatever the batch size (planned once
  // per size no more), and a handful of bind parameters instead of 17 per row.
  const { rows } = await sql<{
    id: string;
    job_id: string;
    scheduled_at: Date;
    trigger_type: string;
    dispatch_outcome: string;
  }>`
    insert into trigger_log (job_id, group_id, trigger_type, handler, param, scheduled_at, triggered_at,
                             dispatch_outcome, trigger_message, claimed_by)
    select job_id, group_id, trigger_type, handler, param, scheduled_at,
           -- Replaced by the dispatch time when the fire is sent.
           scheduled_at,
           case when skipped then 'SKIPPED' else 'PENDING' end,
           case when skipped then 'misfire: found too late, skipped (MISFIRE_STRATEGY_DO_NOTHING)' else '' end,
           case when skipped then null else ${adminInstanceId}::text end
      from unnest(${pgArray(column(fire => fire.jobId))}::bigint[],
                  ${pgArray(column(fire => fire.groupId))}::bigint[],
                  ${pgArray(column(fire => fire.triggerType))}::text[],
                  ${pgArray(column(fire => fire.handler))}::text[],
                  ${pgArray(column(fire => fire.param))}::text[],
                  ${pgArray(column(fire => fire.scheduledAt))}::timestamptz[],
                  ${pgArray(column(fire => fire.skipped === true))}::boolean[])
           as f(job_id, group_id, trigger_type, handler, param, scheduled_at, skipped)
    on conflict do nothing
    returning id, job_id, scheduled_at, trigger_type, dispatch_outcome`.execute(trx);
  return rows
    .filter(row => row.dispatch_outcome === 'PENDING')
    .map(row => ({
      logId: String(row.id),
      jobId: String(row.job_id),
      scheduledAt: row.scheduled_at,
      triggerType: row.trigger_type as ClaimedFire['triggerType'],
    }));
}

async function advanceJobs(trx: Transaction<Database>, advances: readonly JobAdvance[]): Promise<void> {
  if (advances.length === 0) return;
  await sql`
    update job as j
       set next_trigger_at = v.next_at,
           last_trigger_at = coalesce(v.last_at, j.last_trigger_at),
           trigger_status = v.status
      from unnest(${pgArray(advances.map(advance => advance.jobId))}::bigint[],
                  ${pgArray(advances.map(advance => advance.nextTriggerAt))}::timestamptz[],
                  ${pgArray(advances.map(advance => advance.lastTriggerAt))}::timestamptz[],
                  ${pgArray(advances.map(advance => advance.status))}::text[]) as v(id, next_at, last_at, status)
     where j.id = v.id`.execute(trx);
}

/** A fire to take, with the executor it was routed to ahead of its time, if it was. */
export interface FireToTake {
  logId: string;
  /** Routed ahead (see Dispatcher.prepareFire): the take marks it as being sent there. */
  mark?: { executorInstance: string; executorSessionId: string; executorProcess: string; triggeredAt: Date };
}

/**
 * How a fire was taken: `marked` by this take (it goes to the executor it was routed to),
 * `unmarked` (routed and marked when it is sent), or `marked-before` (an earlier take or
 * send of this admin named an executor already: the request may be there, so it is asked
 * again there, never routed afresh).
 */
export type TakenFire = 'marked' | 'unmarked' | 'marked-before';

/**
 * Takes claimed fires just before their time. Only fires still pending and still held
 * by this admin come back: a fire withdrawn by StopJob (row deleted) or taken over by a
 * peer (claimed_by changed) is not sent. Each one returned is marked taken in the same
 * statement, and StopJob never withdraws a taken fire (cancelPendingFires): between this
 * statement and the send nothing else is checked, so a fire withdrawn then would be sent
 * without its log. A fire routed ahead is also marked with its executor here (the fence
 * markSending sets at the send otherwise), so sending it costs no statement. The claim
 * itself is kept until the dispatch is recorded, so if this admin dies while sending, a
 * peer asks the marked executor again (or sends an unmarked fire); the executor answers a
 * repeated RunRequest for the same (log, attempt) without running it twice, and a fire
 * whose result is already stored is never taken over.
 */
export async function takeFires(
  db: Db,
  fires: readonly FireToTake[],
  adminInstanceId: string,
): Promise<Map<string, TakenFire>> {
  const taken = new Map<string, TakenFire>();
  // One row per fire: with a fire listed twice the row is updated once, and both entries
  // would look marked by this take. The first entry of a fire is the one taken.
  const seen = new Set<string>();
  const unique = fires.filter(fire => !seen.has(fire.logId) && seen.add(fire.logId));
  // Locked in id order, like every statement that locks several fires: the lateral lookup
  // below visits the fires in the order given.
  unique.sort((a, b) => compareIds(a.logId, b.logId));
  // Fires of a cron burst share one bucket; a statement per 10,000 keeps each one short.
  for (let start = 0; start < unique.length; start += 10_000) {
    const slice = unique.slice(start, start + 10_000);
    // Each fire is found by its primary key, never by scanning the fires this admin holds:
    // planned as a join, the take hashed every fire claimed by the admin (tens of thousands
    // under load) whenever the statistics said there were few, as they do on a young table
    // or on one analyzed while idle. A lateral subquery with a LIMIT is planned on its own,
    // with the key as its only condition, so nothing else can drive it.
    const { rows } = await sql<{ id: string; marked: boolean; ours: boolean }>`
      with v(id, instance, session_id, process, triggered_at) as (
        select * from unnest(
          ${pgArray(slice.map(fire => fire.logId))}::bigint[],
          ${pgArray(slice.map(fire => fire.mark?.executorInstance ?? null))}::text[],
          ${pgArray(slice.map(fire => fire.mark?.executorSessionId ?? null))}::text[],
          ${pgArray(slice.map(fire => fire.mark?.executorProcess ?? null))}::text[],
          ${pgArray(slice.map(fire => fire.mark?.triggeredAt ?? null))}::timestamptz[])),
      f as materialized (
        select t.row_id, v.instance, v.session_id, v.process, v.triggered_at
          from v
         cross join lateral (
           select t.ctid as row_id, t.claimed_by, t.dispatch_outcome
             from trigger_log t
            where t.id = v.id
            limit 1
              for update) t
         where t.claimed_by = ${adminInstanceId}
           and t.dispatch_outcome = 'PENDING')
      update trigger_log l
         set taken_at = now(),
             executor_instance = case when l.executor_session_id is null and f.session_id is not null
                                      then f.instance else l.executor_instance end,
             executor_process = case when l.executor_session_id is null and f.session_id is not null
                                     then f.process else l.executor_process end,
             triggered_at = case when l.executor_session_id is null and f.session_id is not null
                                 then f.triggered_at else l.triggered_at end,
             executor_session_id = coalesce(l.executor_session_id, f.session_id)
        from f
        -- The rows as locked above (nothing can change them before this update), fetched
        -- by their addresses: a join alone would be planned as a scan of the whole table
        -- while its statistics were young.
       where l.ctid = any(array(select row_id from f)) and l.ctid = f.row_id
      returning l.id,
                l.executor_session_id is not null as marked,
                l.executor_session_id is not distinct from f.session_id as ours`.execute(db);
    for (const row of rows) {
      taken.set(String(row.id), !row.marked ? 'unmarked' : row.ours ? 'marked' : 'marked-before');
    }
  }
  return taken;
}

/** The advisory lock space of admins' liveness locks (two-key form: this, hashtext(admin id)). */
const ADMIN_LOCK_SPACE = 27_251;
/**
 * How long past its lease an admin still counts as alive while a session of its own holds
 * its liveness lock: longer only when PostgreSQL has not noticed that the admin's
 * connection is gone (a network partition), which TCP keepalives end eventually.
 */
const LIVENESS_LOCK_GRACE_MS = 10_000;

/**
 * Whether admin `a` (an admin_instance row) is alive: its lease is current, or it lapsed
 * recently and the admin still holds its liveness lock, taken with every renewal on a
 * connection of its own. An admin at full load on a busy machine can renew late (a trivial
 * statement took a second), and its peers then took over thousands of fires it was still
 * sending, each asked again on its executor: work that kept the machine overloaded. A
 * crashed admin's connections close with it, and its lock goes at once.
 */
const ADMIN_ALIVE = sql`(a.expires_at > now()
  or (a.expires_at > now() - ${LIVENESS_LOCK_GRACE_MS} * interval '1 millisecond'
      and exists (
        select 1 from pg_locks k
         where k.locktype = 'advisory' and k.granted
           and k.database = (select oid from pg_database where datname = current_database())
           and k.classid = ${ADMIN_LOCK_SPACE}::int::oid and k.objid = hashtext(a.id)::oid and k.objsubid = 2)))`;

/**
 * Takes over fires claimed by admins whose lease expired (they died, or stalled past
 * their lease, before sending them). SKIP LOCKED again: two surviving admins split the
 * orphans between them. A fire its admin had started sending (it names an executor, see
 * markSending) is not taken to be routed again nor skipped as late: the request may be
 * on that executor, so it becomes a run in doubt (returned in `inDoubt`, to be asked
 * again on that executor, which does not run a repeated (log, attempt) twice).
 */
export async function reclaimOrphanedFires(
  db: Db,
  adminInstanceId: string,
  limit: number,
): Promise<{ fires: ClaimedFire[]; inDoubt: string[] }> {
  const { rows } = await sql<{
    id: string;
    job_id: string;
    scheduled_at: Date;
    trigger_type: string;
    in_doubt: boolean;
  }>`
    with recursive claimant(id) as (
      -- The admins holding fires, one index descent each (a loose index scan): the pass
      -- runs several times a second, and filtering every claimed fire read them all, the
      -- tens of thousands a loaded admin holds, to find the few of a dead one.
      select min(claimed_by) from trigger_log where dispatch_outcome = 'PENDING' and claimed_by is not null
      union all
      select (select min(t.claimed_by) from trigger_log t
               where t.dispatch_outcome = 'PENDING' and t.claimed_by > c.id)
        from claimant c
       where c.id is not null
    ), dead as (
      select c.id from claimant c
       where c.id is not null
         and c.id <> ${adminInstanceId}
         and not exists (select 1 from admin_instance a where a.id = c.id and ${ADMIN_ALIVE})
    ), orphan as (
      select l.id, l.executor_session_id is not null as named from trigger_log l
       where l.dispatch_outcome = 'PENDING'
         and l.outcome is null
         and l.claimed_by = any(array(select id from dead))
       order by l.scheduled_at
       limit ${limit}
       for update skip locked
    ), doubted as (
      update trigger_log l
         set claimed_by = null,
             unroutable_since = coalesce(l.unroutable_since, now()),
             trigger_message = l.trigger_message
               || case when l.trigger_message = '' then '' else '; ' end
               || 'in doubt: admin ' || l.claimed_by || ' stopped while sending the run request to '
               || l.executor_instance || '; asked again by admin ' || ${adminInstanceId}::text
        from orphan o
       where l.id = o.id and o.named
      returning l.id, l.job_id, l.scheduled_at, l.trigger_type, true as in_doubt
    ), taken as (
      update trigger_log l set claimed_by = ${adminInstanceId}
        from orphan o
       where l.id = o.id and not o.named
      returning l.id, l.job_id, l.scheduled_at, l.trigger_type, false as in_doubt
    )
    select * from doubted union all select * from taken order by scheduled_at`.execute(db);
  return {
    fires: rows
      .filter(row => !row.in_doubt)
      .map(row => ({
        logId: row.id,
        jobId: row.job_id,
        scheduledAt: row.scheduled_at,
        triggerType: row.trigger_type as ClaimedFire['triggerType'],
      })),
    inDoubt: rows.filter(row => row.in_doubt).map(row => String(row.id)),
  };
}

/**
 * Records pending fires as skipped. A skipped fire of a FIX_DELAY job never runs, so no
 * result will plan the job's next fire: the same statement plans it (the delay counted
 * from now). Two separate writes would leave the job waiting forever (RUNNING, no next
 * fire) whenever the admin died or lost the database between them.
 */
export async function markFiresSkipped(db: Db, logIds: readonly string[], message: string): Promise<void> {
  if (logIds.length === 0) return;
  await sql`
    with skipped as (
      update trigger_log
         set dispatch_outcome = 'SKIPPED', claimed_by = null, trigger_message = ${message}
       where id = any(${pgArray(logIds)}::bigint[])
         and dispatch_outcome = 'PENDING'
      returning job_id, trigger_type)
    update job j
       set next_trigger_at = now() + (j.schedule_conf || ' seconds')::interval
      from skipped s
     where j.id = s.job_id
       and s.trigger_type in ('SCHEDULE', 'MISFIRE')
       and j.schedule_type = 'FIX_DELAY'
       and j.trigger_status = 'RUNNING'
       and j.next_trigger_at is null`.execute(db);
}

/**
 * Fires claimed but not taken for sending yet, for StopJob and schedule changes. A fire
 * taken (see takeFires) is left alone, whatever its time: it may be on its way to an
 * executor, and its log is where the run's result goes.
 */
export async function cancelPendingFires(db: Db, jobId: string): Promise<number> {
  const result = await db
    .deleteFrom('trigger_log')
    .where('job_id', '=', jobId)
    .where('dispatch_outcome', '=', 'PENDING')
    .where('claimed_by', 'is not', null)
    .where('taken_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * A claimed fire this admin gives up on, still PENDING and claimed by it with no run in
 * doubt: recorded FAILED when nothing went out (the failure monitor retries and alarms
 * it), or released when its fate is unknown (the failure monitor fails it after its
 * grace period unless its executor reports a result first). Returns false when the fire
 * has another fate already.
 */
export async function giveUpFire(
  db: Db,
  logId: string,
  adminInstanceId: string,
  how: 'FAILED' | 'RELEASED',
  message: string,
): Promise<boolean> {
  const result = await db
    .updateTable('trigger_log')
    .set(eb => ({
      dispatch_outcome: how === 'FAILED' ? 'FAILED' : 'PENDING',
      claimed_by: null,
      unroutable_since: sql<Date | null>`case when ${eb.ref('executor_session_id')} is null then null else coalesce(${eb.ref('unroutable_since')}, now()) end`,
      triggered_at: sql<Date>`now()`,
      trigger_message: sql<string>`${eb.ref('trigger_message')} || case when ${eb.ref('trigger_message')} = '' then '' else '; ' end || ${message}::text`,
    }))
    .where('id', '=', logId)
    .where('claimed_by', '=', adminInstanceId)
    .where('dispatch_outcome', '=', 'PENDING')
    .where('outcome', 'is', null)
    // A fire recorded FAILED certainly went nowhere; one that names an executor (its
    // request may be there) is released as a run in doubt, declared lost after the grace
    // period unless that executor settles it first.
    .where(eb => (how === 'FAILED' ? eb('executor_session_id', 'is', null) : eb.lit(true)))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * FIX_DELAY: the next fire comes N seconds after the run finished. Only the admin that
 * stored the result calls this, and only a RUNNING job waiting for its run (next fire
 * unset) is advanced, so a duplicate call changes nothing.
 */
export async function scheduleFixDelayAfterRun(db: Db, logId: string, finishedAt: Date): Promise<void> {
  await sql`
    update job j
       set next_trigger_at = ${finishedAt}::timestamptz + (j.schedule_conf || ' seconds')::interval
      from trigger_log l
     where l.id = ${logId}
       and j.id = l.job_id
       -- Only a fire recorded as not run: a failure this admin could not record (another
       -- admin owns the fire now, and its run may be going) plans nothing.
       and (l.dispatch_outcome in ('FAILED', 'SKIPPED') or l.outcome is not null)
       and l.trigger_type in ('SCHEDULE', 'MISFIRE')
       and j.schedule_type = 'FIX_DELAY'
       and j.trigger_status = 'RUNNING'
       and j.next_trigger_at is null`.execute(db);
}

export async function findJobsByIds(db: Db, ids: readonly string[]): Promise<Map<string, Job>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('job').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map(row => [row.id, toJob(row)]));
}

/** Renews (or creates) this admin's lease; other admins treat it as dead once it expires. */
export async function renewAdminLease(db: Db, id: string, grpcAddress: string, ttlMs: number): Promise<void> {
  // Takes the admin's liveness lock (see ADMIN_ALIVE) unless this session holds it already:
  // a connection that broke and was replaced takes it again with its next renewal.
  await sql`
    with lock as (
      select case when exists (
                    select 1 from pg_locks
                     where locktype = 'advisory' and pid = pg_backend_pid()
                       and classid = ${ADMIN_LOCK_SPACE}::int::oid and objid = hashtext(${id})::oid and objsubid = 2)
                  then true
                  else pg_try_advisory_lock(${ADMIN_LOCK_SPACE}::int, hashtext(${id})) end as held)
    insert into admin_instance (id, grpc_address, expires_at)
    select ${id}, ${grpcAddress}, now() + ${ttlMs} * interval '1 millisecond' from lock
    on conflict (id) do update set grpc_address = excluded.grpc_address, expires_at = excluded.expires_at`.execute(
    db,
  );
}

/** Ends this admin's lease at once, so peers take over its claimed fires without waiting. */
export async function releaseAdminLease(db: Db, id: string): Promise<void> {
  await db.deleteFrom('admin_instance').where('id', '=', id).execute();
}

export async function listLiveAdmins(db: Db): Promise<{ id: string; grpcAddress: string }[]> {
  const rows = await db
    .selectFrom('admin_instance')
    .select(['id', 'grpc_address'])
    .where('expires_at', '>', sql<Date>`now()`)
    .execute();
  return rows.map(row => ({ id: row.id, grpcAddress: row.grpc_address }));
}
