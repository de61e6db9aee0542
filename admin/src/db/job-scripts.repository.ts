import type { Db } from './database.js';
import type { JobScriptVersionRow } from './schema.js';
import type { JobScriptVersion, ScriptKind } from '../domain.js';

/** The stored versions of script jobs' scripts (job_script_version). */

/** How many versions of a job's script are kept; saving one more drops the oldest. */
export const SCRIPT_VERSIONS_KEPT = 30;

function toVersion(row: JobScriptVersionRow): JobScriptVersion {
  return {
    id: row.id,
    jobId: String(row.job_id),
    glueType: row.glue_type,
    source: row.source,
    remark: row.remark,
    author: row.author,
    createdAt: row.created_at,
    restoredFromId: row.restored_from_id === null ? null : String(row.restored_from_id),
  };
}

/** What a save adds to a job's script history, besides the job's own kind and source. */
export interface NewScriptVersion {
  author: string;
  remark: string;
  restoredFromId: string | null;
}

/**
 * Stores a version and drops the job's versions beyond the last SCRIPT_VERSIONS_KEPT. Meant
 * to run in the transaction that saves the job, so the job's script and its newest
 * version never disagree.
 */
export async function insertScriptVersion(
  db: Db,
  jobId: string,
  script: { glueType: ScriptKind; source: string; createdAt: Date },
  version: NewScriptVersion,
): Promise<JobScriptVersion> {
  const row = await db
    .insertInto('job_script_version')
    .values({
      job_id: jobId,
      glue_type: script.glueType,
      source: script.source,
      remark: version.remark,
      author: version.author,
      created_at: script.createdAt,
      restored_from_id: version.restoredFromId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await db
    .deleteFrom('job_script_version')
    .where('job_id', '=', jobId)
    .where('id', 'not in', eb =>
      eb
        .selectFrom('job_script_version')
        .select('id')
        .where('job_id', '=', jobId)
        .orderBy('id', 'desc')
        .limit(SCRIPT_VERSIONS_KEPT),
    )
    .execute();
  return toVersion(row);
}

/** A job's versions, newest first; without their sources unless asked for. */
export async function listScriptVersions(
  db: Db,
  jobId: string,
  options: { includeSource: boolean },
): Promise<JobScriptVersion[]> {
  const rows = await db
    .selectFrom('job_script_version')
    .select([
      'id',
      'job_id',
      'glue_type',
      options.includeSource ? 'source' : eb => eb.val('').as('source'),
      'remark',
      'author',
      'created_at',
      'restored_from_id',
    ])
    .where('job_id', '=', jobId)
    .orderBy('id', 'desc')
    .limit(SCRIPT_VERSIONS_KEPT)
    .execute();
  return rows.map(toVersion);
}

/** One version of the job's script; undefined when it does not exist or is another job's. */
export async function findScriptVersion(
  db: Db,
  jobId: string,
  versionId: string,
): Promise<JobScriptVersion | undefined> {
  const row = await db
    .selectFrom('job_script_version')
    .selectAll()
    .where('id', '=', versionId)
    .where('job_id', '=', jobId)
    .executeTakeFirst();
  return row && toVersion(row);
}
