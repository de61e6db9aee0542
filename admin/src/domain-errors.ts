/**
 * Outcomes a caller must be told about, as the services and the domain raise them. They
 * say what went wrong in the admin's own terms; the transport decides how a client sees
 * each kind (grpc/domain-status.ts), so nothing below the transport knows about gRPC.
 */

export type DomainErrorKind =
  | 'invalid-input'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'permission-denied'
  | 'unauthenticated'
  | 'too-many-attempts'
  | 'unavailable';

export interface DomainErrorOptions {
  /**
   * The input the error is about, as the service named it (`childJobIds`, `groupIds`):
   * the transport prefixes it to the message in its own field naming.
   */
  field?: string;
  cause?: unknown;
}

export abstract class DomainError extends Error {
  abstract readonly kind: DomainErrorKind;
  readonly field: string | undefined;

  constructor(message: string, options: DomainErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.field = options.field;
  }
}

/** The input breaks a rule only a service can check (a cycle of child jobs, a schedule that does not parse). */
export class InvalidInputError extends DomainError {
  readonly kind = 'invalid-input';
}

export class NotFoundError extends DomainError {
  readonly kind = 'not-found';
}

/** A name that must be unique is taken. */
export class AlreadyExistsError extends DomainError {
  readonly kind = 'already-exists';
}

/** The request is valid but the state it meets does not allow it (a group that still has jobs). */
export class FailedPreconditionError extends DomainError {
  readonly kind = 'failed-precondition';
}

export class PermissionDeniedError extends DomainError {
  readonly kind = 'permission-denied';
}

/** Credentials were presented and not accepted. */
export class UnauthenticatedError extends DomainError {
  readonly kind = 'unauthenticated';
}

/** Refused until a throttle lets the caller try again (failed logins). */
export class TooManyAttemptsError extends DomainError {
  readonly kind = 'too-many-attempts';
}

/** Something the request needs cannot be reached right now; a retry may succeed. */
export class UnavailableError extends DomainError {
  readonly kind = 'unavailable';
}

/**
 * The database cannot be reached (a restart, a cut connection). Its own class because the
 * transport logs it, unlike other refusals: it is the admin's trouble, not the caller's.
 */
export class StoreUnavailableError extends UnavailableError {}
