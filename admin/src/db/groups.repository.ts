import { sql } from 'kysely';
import type { Db } from './database.js';
import type { ExecutorGroupRow } from './schema.js';
import type { ExecutorGroup, ExecutorGroupSpec } from '../domain.js';

function toGroup(
  row: Omit<ExecutorGroupRow, 'access_token_hash' | 'previous_token_hash' | 'previous_token_expires_at'>,
): ExecutorGroup {
  return {
    id: row.id,
    appName: row.app_name,
    title: row.title,
    addressType: row.address_type,
    addresses: row.addresses,
    scriptKinds: row.script_kinds,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const publicColumns = [
  'id',
  'app_name',
  'title',
  'address_type',
  'addresses',
  'script_kinds',
  'created_at',
  'updated_at',
] as const;

export async function insertGroup(
  db: Db,
  spec: ExecutorGroupSpec,
  accessTokenHash: string,
): Promise<ExecutorGroup> {
  const row = await db
    .insertInto('executor_group')
    .values({
      app_name: spec.appName,
      title: spec.title,
      address_type: spec.addressType,
      addresses: spec.addresses,
      script_kinds: spec.scriptKinds,
      access_token_hash: accessTokenHash,
    })
    .returning(publicColumns)
    .executeTakeFirstOrThrow();
  return toGroup(row);
}

export async function updateGroup(
  db: Db,
  id: string,
  spec: ExecutorGroupSpec,
): Promise<ExecutorGroup | undefined> {
  const row = await db
    .updateTable('executor_group')
    .set({
      app_name: spec.appName,
      title: spec.title,
      address_type: spec.addressType,
      addresses: spec.addresses,
      script_kinds: spec.scriptKinds,
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .returning(publicColumns)
    .executeTakeFirst();
  return row && toGroup(row);
}

/**
 * Replaces a group's token. With `previousValidUntil`, the replaced token keeps working
 * until then (executors move to the new one without downtime); without, it stops at once.
 */
export async function setGroupTokenHash(
  db: Db,
  id: string,
  accessTokenHash: string,
  previousValidUntil: Date | null,
): Promise<boolean> {
  const result = await db
    .updateTable('executor_group')
    .set({
      access_token_hash: accessTokenHash,
      previous_token_hash: previousValidUntil === null ? null : sql<string>`access_token_hash`,
      previous_token_expires_at: previousValidUntil,
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function deleteGroup(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('executor_group').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function findGroupById(db: Db, id: string): Promise<ExecutorGroup | undefined> {
  const row = await db
    .selectFrom('executor_group')
    .select(publicColumns)
    .where('id', '=', id)
    .executeTakeFirst();
  return row && toGroup(row);
}

export async function findGroupByAppName(db: Db, appName: string): Promise<ExecutorGroup | undefined> {
  const row = await db
    .selectFrom('executor_group')
    .select(publicColumns)
    .where('app_name', '=', appName)
    .executeTakeFirst();
  return row && toGroup(row);
}

/** The group a token belongs to: its current token, or a rotated one still in its grace period. */
export async function findGroupByTokenHash(
  db: Db,
  accessTokenHash: string,
  now: Date,
): Promise<ExecutorGroup | undefined> {
  const row = await db
    .selectFrom('executor_group')
    .select(publicColumns)
    .where(eb =>
      eb.or([
        eb('access_token_hash', '=', accessTokenHash),
        eb.and([eb('previous_token_hash', '=', accessTokenHash), eb('previous_token_expires_at', '>', now)]),
      ]),
    )
    .executeTakeFirst();
  return row && toGroup(row);
}

export async function listGroups(
  db: Db,
  appNameContains: string,
  /** Only these groups (a caller's grants); undefined means all. */
  ids?: readonly string[],
): Promise<ExecutorGroup[]> {
  if (ids?.length === 0) return [];
  let query = db.selectFrom('executor_group').select(publicColumns).orderBy('app_name');
  if (ids !== undefined) query = query.where('id', 'in', ids);
  if (appNameContains !== '') query = query.where('app_name', 'ilike', `%${escapeLike(appNameContains)}%`);
  return (await query.execute()).map(toGroup);
}

/** Which of `ids` name existing groups. */
export async function existingGroupIds(db: Db, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('executor_group').select('id').where('id', 'in', ids).execute();
  return new Set(rows.map(row => row.id));
}

export async function countJobsOfGroup(db: Db, groupId: string): Promise<number> {
  const row = await db
    .selectFrom('job')
    .select(eb => eb.fn.countAll<string>().as('count'))
    .where('group_id', '=', groupId)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** Escapes LIKE wildcards so user text matches literally. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, match => `\\${match}`);
}
