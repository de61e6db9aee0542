import { ServerError, Status } from 'nice-grpc';
import { DomainError, type DomainErrorKind } from '../domain-errors.js';

/** How each kind of domain error reaches a gRPC client. */
const STATUS_BY_KIND: Record<DomainErrorKind, Status> = {
  'invalid-input': Status.INVALID_ARGUMENT,
  'not-found': Status.NOT_FOUND,
  'already-exists': Status.ALREADY_EXISTS,
  'failed-precondition': Status.FAILED_PRECONDITION,
  'permission-denied': Status.PERMISSION_DENIED,
  unauthenticated: Status.UNAUTHENTICATED,
  'too-many-attempts': Status.RESOURCE_EXHAUSTED,
  unavailable: Status.UNAVAILABLE,
};

/**
 * The status for a domain error. An error about a field starts with the field's path, as
 * every refusal of a request field does (see validation.ts); `parent` is the message the
 * service's input came in, e.g. "spec".
 */
export function serverErrorOf(error: DomainError, parent?: string): ServerError {
  if (error.field === undefined) return new ServerError(STATUS_BY_KIND[error.kind], error.message);
  const path = [parent, protoFieldName(error.field)].filter(part => part !== undefined).join('.');
  return new ServerError(STATUS_BY_KIND[error.kind], `${path}: ${error.message}`);
}

/**
 * For `.catch()` on a service call whose input came in a nested message: errors about its
 * fields then name them under `parent` ("spec.child_job_ids", not "child_job_ids").
 */
export function inField(parent: string): (error: unknown) => never {
  return error => {
    if (error instanceof DomainError && error.field !== undefined) throw serverErrorOf(error, parent);
    throw error;
  };
}

/** Proto field names are the domain's property names in snake case ("childJobIds": "child_job_ids"). */
function protoFieldName(field: string): string {
  return field.replace(/[A-Z]/g, letter => `_${letter.toLowerCase()}`);
}
