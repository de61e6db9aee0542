import type { Db } from './database.js';
import type { User, UserRole, UserToken, UserTokenKind } from '../domain.js';

/** Users, their session and API tokens, and the cluster's peer secret. */

const userColumns = [
  'id',
  'username',
  'role',
  'group_ids',
  'can_edit_scripts',
  'created_at',
  'updated_at',
] as const;
const tokenColumns = ['id', 'user_id', 'kind', 'name', 'created_at', 'expires_at'] as const;

interface UserRow {
  id: string;
  username: string;
  role: UserRole;
  group_ids: string[];
  can_edit_scripts: boolean;
  created_at: Date;
  updated_at: Date;
}

function toUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    role: row.role,
    // pg returns bigint[] elements as strings; sorted so responses are stable.
    groupIds: [...row.group_ids].map(String).sort((a, b) => Number(a) - Number(b)),
    canEditScripts: row.can_edit_scripts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toToken(row: {
  id: string;
  user_id: string;
  kind: UserTokenKind;
  name: string;
  created_at: Date;
  expires_at: Date | null;
}): UserToken {
  return {
    id: row.id,
    userId: row.user_id,
    kind: row.kind,
    name: row.name,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

export interface NewUser {
  username: string;
  passwordHash: string;
  role: UserRole;
  groupIds: readonly string[];
  /** Unset: not granted. */
  canEditScripts?: boolean;
}

/** Inserts a user; a taken username surfaces as PostgreSQL's unique_violation (23505). */
export async function insertUser(db: Db, user: NewUser): Promise<User> {
  const row = await db
    .insertInto('app_user')
    .values({
      username: user.username,
      password_hash: user.passwordHash,
      role: user.role,
      group_ids: [...user.groupIds],
      can_edit_scripts: user.canEditScripts ?? false,
    })
    .returning(userColumns)
    .executeTakeFirstOrThrow();
  return toUser(row);
}

export async function findUserById(db: Db, id: string): Promise<User | undefined> {
  const row = await db.selectFrom('app_user').select(userColumns).where('id', '=', id).executeTakeFirst();
  return row && toUser(row);
}

/** The user with its password hash, for Login and ChangePassword only. */
export async function findCredentials(
  db: Db,
  by: { username: string } | { id: string },
): Promise<{ user: User; passwordHash: string } | undefined> {
  let query = db.selectFrom('app_user').select([...userColumns, 'password_hash']);
  query = 'username' in by ? query.where('username', '=', by.username) : query.where('id', '=', by.id);
  const row = await query.executeTakeFirst();
  return row && { user: toUser(row), passwordHash: row.password_hash };
}

export async function listUsers(db: Db): Promise<User[]> {
  return (await db.selectFrom('app_user').select(userColumns).orderBy('username').execute()).map(toUser);
}

export async function countUsers(db: Db, role?: UserRole): Promise<number> {
  let query = db.selectFrom('app_user').select(eb => eb.fn.countAll<string>().as('count'));
  if (role !== undefined) query = query.where('role', '=', role);
  const row = await query.executeTakeFirstOrThrow();
  return Number(row.count);
}

export interface UserChanges {
  role?: UserRole;
  groupIds?: readonly string[];
  canEditScripts?: boolean;
  passwordHash?: string;
}

/**
 * Changes a user. A new password revokes the user's session tokens in the same
 * transaction: whoever held a session opened with the old password is logged out.
 */
export async function updateUser(db: Db, id: string, changes: UserChanges): Promise<User | undefined> {
  return db.transaction().execute(async trx => {
    const row = await trx
      .updateTable('app_user')
      .set({
        updated_at: new Date(),
        ...(changes.role === undefined ? {} : { role: changes.role }),
        ...(changes.groupIds === undefined ? {} : { group_ids: [...changes.groupIds] }),
        ...(changes.canEditScripts === undefined ? {} : { can_edit_scripts: changes.canEditScripts }),
        ...(changes.passwordHash === undefined ? {} : { password_hash: changes.passwordHash }),
      })
      .where('id', '=', id)
      .returning(userColumns)
      .executeTakeFirst();
    if (row && changes.passwordHash !== undefined) {
      await trx.deleteFrom('user_token').where('user_id', '=', id).where('kind', '=', 'SESSION').execute();
    }
    return row && toUser(row);
  });
}

/** Deletes a user; its tokens go with it (ON DELETE CASCADE). */
export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('app_user').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export interface NewUserToken {
  userId: string;
  kind: UserTokenKind;
  name: string;
  tokenHash: string;
  expiresAt: Date | null;
}

export async function insertUserToken(db: Db, token: NewUserToken): Promise<UserToken> {
  const row = await db
    .insertInto('user_token')
    .values({
      user_id: token.userId,
      kind: token.kind,
      name: token.name,
      token_hash: token.tokenHash,
      expires_at: token.expiresAt,
    })
    .returning(tokenColumns)
    .executeTakeFirstOrThrow();
  return toToken(row);
}

/** The user a live token acts as, or undefined for an unknown, expired or revoked token. */
export async function findUserByTokenHash(
  db: Db,
  tokenHash: string,
  now: Date,
): Promise<{ user: User; token: UserToken } | undefined> {
  const row = await db
    .selectFrom('user_token as t')
    .innerJoin('app_user as u', 'u.id', 't.user_id')
    .select([
      'u.id',
      'u.username',
      'u.role',
      'u.group_ids',
      'u.can_edit_scripts',
      'u.created_at',
      'u.updated_at',
      't.id as token_id',
      't.kind',
      't.name',
      't.created_at as token_created_at',
      't.expires_at',
    ])
    .where('t.token_hash', '=', tokenHash)
    .where(eb => eb.or([eb('t.expires_at', 'is', null), eb('t.expires_at', '>', now)]))
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    user: toUser(row),
    token: toToken({
      id: row.token_id,
      user_id: row.id,
      kind: row.kind,
      name: row.name,
      created_at: row.token_created_at,
      expires_at: row.expires_at,
    }),
  };
}

export async function findUserToken(db: Db, id: string): Promise<UserToken | undefined> {
  const row = await db.selectFrom('user_token').select(tokenColumns).where('id', '=', id).executeTakeFirst();
  return row && toToken(row);
}

export async function listUserTokens(db: Db, userId: string, kind: UserTokenKind): Promise<UserToken[]> {
  const rows = await db
    .selectFrom('user_token')
    .select(tokenColumns)
    .where('user_id', '=', userId)
    .where('kind', '=', kind)
    .orderBy('id', 'desc')
    .execute();
  return rows.map(toToken);
}

export async function deleteUserToken(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('user_token').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Drops expired tokens; returns how many. */
export async function deleteExpiredUserTokens(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('user_token').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * The cluster's peer secret: the first admin to start stores `candidate`, every
 * later one reads what is stored.
 */
export async function ensureClusterSecret(db: Db, candidate: string): Promise<string> {
  await db
    .insertInto('cluster_secret')
    .values({ secret: candidate })
    .onConflict(oc => oc.column('id').doNothing())
    .execute();
  const row = await db.selectFrom('cluster_secret').select('secret').executeTakeFirstOrThrow();
  return row.secret;
}
