import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A new token: 256 random bits, URL-safe. The prefix says what kind of token it is
 * ("jss_" session, "jsa_" API), so a leaked one is recognisable, e.g. by secret scanners.
 */
export function generateToken(prefix = ''): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Tokens are stored as SHA-256: they carry 256 bits of entropy, so no slow hash is needed. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Tokens from configuration, checked on every call: their digests are made once, and a
 * presented token is compared against every one in constant time per token.
 */
export class AcceptedTokens {
  readonly #digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.#digests = tokens.map(digestOf);
  }

  accepts(token: string): boolean {
    const presented = digestOf(token);
    let found = false;
    for (const digest of this.#digests) {
      if (timingSafeEqual(presented, digest)) found = true;
    }
    return found;
  }
}

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
