import { ServerError, Status } from 'nice-grpc';
import { durationToMs } from '@jobstream/proto';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { type Principal, requireAdmin } from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import { USERNAME_PATTERN as USERNAME, USERNAME_RULE } from '../../auth/create-user.js';
import { MAX_PASSWORD_LENGTH, passwordProblem } from '../../auth/passwords.js';
import type { AccountChanges, AccountsService } from '../../services/accounts.js';
import { userRoles } from '../../wire/enums.js';
import { apiTokenToProto, userToProto } from '../mappers.js';
import { invalid, optionalId, requireEnum, requireId, requirePattern, requireText } from '../validation.js';

const MAX_API_TOKEN_TTL_MS = 10 * 366 * 24 * 3_600_000;
const MAX_GRANTED_GROUPS = 10_000;

export interface AccountMethodsOptions {
  authenticator: Authenticator;
  accounts: AccountsService;
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

/** The user a token call is about: `user_id`, or the caller's own when unset. */
function tokenOwnerId(caller: Principal, requestedUserId: string): string {
  const requested = optionalId('user_id', requestedUserId);
  if (requested !== undefined) return requested;
  if (caller.userId === undefined) invalid('user_id', 'is required when calling with a static admin token');
  return caller.userId;
}

/** AdminService methods for users, logins and API tokens. */
export function createAccountMethods(options: AccountMethodsOptions): AccountMethods {
  const { authenticator, accounts } = options;

  async function grantedGroups(field: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length > MAX_GRANTED_GROUPS) invalid(field, `lists more than ${MAX_GRANTED_GROUPS} groups`);
    const unique = [...new Set(ids.map((id, index) => requireId(`${field}[${index}]`, id)))];
    await accounts.requireGroups(unique);
    return unique;
  }

  return {
    async login(request) {
      const username = requirePattern('username', request.username, USERNAME, USERNAME_RULE);
      requireText('password', request.password, { min: 1, max: MAX_PASSWORD_LENGTH });
      const { token, expiresAt, user } = await accounts.login(username, request.password);
      return { token, expiresAt, user: userToProto(user) };
    },

    async logout(_request, context) {
      const caller = await authenticator.authenticate(context);
      if (caller.tokenId === undefined) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          'a static admin token cannot be revoked by a call; remove it from JOBSTREAM_ADMIN_TOKEN',
        );
      }
      await accounts.logout(caller.tokenId);
      return {};
    },

    async whoAmI(_request, context) {
      const caller = await authenticator.authenticate(context);
      const user = caller.userId === undefined ? undefined : await accounts.findUser(caller.userId);
      return { user: user && userToProto(user), role: userRoles.toProto(caller.role) };
    },

    async changePassword(request, context) {
      const caller = await authenticator.authenticate(context);
      const userId = requireUserId(caller, 'change a password');
      requireText('current_password', request.currentPassword, { min: 1, max: MAX_PASSWORD_LENGTH });
      const newPassword = requirePassword('new_password', request.newPassword);
      await accounts.changePassword({ id: userId, name: caller.name }, request.currentPassword, newPassword);
      return {};
    },

    async createUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'create users');
      const username = requirePattern('username', request.username, USERNAME, USERNAME_RULE);
      const password = requirePassword('password', request.password);
      const role = requireEnum('role', userRoles, request.role);
      const groupIds = role === 'ADMIN' ? [] : await grantedGroups('group_ids', request.groupIds);
      const user = await accounts.createUser(
        { username, password, role, groupIds, canEditScripts: request.canEditScripts },
        caller.name,
      );
      return { user: userToProto(user) };
    },

    async updateUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'change users');
      const current = await accounts.getUser(requireId('id', request.id));
      const changes: AccountChanges = {};
      if (request.role !== 0) changes.role = requireEnum('role', userRoles, request.role);
      if (request.replaceGroupIds) changes.groupIds = await grantedGroups('group_ids', request.groupIds);
      else if (request.groupIds.length > 0) invalid('group_ids', 'is set but replace_group_ids is false');
      if (request.canEditScripts !== undefined) changes.canEditScripts = request.canEditScripts;
      if (request.password !== '') changes.password = requirePassword('password', request.password);
      return { user: userToProto(await accounts.updateUser(current, changes, caller.name)) };
    },

    async deleteUser(request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'delete users');
      const id = requireId('id', request.id);
      if (id === caller.userId) {
        throw new ServerError(Status.FAILED_PRECONDITION, 'id: a user cannot delete itself');
      }
      await accounts.deleteUser(id, caller.name);
      return {};
    },

    async getUser(request, context) {
      const caller = await authenticator.authenticate(context);
      const id = requireId('id', request.id);
      if (id !== caller.userId) requireAdmin(caller, 'read other users');
      return { user: userToProto(await accounts.getUser(id)) };
    },

    async listUsers(_request, context) {
      const caller = await authenticator.authenticate(context);
      requireAdmin(caller, 'list users');
      return { users: (await accounts.listUsers()).map(userToProto) };
    },

    async createApiToken(request, context) {
      const caller = await authenticator.authenticate(context);
      const name = requireText('name', request.name.trim(), { min: 1, max: 128 });
      const userId = tokenOwnerId(caller, request.userId);
      if (userId !== caller.userId) requireAdmin(caller, 'create tokens for other users');
      const ttlMs = durationToMs(request.ttl);
      if (request.ttl && (ttlMs < 1_000 || ttlMs > MAX_API_TOKEN_TTL_MS)) {
        invalid('ttl', 'must be from 1 second to 10 years');
      }
      const { token, apiToken } = await accounts.createApiToken(
        userId,
        name,
        request.ttl ? ttlMs : null,
        caller.name,
      );
      return { token, apiToken: apiTokenToProto(apiToken) };
    },

    async listApiTokens(request, context) {
      const caller = await authenticator.authenticate(context);
      const userId = tokenOwnerId(caller, request.userId);
      if (userId !== caller.userId) requireAdmin(caller, "list other users' tokens");
      return { apiTokens: (await accounts.listApiTokens(userId)).map(apiTokenToProto) };
    },

    async revokeApiToken(request, context) {
      const caller = await authenticator.authenticate(context);
      const token = await accounts.getApiToken(requireId('id', request.id));
      if (token.userId !== caller.userId) requireAdmin(caller, "revoke other users' tokens");
      await accounts.revokeApiToken(token, caller.name);
      return {};
    },
  };
}
