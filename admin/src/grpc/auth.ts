import { ServerError, Status, type CallContext } from 'nice-grpc';
import type { Principal } from '../auth/access.js';
import type { TokenAuthenticator } from '../auth/authenticator.js';

/** The bearer token of a call, or UNAUTHENTICATED. */
export function bearerToken(context: CallContext): string {
  const header = context.metadata.get('authorization');
  if (typeof header !== 'string' || header === '') {
    throw new ServerError(
      Status.UNAUTHENTICATED,
      'missing authorization metadata (expected "Bearer <token>")',
    );
  }
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match?.[1])
    throw new ServerError(Status.UNAUTHENTICATED, 'authorization metadata must be "Bearer <token>"');
  return match[1];
}

/** Authenticates operator calls: reads the call's bearer token and hands it to auth/. */
export class Authenticator {
  readonly #tokens: TokenAuthenticator;

  constructor(tokens: TokenAuthenticator) {
    this.#tokens = tokens;
  }

  authenticate(context: CallContext): Promise<Principal> {
    return this.#tokens.authenticate(bearerToken(context));
  }
}
