import { isDatabaseUnavailable } from '../db/errors.js';
import { DomainError, StoreUnavailableError } from '../domain-errors.js';

/**
 * What an error means to a caller, when it means anything: a DomainError as raised, or
 * a database driver's error that the services recognise (only they and db/ know the
 * driver). Undefined for anything else, which is a bug to be logged, not explained.
 */
export function domainErrorOf(error: unknown): DomainError | undefined {
  if (error instanceof DomainError) return error;
  if (isDatabaseUnavailable(error)) {
    return new StoreUnavailableError('the database is unavailable; retry later', { cause: error });
  }
  return undefined;
}
