import { ServerError, Status } from 'nice-grpc';
import { type Principal, denied, requireAdmin } from '../auth/access.js';
import { USERNAME_PATTERN as USERNAME, USERNAME_RULE } from '../auth/create-user.js';
import type { LoginThrottle } from '../auth/login-throttle.js';
import { hashPassword, passwordProblem, verifyPassword, MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
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
import type * as domain from '../domain.js';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import type { Logger } from '../logger.js';
import { generateToken, hashToken } from '../auth/tokens.js';
import type { Authenticator } from './auth.js';
import { userRoles } from './enums.js';
import { apiTokenToProto, userToProto } from './mappers.js';
import { durationToMs } from '@jobstream/proto';
import { invalid, optionalId, requireEnum, requireId, requirePattern, requireText } from './validation.js';

const MAX_API_TOKEN_TTL_MS = 10 * 366 * 24 * 3_600_000;
const MAX_GRANTED_GROUPS = 10_000;

export interface AccountMethodsOptions {
  db: Db;
  authenticator: Authenticator;
  loginThrottle: LoginThrottle;
  /** How long a session token from Login works. */
  sessionTtlMs: number;
  logger: Logger;
}

type AccountMethods = Pick<
  AdminServiceImplementation,
  | 'login'
  | 'logout'
  | 'whoAmI'
  | 'changePassword'
  | 'createUser'
  | 'updateUser'
  | 'deleteUser'
  | 'getUser'
  | 'listUsers'
  | 'createApiToken'
  | 'listApiTokens'
  | 'revokeApiToken'
>;

function requirePassword(field: string, password: string): string {
  const problem = passwordProblem(password);
  if (problem) invalid(field, problem);
  return password;
}

function requireUserId(principal: Principal, action: string): string {
  if (principal.userId === undefined) {
    throw new ServerError(
      Status.FAILED_PRECONDITION,
      `a static admin token is not a user and cannot ${action}; log in as a user`,
    );
  }
  return principal.userId;
}

/** AdminService methods for users, logins and API tokens. */
export function createAccountMethods(options: AccountMethodsOptions): AccountMethods {
  const { db, authenticator, logger } = options;
  /** Compared against when a username does not exist, so such a failure takes as long as any. */
  let decoyHash: Promise<string> | undefined;

  async function grantedGroups(field: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length > MAX_GRANTED_GROUPS) invalid(field, `lists more than ${MAX_GRANTED_GROUPS} groups`);
    const unique = [...new Set(ids.map((id, index) => requireId(`${field}[${index}]`, id)))];
    const existing = await existingGroupIds(db, unique);
    const missing = unique.filter(id => !existing.has(id));
    if (missing.length > 0) {
      throw new ServerError(
        Status.NOT_FOUND,
        `${field}: executor group ${missing.join(', ')} does not exist`,
      );
    }
    return unique;
  }

  async function keepOneAdmin(user: domain.User, change: string): Promise<void> {
    if (user.role === 'ADMIN' && (await countUsers(db, 'ADMIN')) <= 1) {
      throw new ServerError(
        Status.FAILED_PRECONDITION,
        `user "${user.username}" is the last admin user; ${change} would leave none`,
      );
    }
  }

  return {
    async login(request) {
      const username = requirePattern('username', request.username, USERNAME, USERNAME_RULE);
      requireText('password', request.password, { min: 1, max: MAX_PASSWORD_LENGTH });
      const waitMs = options.loginThrottle.retryAfterMs(username);
      if (waitMs > 0) {
        throw new ServerError(
          Status.RESOURCE_EXHAUSTED,
          `too many failed logins for "${username}"; retry in ${Math.ceil(waitMs / 1000)} s`,
        );
      }
      const credentials = await findCredentials(db, { username });
      decoyHash ??= hashPassword(generateToken());
      const accepted = await verifyPassword(request.password, credentials?.passwordHash ?? (await decoyHash));
      if (!credentials || !accepted) {
        options.loginThrottle.recordFailure(username);
        logger.warn({ username }, 'login refused');
        throw new ServerError(Status.UNAUTHENTICATED, 'username or password not accepted');
      }
      options.loginThrottle.recordSuccess(username);
      const token = generateToken('jss_');
      const now = new Date();
      const expiresAt = new Date(now.getTime() + options.sessionTtlMs);
      await deleteExpiredUserTokens(db, now);
      await insertUserToken(db, {
        userId: credentials.user.id,
        kind: 'SESSION',
        name: 'login',
        tokenHash: hashToken(token),
        expiresAt,
      });
      logger.info({ username }, 'user logged in');
      return { token, expiresAt, user: userToProto(credentials.user) };
    },

    async logout(_request, context) {
      const caller = await authenticator.authenticate(context);
      if (caller.tokenId === undefined) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          'a static admin token cannot be revoked by a call; remove it from JOBSTREAM_ADMIN_TOKEN',
        );
      }
      await deleteUserToken(db, caller.tokenId);
      return {};
    },

    async whoAmI(_request, context) {
      const caller = await authenticator.authenticate(context);
      const user = caller.userId === undefined ? undefined : await findUserById(db, caller.userId);
      return { user: user && userToProto(user), role: userRoles.toProto(caller.role) };
    },

    async changePassword(request, context) {
      const caller = await authenticator.authenticate(context);
      const userId = requireUserId(caller, 'change a password');
      requireText('current_password', request.currentPassword, { min: 1, max: MAX_PASSWORD_LENGTH });
      const newPassword = requirePassword('new_password', request.newPassword);
      const waitMs = options.loginThrottle.retryAfterMs(caller.name);
      if (waitMs > 0) {
        throw new ServerError(
          Status.RESOURCE_EXHAUSTED,
          `too many failed password checks for "${caller.name}"; retry in ${Math.ceil(waitMs / 1000)} s`,
        );
      }
      const credentials = await findCredentials(db, { id: userId });
      if (!credentials || !(await verifyPassword(request.currentPassword, credentials.passwordHash))) {
        options.loginThrottle.recordFailure(caller.name);
        denied('current_password: is not the password of the calling user');
      }
      await updateUser(db, userId, { passwordHash: await hashPassword(newPassword) });
      logger.info({ username: caller.name }, 'password changed');
      return {};
    },

    async createUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'create users');
      const username = requirePattern('username', request.username, USERNAME, USERNAME_RULE);
      const password = requirePassword('password', request.password);
      const role = requireEnum('role', userRoles, request.role);
      const groupIds = role === 'ADMIN' ? [] : await grantedGroups('group_ids', request.groupIds);
      const user = await insertUser(db, {
        username,
        passwordHash: await hashPassword(password),
        role,
        groupIds,
      }).catch((error: unknown) => {
        if (isUniqueViolation(error)) {
          throw new ServerError(Status.ALREADY_EXISTS, `username: "${username}" is already taken`);
        }
        throw error;
      });
      logger.info({ by: caller.name, username, role, groupIds }, 'user created');
      return { user: userToProto(user) };
    },

    async updateUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'change users');
      const id = requireId('id', request.id);
      const current = (await findUserById(db, id)) ?? notFoundUser(id);
      const changes: UserChanges = {};
      if (request.role !== 0) changes.role = requireEnum('role', userRoles, request.role);
      if (request.replaceGroupIds) changes.groupIds = await grantedGroups('group_ids', request.groupIds);
      else if (request.groupIds.length > 0) invalid('group_ids', 'is set but replace_group_ids is false');
      if (request.password !== '') {
        changes.passwordHash = await hashPassword(requirePassword('password', request.password));
      }
      if (changes.role !== undefined && changes.role !== 'ADMIN') {
        await keepOneAdmin(current, `making it USER_ROLE_${changes.role}`);
      }
      const user = (await updateUser(db, id, changes)) ?? notFoundUser(id);
      logger.info(
        {
          by: caller.name,
          username: user.username,
          role: user.role,
          groupIds: user.groupIds,
          passwordChanged: changes.passwordHash !== undefined,
        },
        'user changed',
      );
      return { user: userToProto(user) };
    },

    async deleteUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'delete users');
      const id = requireId('id', request.id);
      if (id === caller.userId) {
        throw new ServerError(Status.FAILED_PRECONDITION, 'id: a user cannot delete itself');
      }
      const user = (await findUserById(db, id)) ?? notFoundUser(id);
      await keepOneAdmin(user, 'deleting it');
      if (!(await deleteUser(db, id))) notFoundUser(id);
      logger.info({ by: caller.name, username: user.username }, 'user deleted');
      return {};
    },

    async getUser(request, context) {
      const caller = await authenticator.authenticate(context);
      const id = requireId('id', request.id);
      if (id !== caller.userId) requireAdmin(caller, 'read other users');
      return { user: userToProto((await findUserById(db, id)) ?? notFoundUser(id)) };
    },

    async listUsers(_request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'list users');
      return { users: (await listUsers(db)).map(userToProto) };
    },

    async createApiToken(request, context) {
      const caller = await authenticator.authenticate(context);
      const name = requireText('name', request.name.trim(), { min: 1, max: 128 });
      const requested = optionalId('user_id', request.userId);
      if (requested === undefined && caller.userId === undefined) {
        invalid('user_id', 'is required when calling with a static admin token');
      }
      const userId = requested ?? caller.userId!;
      if (userId !== caller.userId) requireAdmin(caller, 'create tokens for other users');
      const ttlMs = durationToMs(request.ttl);
      if (request.ttl && (ttlMs < 1_000 || ttlMs > MAX_API_TOKEN_TTL_MS)) {
        invalid('ttl', 'must be from 1 second to 10 years');
      }
      const owner = (await findUserById(db, userId)) ?? notFoundUser(userId);
      const token = generateToken('jsa_');
      const described = await insertUserToken(db, {
        userId: owner.id,
        kind: 'API',
        name,
        tokenHash: hashToken(token),
        expiresAt: request.ttl ? new Date(Date.now() + ttlMs) : null,
      });
      logger.info(
        { by: caller.name, username: owner.username, tokenId: described.id, name },
        'API token created',
      );
      return { token, apiToken: apiTokenToProto(described) };
    },

    async listApiTokens(request, context) {
      const caller = await authenticator.authenticate(context);
      const requested = optionalId('user_id', request.userId);
      if (requested === undefined && caller.userId === undefined) {
        invalid('user_id', 'is required when calling with a static admin token');
      }
      const userId = requested ?? caller.userId!;
      if (userId !== caller.userId) requireAdmin(caller, "list other users' tokens");
      return { apiTokens: (await listUserTokens(db, userId, 'API')).map(apiTokenToProto) };
    },

    async revokeApiToken(request, context) {
      const caller = await authenticator.authenticate(context);
      const id = requireId('id', request.id);
      const token = await findUserToken(db, id);
      if (!token || token.kind !== 'API') {
        throw new ServerError(Status.NOT_FOUND, `API token ${id} does not exist`);
      }
      if (token.userId !== caller.userId) requireAdmin(caller, "revoke other users' tokens");
      await deleteUserToken(db, id);
      logger.info({ by: caller.name, tokenId: id }, 'API token revoked');
      return {};
    },
  };
}

function notFoundUser(id: string): never {
  throw new ServerError(Status.NOT_FOUND, `user ${id} does not exist`);
}
