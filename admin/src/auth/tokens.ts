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

/** Compares against every accepted token in constant time per token. */
export function isAcceptedToken(token: string, accepted: readonly string[]): boolean {
  const presented = Buffer.from(hashToken(token), 'hex');
  let found = false;
  for (const candidate of accepted) {
    if (timingSafeEqual(presented, Buffer.from(hashToken(candidate), 'hex'))) found = true;
  }
  return found;
}
