import type { LoginThrottle } from '../auth/login-throttle.js';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { existingGroupIds } from '../db/groups.repository.js';
import {
  countUsers,
  deleteExpiredUserTokens,
  deleteUser,
  deleteUserToken,
  findCredentials,
  findUserById,
  findUserToken,
  insertUser,
  insertUserToken,
  listUserTokens,
  listUsers,
  updateUser,
  type UserChanges,
} from '../db/users.repository.js';
import type { User, UserRole, UserToken } from '../domain.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  TooManyAttemptsError,
  UnauthenticatedError,
} from '../domain-errors.js';
import type { Logger } from '../logger.js';
import type { Tokens } from './tokens.js';

export interface AccountsServiceDependencies {
  db: Db;
  tokens: Tokens;
  loginThrottle: LoginThrottle;
  /** How long a session token from a login works. */
  sessionTtlMs: number;
  logger: Logger;
  now: () => Date;
}

/** A new user; `password` already meets the password rules, `groupIds` passed requireGroups. */
export interface NewAccount {
  username: string;
  password: string;
  role: UserRole;
  groupIds: readonly string[];
  canEditScripts: boolean;
}

/** What UpdateUser changes; unset fields stay. Same preconditions as NewAccount. */
export interface AccountChanges {
  role?: UserRole;
  groupIds?: readonly string[];
  canEditScripts?: boolean;
  password?: string;
}

/**
 * Users, their logins and API tokens. Callers are authorized by the transport; `by`
 * names who acts, for the log.
 */
export class AccountsService {
  readonly #db: Db;
  readonly #tokens: Tokens;
  readonly #loginThrottle: LoginThrottle;
  readonly #sessionTtlMs: number;
  readonly #logger: Logger;
  readonly #now: () => Date;
  /** Compared against when a username does not exist, so such a failure takes as long as any. */
  #decoyHash: Promise<string> | undefined;

  constructor(dependencies: AccountsServiceDependencies) {
    this.#db = dependencies.db;
    this.#tokens = dependencies.tokens;
    this.#loginThrottle = dependencies.loginThrottle;
    this.#sessionTtlMs = dependencies.sessionTtlMs;
    this.#logger = dependencies.logger;
    this.#now = dependencies.now;
  }

