import type { Db } from './database.js';
import type { JobRow } from './schema.js';
import { escapeLike } from './groups.repository.js';
import type { Job, JobScriptVersion, JobSpec, ScriptKind, TriggerStatus } from '../domain.js';
import { insertScriptVersion, type NewScriptVersion } from './job-scripts.repository.js';

export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    groupId: row.group_id,
    description: row.description,
    author: row.author,
    alarmEmail: row.alarm_email,
    scheduleType: row.schedule_type,
    scheduleConf: row.schedule_conf,
    timeZone: row.time_zone,
    misfireStrategy: row.misfire_strategy,
    routeStrategy: row.route_strategy,
    handler: row.handler,
    param: row.param,
    blockStrategy: row.block_strategy,
    timeoutSeconds: row.timeout_seconds,
    failRetryCount: row.fail_retry_count,
    failRetryDelayMs: row.fail_retry_delay_ms,
    glueType: row.glue_type,
    glueSource: row.glue_source,
    glueRemark: row.glue_remark,
    childJobIds: row.child_job_ids.map(String),
    triggerStatus: row.trigger_status,
    lastTriggerAt: row.last_trigger_at,
    nextTriggerAt: row.next_trigger_at,
    glueUpdatedAt: row.glue_updated_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function specColumns(spec: JobSpec) {
  return {
    group_id: spec.groupId,
    description: spec.description,
    author: spec.author,
    alarm_email: spec.alarmEmail,
    schedule_type: spec.scheduleType,
    schedule_conf: spec.scheduleConf,
    time_zone: spec.timeZone,
    misfire_strategy: spec.misfireStrategy,
    route_strategy: spec.routeStrategy,
    handler: spec.handler,
    param: spec.param,
    block_strategy: spec.blockStrategy,
    timeout_seconds: spec.timeoutSeconds,
    fail_retry_count: spec.failRetryCount,
    fail_retry_delay_ms: spec.failRetryDelayMs,
    glue_type: spec.glueType,
    glue_source: spec.glueSource,
    glue_remark: spec.glueRemark,
    child_job_ids: spec.childJobIds,
  };
}

export async function insertJob(db: Db, spec: JobSpec): Promise<Job> {
  const row = await db.insertInto('job').values(specColumns(spec)).returningAll().executeTakeFirstOrThrow();
  return toJob(row);
}

/**
 * Inserts a script job with its script as the first version, in one transaction; the
 * job's glue_updated_at is that version's time.
 */
export async function insertScriptJob(
  db: Db,
  spec: JobSpec & { glueType: ScriptKind },
  version: NewScriptVersion,
): Promise<{ job: Job; version: JobScriptVersion }> {
  return db.transaction().execute(async trx => {
    const now = new Date();
    const row = await trx
      .insertInto('job')
      .values({ ...specColumns(spec), glue_updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
    const stored = await insertScriptVersion(
      trx,
      row.id,
      { glueType: spec.glueType, source: spec.glueSource, createdAt: now },
      version,
    );
    return { job: toJob(row), version: stored };
  });
}

/** Replaces a job's spec. A changed script source or kind (`glueChanged`) also moves glue_updated_at. */
export async function updateJobSpec(
  db: Db,
  id: string,
  spec: JobSpec,
  glueChanged: boolean,
): Promise<Job | undefined> {
  const now = new Date();
  const row = await db
    .updateTable('job')
    .set({ ...specColumns(spec), updated_at: now, ...(glueChanged ? { glue_updated_at: now } : {}) })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toJob(row);
}

/**
 * Replaces a job's spec whose script changed, storing the script as a new version in the
 * same transaction (versions beyond the kept number are dropped); glue_updated_at becomes
 * that version's time. Undefined when the job does not exist.
 */
export async function updateScriptJobSpec(
  db: Db,
  id: string,
  spec: JobSpec & { glueType: ScriptKind },
  version: NewScriptVersion,
): Promise<{ job: Job; version: JobScriptVersion } | undefined> {
  return db.transaction().execute(async trx => {
    const now = new Date();
    const row = await trx
      .updateTable('job')
      .set({ ...specColumns(spec), updated_at: now, glue_updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) return undefined;
    const stored = await insertScriptVersion(
      trx,
      id,
      { glueType: spec.glueType, source: spec.glueSource, createdAt: now },
      version,
    );
    return { job: toJob(row), version: stored };
  });
}

export async function setJobTriggerStatus(
  db: Db,
  id: string,
  status: TriggerStatus,
  nextTriggerAt: Date | null,
): Promise<Job | undefined> {
  const row = await db
    .updateTable('job')
    .set({ trigger_status: status, next_trigger_at: nextTriggerAt, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row && toJob(row);
}

export async function deleteJob(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('job').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function findJobById(db: Db, id: string): Promise<Job | undefined> {
  const row = await db.selectFrom('job').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toJob(row);
}

/** The jobs of `ids` that exist, in no particular order. */
export async function findJobsByIds(db: Db, ids: readonly string[]): Promise<Job[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('job').selectAll().where('id', 'in', ids).execute();
  return rows.map(toJob);
}

/** Which of the given ids exist. */
export async function existingJobIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('job').select('id').where('id', 'in', ids).execute();
  return new Set(rows.map(row => row.id));
}

/** The group of each of `ids` that exists. */
export async function groupIdsOfJobs(db: Db, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('job').select(['id', 'group_id']).where('id', 'in', ids).execute();
  return new Map(rows.map(row => [row.id, String(row.group_id)]));
}

/** Ids of the jobs that list `jobId` as a child. */
export async function parentJobIds(db: Db, jobId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('job')
    .select('id')
    .where(eb => eb(eb.val(jobId), '=', eb.fn.any('child_job_ids')))
    .execute();
  return rows.map(row => row.id);
}

export async function childJobIdsOf(db: Db, ids: readonly string[]): Promise<Map<string, string[]>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('job').select(['id', 'child_job_ids']).where('id', 'in', ids).execute();
  return new Map(rows.map(row => [row.id, row.child_job_ids.map(String)]));
}

export interface JobFilter {
  groupId?: string;
  /** Only jobs of these groups (a caller's grants); undefined means all. */
  groupIds?: readonly string[] | undefined;
  triggerStatus?: TriggerStatus;
  descriptionContains?: string;
  handlerContains?: string;
  authorContains?: string;
}

export async function listJobs(
  db: Db,
  filter: JobFilter,
  page: { afterId: string | undefined; limit: number },
): Promise<{ jobs: Job[]; totalCount: number }> {
  let query = db.selectFrom('job');
  if (filter.groupId !== undefined) query = query.where('group_id', '=', filter.groupId);
  if (filter.groupIds !== undefined) {
    if (filter.groupIds.length === 0) return { jobs: [], totalCount: 0 };
    query = query.where('group_id', 'in', filter.groupIds);
  }
  if (filter.triggerStatus !== undefined) query = query.where('trigger_status', '=', filter.triggerStatus);
  if (filter.descriptionContains)
    query = query.where('description', 'ilike', `%${escapeLike(filter.descriptionContains)}%`);
  if (filter.handlerContains)
    query = query.where('handler', 'ilike', `%${escapeLike(filter.handlerContains)}%`);
  if (filter.authorContains) query = query.where('author', 'ilike', `%${escapeLike(filter.authorContains)}%`);
  const [rows, count] = await Promise.all([
    (page.afterId === undefined ? query : query.where('id', '>', page.afterId))
      .selectAll()
      .orderBy('id')
      .limit(page.limit)
      .execute(),
    query.select(eb => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow(),
  ]);
  return { jobs: rows.map(toJob), totalCount: Number(count.count) };
}
