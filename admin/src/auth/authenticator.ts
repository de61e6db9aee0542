import { UnauthenticatedError } from '../domain-errors.js';
import type { Db } from '../db/database.js';
import { findUserByTokenHash } from '../db/users.repository.js';
import type { Principal } from './access.js';
import { AcceptedTokens, hashToken } from './tokens.js';

export interface TokenAuthenticatorOptions {
  db: Db;
  /** Tokens from the admin's configuration; each acts with the admin role. */
  staticTokens: readonly string[];
}

/**
 * Turns a bearer token into the Principal it acts as, or UNAUTHENTICATED. How the token
 * arrives (gRPC metadata) is the transport's business: see grpc/auth.ts.
 */
export class TokenAuthenticator {
  readonly #options: TokenAuthenticatorOptions;
  readonly #staticTokens: AcceptedTokens;

  constructor(options: TokenAuthenticatorOptions) {
    this.#options = options;
    this.#staticTokens = new AcceptedTokens(options.staticTokens);
  }

  async authenticate(token: string): Promise<Principal> {
    if (this.#staticTokens.accepts(token)) {
      return {
        name: 'static admin token',
        userId: undefined,
        tokenId: undefined,
        role: 'ADMIN',
        groupIds: new Set(),
        // The admin's own configuration: it holds every permission.
        canEditScripts: true,
      };
    }
    const found = await findUserByTokenHash(this.#options.db, hashToken(token), new Date());
    if (!found) {
      throw new UnauthenticatedError('token not accepted (unknown, expired or revoked)');
    }
    return {
      name: found.user.username,
      userId: found.user.id,
      tokenId: found.token.id,
      role: found.user.role,
      groupIds: new Set(found.user.groupIds),
      canEditScripts: found.user.canEditScripts,
    };
  }
}
