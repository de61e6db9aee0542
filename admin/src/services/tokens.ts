/**
 * How secret tokens are made and how they are stored (hashed). Handed to the services by
 * the composition root, so they share one implementation with the authenticators that
 * check the tokens without depending on where it lives.
 */
export interface Tokens {
  /** A new random token; the prefix says what kind it is ("jss_" session, "jsa_" API). */
  generate(prefix?: string): string;
  /** The form a token is stored and looked up in. */
  hash(token: string): string;
}
