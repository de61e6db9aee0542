import { randomUUID } from 'node:crypto';
import { isAbortError } from 'abort-controller-x';
import { ServerError, Status, type ServerMiddleware } from 'nice-grpc';
import { StoreUnavailableError } from '../domain-errors.js';
import type { Logger } from '../logger.js';
import { domainErrorOf } from '../services/failures.js';
import { serverErrorOf } from './domain-status.js';

/**
 * The longest status message sent, percent-encoded as grpc-js sends it. It travels in an
 * HTTP/2 trailer, and Node does not send a header block over 64 KiB at all: the call would
 * never end. Messages may quote what a client sent, so their size is the client's choice.
 */
const MAX_ENCODED_DETAILS = 4_096;

/**
 * The one error boundary of the gRPC server: expected outcomes are thrown as ServerError
 * (by the transport) or as domain errors (by the services and below, mapped to their
 * status here) and pass through; anything else is logged with its stack and an error id,
 * and the client gets that id without internal details.
 */
export function errorBoundary(logger: Logger): ServerMiddleware {
  return async function* boundary(call, context) {
    try {
      return yield* call.next(call.request, context);
    } catch (error) {
      if (error instanceof ServerError) throw boundedError(error);
      if (isAbortError(error)) throw error;
      const failure = domainErrorOf(error);
      if (failure instanceof StoreUnavailableError) {
        logger.warn({ err: error, method: call.method.path }, 'database unavailable');
      }
      if (failure !== undefined) throw boundedError(serverErrorOf(failure));
      const errorId = randomUUID();
      logger.error({ err: error, method: call.method.path, errorId }, 'unexpected error in a gRPC method');
      throw new ServerError(Status.INTERNAL, `internal error ${errorId} (details in the admin log)`);
    }
  };
}

/** The error with a message that grpc-js can encode (well-formed UTF-16) and send (bounded). */
function boundedError(error: ServerError): ServerError {
  // grpc-js sends encodeURI(details), which throws on a lone surrogate.
  const details = error.details.replace(
    /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    '\uFFFD',
  );
  if (details === error.details && error.details.length <= MAX_ENCODED_DETAILS / 9) return error;
  let end = details.length;
  while (encodeURI(details.slice(0, end)).length > MAX_ENCODED_DETAILS) {
    end = Math.floor(end * 0.75);
    // Never between the two halves of a surrogate pair.
    if (/[\uD800-\uDBFF]/.test(details.charAt(end - 1))) end -= 1;
  }
  return new ServerError(error.code, end < details.length ? `${details.slice(0, end)}…` : details);
}
