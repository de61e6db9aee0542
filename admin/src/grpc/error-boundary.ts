import { randomUUID } from 'node:crypto';
import { isAbortError } from 'abort-controller-x';
import { ServerError, Status, type ServerMiddleware } from 'nice-grpc';
import type { Logger } from '../logger.js';

/** Node and PostgreSQL error codes that mean the database cannot be reached right now. */
const DATABASE_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03',
  '08006',
  '08001',
]);

/**
 * The one error boundary of the gRPC server: expected outcomes are thrown as
 * ServerError and pass through; anything else is logged with its stack and an error
 * id, and the client gets that id without internal details.
 */
export function errorBoundary(logger: Logger): ServerMiddleware {
  return async function* boundary(call, context) {
    try {
      return yield* call.next(call.request, context);
    } catch (error) {
      if (error instanceof ServerError || isAbortError(error)) throw error;
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && DATABASE_UNAVAILABLE.has(code)) {
        logger.warn({ err: error, method: call.method.path }, 'database unavailable');
        throw new ServerError(Status.UNAVAILABLE, 'the database is unavailable; retry later');
      }
      const errorId = randomUUID();
      logger.error({ err: error, method: call.method.path, errorId }, 'unexpected error in a gRPC method');
      throw new ServerError(Status.INTERNAL, `internal error ${errorId} (details in the admin log)`);
    }
  };
}
