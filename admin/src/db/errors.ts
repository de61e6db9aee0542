/** PostgreSQL's unique_violation: an insert or update hit a unique index (a name already taken). */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/** Node and PostgreSQL error codes that mean the database cannot be reached right now. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  // admin_shutdown, crash_shutdown, cannot_connect_now (a restart), connection failures.
  '57P01',
  '57P02',
  '57P03',
  '08006',
  '08001',
  '08003',
]);

/**
 * node-postgres reports a connection lost between queries, or a pool that cannot open
 * one in time, with these messages and no code.
 */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'timeout exceeded when trying to connect',
];

/** The database cannot be reached right now (a restart, a cut connection): worth a retry. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
  return (
    code === undefined &&
    typeof message === 'string' &&
    UNAVAILABLE_MESSAGES.some(known => message.startsWith(known))
  );
}
