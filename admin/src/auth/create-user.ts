import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import { existingGroupIds } from '../db/groups.repository.js';
import { insertUser } from '../db/users.repository.js';
import type { User, UserRole } from '../domain.js';
import { hashPassword, passwordProblem } from './passwords.js';

export const USERNAME_PATTERN = /^[a-z0-9._@-]{1,64}$/;
export const USERNAME_RULE = "1 to 64 lowercase letters, digits, '.', '_', '@' or '-'";

export class CreateUserError extends Error {
  override readonly name = 'CreateUserError';
}

/**
 * Creates a user outside the API (the `create-user` command, the demo): the same
 * rules as CreateUser, reported as CreateUserError with a message naming the problem.
 */
export async function createUserAccount(
  db: Db,
  account: { username: string; password: string; role: UserRole; groupIds: readonly string[] },
): Promise<User> {
  if (!USERNAME_PATTERN.test(account.username)) {
    throw new CreateUserError(`username must be ${USERNAME_RULE}, got "${account.username}"`);
  }
  const problem = passwordProblem(account.password);
  if (problem) throw new CreateUserError(`the password ${problem}`);
  const groupIds = account.role === 'ADMIN' ? [] : [...new Set(account.groupIds)];
  const existing = await existingGroupIds(db, groupIds);
  const missing = groupIds.filter(id => !existing.has(id));
  if (missing.length > 0) throw new CreateUserError(`executor group ${missing.join(', ')} does not exist`);
  try {
    return await insertUser(db, {
      username: account.username,
      passwordHash: await hashPassword(account.password),
      role: account.role,
      groupIds,
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new CreateUserError(`username "${account.username}" is already taken`);
    }
    throw error;
  }
}
