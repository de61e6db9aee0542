import { ServerError, Status, type CallContext } from 'nice-grpc';
import { ExecutorRequestError, type ExecutorRequestFailure } from '../dispatch/executor-port.js';
import type { SessionRegistry } from '../executors/session-registry.js';
import type { AdminPeerServiceImplementation } from '@jobstream/proto/peer';
import { isAcceptedToken } from '../auth/tokens.js';
import { bearerToken } from './auth.js';
import { invalid } from './validation.js';

/**
 * How a forwarded request's failure travels back, keeping what the caller may conclude
 * (see ExecutorRequestFailure): NOT_FOUND and RESOURCE_EXHAUSTED mean it was not sent.
 */
export const PEER_STATUS_BY_FAILURE: Record<ExecutorRequestFailure, Status> = {
  'not-sent': Status.RESOURCE_EXHAUSTED,
  'not-connected': Status.NOT_FOUND,
  'no-answer': Status.DEADLINE_EXCEEDED,
  'session-closed': Status.ABORTED,
};

export interface PeerServiceOptions {
  sessions: SessionRegistry;
  /** The cluster's shared secret (cluster_secret table): only peer admins know it. */
  peerSecret: string;
}

const MAX_FORWARD_DEADLINE_MS = 60_000;

/** AdminPeerService: other admins of the cluster reach the executors whose streams this admin holds. */
export function createPeerService(options: PeerServiceOptions): AdminPeerServiceImplementation {
  function authorize(context: CallContext): void {
    if (!isAcceptedToken(bearerToken(context), [options.peerSecret])) {
      throw new ServerError(Status.UNAUTHENTICATED, 'peer token not accepted');
    }
  }

  return {
    async forwardExecutorRequest(request, context) {
      authorize(context);
      if (!request.body) invalid('body', 'is required');
      if (request.deadlineMs < 1 || request.deadlineMs > MAX_FORWARD_DEADLINE_MS) {
        invalid('deadline_ms', `must be from 1 to ${MAX_FORWARD_DEADLINE_MS}`);
      }
      // The executor may have reconnected (new session) to this same admin: use its current stream.
      const session = options.sessions.get(request.appName, request.instanceName);
      if (!session || session.isClosed) {
        throw new ServerError(
          Status.NOT_FOUND,
          `executor ${request.instanceName} of ${request.appName} is not connected to this admin`,
        );
      }
      try {
        const reply = await session.request(request.body, request.deadlineMs);
        return { reply };
      } catch (error) {
        if (error instanceof ExecutorRequestError) {
          throw new ServerError(PEER_STATUS_BY_FAILURE[error.kind], error.message);
        }
        throw error;
      }
    },
  };
}
