import { ServerError, Status, type CallContext } from 'nice-grpc';
import type { Db } from '../db/database.js';
import { findUserByTokenHash } from '../db/users.repository.js';
import { bearerToken, hashToken, isAcceptedToken } from '../grpc/auth.js';
import type { Principal } from './access.js';

export interface AuthenticatorOptions {
  db: Db;
  /** Tokens from the admin's configuration; each acts with the admin role. */
  staticTokens: readonly string[];
}

/** Turns a call's bearer token into the Principal it acts as, or UNAUTHENTICATED. */
export class Authenticator {
  readonly #options: AuthenticatorOptions;

  constructor(options: AuthenticatorOptions) {
    this.#options = options;
  }

  async authenticate(context: CallContext): Promise<Principal> {
    const token = bearerToken(context);
    if (this.#options.staticTokens.length > 0 && isAcceptedToken(token, this.#options.staticTokens)) {
      return {
        name: 'static admin token',
        userId: undefined,
        tokenId: undefined,
        role: 'ADMIN',
        groupIds: new Set(),
      };
    }
    const found = await findUserByTokenHash(this.#options.db, hashToken(token), new Date());
    if (!found) {
      throw new ServerError(Status.UNAUTHENTICATED, 'token not accepted (unknown, expired or revoked)');
    }
    return {
      name: found.user.username,
      userId: found.user.id,
      tokenId: found.token.id,
      role: found.user.role,
      groupIds: new Set(found.user.groupIds),
    };
  }
}