  /** A session token for the user, or a refusal that does not say which part was wrong. */
  async login(username: string, password: string): Promise<{ token: string; expiresAt: Date; user: User }> {
    const waitMs = this.#loginThrottle.retryAfterMs(username);
    if (waitMs > 0) {
      throw new TooManyAttemptsError(
        `too many failed logins for "${username}"; retry in ${Math.ceil(waitMs / 1000)} s`,
      );
    }
    const credentials = await findCredentials(this.#db, { username });
    this.#decoyHash ??= hashPassword(this.#tokens.generate());
    const accepted = await verifyPassword(password, credentials?.passwordHash ?? (await this.#decoyHash));
    if (!credentials || !accepted) {
      this.#loginThrottle.recordFailure(username);
      this.#logger.warn({ username }, 'login refused');
      throw new UnauthenticatedError('username or password not accepted');
    }
    this.#loginThrottle.recordSuccess(username);
    const token = this.#tokens.generate('jss_');
    const now = this.#now();
    const expiresAt = new Date(now.getTime() + this.#sessionTtlMs);
    await deleteExpiredUserTokens(this.#db, now);
    await insertUserToken(this.#db, {
      userId: credentials.user.id,
      kind: 'SESSION',
      name: 'login',
      tokenHash: this.#tokens.hash(token),
      expiresAt,
    });
    this.#logger.info({ username }, 'user logged in');
    return { token, expiresAt, user: credentials.user };
  }

  /** Ends the session (or revokes the token) the caller used. */
  async logout(tokenId: string): Promise<void> {
    await deleteUserToken(this.#db, tokenId);
  }

  /**
   * Checks the user's current password before setting a new one (already checked against
   * the password rules). Failures count towards the same throttle as logins.
   */
  async changePassword(
    user: { id: string; name: string },
    currentPassword: string,
    newPassword: string,
  ): Promise<void> {
    const waitMs = this.#loginThrottle.retryAfterMs(user.name);
    if (waitMs > 0) {
      throw new TooManyAttemptsError(
        `too many failed password checks for "${user.name}"; retry in ${Math.ceil(waitMs / 1000)} s`,
      );
    }
    const credentials = await findCredentials(this.#db, { id: user.id });
    if (!credentials || !(await verifyPassword(currentPassword, credentials.passwordHash))) {
      this.#loginThrottle.recordFailure(user.name);
      throw new PermissionDeniedError('is not the password of the calling user', {
        field: 'currentPassword',
      });
    }
    await updateUser(this.#db, user.id, { passwordHash: await hashPassword(newPassword) });
    this.#logger.info({ username: user.name }, 'password changed');
  }

  /** Undefined when the user does not exist (any more). */
  findUser(id: string): Promise<User | undefined> {
    return findUserById(this.#db, id);
  }

  async getUser(id: string): Promise<User> {
    return (await findUserById(this.#db, id)) ?? userNotFound(id);
  }

  listUsers(): Promise<User[]> {
    return listUsers(this.#db);
  }

  /**
   * Refuses the ids of groups that do not exist. Grants are stored as an array, which no
   * foreign key guards, so every grant passes this first.
   */
  async requireGroups(groupIds: readonly string[]): Promise<void> {
    const existing = await existingGroupIds(this.#db, groupIds);
    const missing = groupIds.filter(id => !existing.has(id));
    if (missing.length > 0) {
      throw new NotFoundError(`executor group ${missing.join(', ')} does not exist`, { field: 'groupIds' });
    }
  }

  async createUser(account: NewAccount, by: string): Promise<User> {
    const { username, role, groupIds, canEditScripts } = account;
    const user = await insertUser(this.#db, {
      username,
      passwordHash: await hashPassword(account.password),
      role,
      groupIds,
      canEditScripts,
    }).catch((error: unknown) => {
      if (isUniqueViolation(error)) {
        throw new AlreadyExistsError(`"${username}" is already taken`, { field: 'username', cause: error });
      }
      throw error;
    });
    this.#logger.info({ by, username, role, groupIds, canEditScripts }, 'user created');
    return user;
  }

  /** A new password also ends the user's sessions. */
  async updateUser(current: User, changes: AccountChanges, by: string): Promise<User> {
    const stored: UserChanges = {};
    if (changes.role !== undefined) stored.role = changes.role;
    if (changes.groupIds !== undefined) stored.groupIds = changes.groupIds;
    if (changes.canEditScripts !== undefined) stored.canEditScripts = changes.canEditScripts;
    if (changes.password !== undefined) stored.passwordHash = await hashPassword(changes.password);
    if (changes.role !== undefined && changes.role !== 'ADMIN') {
      await this.#keepOneAdmin(current, `making it USER_ROLE_${changes.role}`);
    }
    const user = (await updateUser(this.#db, current.id, stored)) ?? userNotFound(current.id);
    this.#logger.info(
      {
        by,
        username: user.username,
        role: user.role,
        groupIds: user.groupIds,
        canEditScripts: user.canEditScripts,
        passwordChanged: stored.passwordHash !== undefined,
      },
      'user changed',
    );
    return user;
  }

  async deleteUser(id: string, by: string): Promise<void> {
    const user = (await findUserById(this.#db, id)) ?? userNotFound(id);
    await this.#keepOneAdmin(user, 'deleting it');
    if (!(await deleteUser(this.#db, id))) userNotFound(id);
    this.#logger.info({ by, username: user.username }, 'user deleted');
  }

  /**
   * A new API token of the user, expiring after `ttlMs` (null: never). The token is
   * returned this once; only its hash is stored.
   */
  async createApiToken(
    userId: string,
    name: string,
    ttlMs: number | null,
    by: string,
  ): Promise<{ token: string; apiToken: UserToken }> {
    const owner = (await findUserById(this.#db, userId)) ?? userNotFound(userId);
    const token = this.#tokens.generate('jsa_');
    const apiToken = await insertUserToken(this.#db, {
      userId: owner.id,
      kind: 'API',
      name,
      tokenHash: this.#tokens.hash(token),
      expiresAt: ttlMs === null ? null : new Date(this.#now().getTime() + ttlMs),
    });
    this.#logger.info({ by, username: owner.username, tokenId: apiToken.id, name }, 'API token created');
    return { token, apiToken };
  }

  listApiTokens(userId: string): Promise<UserToken[]> {
    return listUserTokens(this.#db, userId, 'API');
  }

  /** An API token (never a session: those end by logging out). */
  async getApiToken(id: string): Promise<UserToken> {
    const token = await findUserToken(this.#db, id);
    if (!token || token.kind !== 'API') throw new NotFoundError(`API token ${id} does not exist`);
    return token;
  }

  async revokeApiToken(token: UserToken, by: string): Promise<void> {
    await deleteUserToken(this.#db, token.id);
    this.#logger.info({ by, tokenId: token.id }, 'API token revoked');
  }

  /** Some user must remain able to manage users. */
  async #keepOneAdmin(user: User, change: string): Promise<void> {
    if (user.role === 'ADMIN' && (await countUsers(this.#db, 'ADMIN')) <= 1) {
      throw new FailedPreconditionError(
        `user "${user.username}" is the last admin user; ${change} would leave none`,
      );
    }
  }
}

function userNotFound(id: string): never {
  throw new NotFoundError(`user ${id} does not exist`);
}
