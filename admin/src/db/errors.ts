/** PostgreSQL's unique_violation: an insert or update hit a unique index (a name already taken). */
export function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}
