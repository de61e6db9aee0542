import { ServerError, Status, type CallContext } from 'nice-grpc';
import { ExecutorRequestError, type ExecutorRequestFailure } from '../dispatch/executor-port.js';
import type { SessionRegistry } from '../executors/session-registry.js';
import type { HeldAcceptances } from '../dispatch/held-acceptances.js';
import { ForwardFailure, type AdminPeerServiceImplementation } from '@jobstream/proto/peer';
import { MAX_BATCH_ITEMS } from '@jobstream/proto';
import { AcceptedTokens } from '../auth/tokens.js';
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

/** The same verdicts, per run request of a ForwardRunRequests call. */
export const FORWARD_FAILURE_BY_FAILURE: Record<ExecutorRequestFailure, ForwardFailure> = {
  'not-sent': ForwardFailure.FORWARD_FAILURE_NOT_SENT,
  'not-connected': ForwardFailure.FORWARD_FAILURE_NOT_CONNECTED,
  'no-answer': ForwardFailure.FORWARD_FAILURE_NO_ANSWER,
  'session-closed': ForwardFailure.FORWARD_FAILURE_SESSION_CLOSED,
};

export interface PeerServiceOptions {
  sessions: SessionRegistry;
  /** Where acceptances of forwarded runs wait for their results (see acceptance_messages). */
  acceptances?: HeldAcceptances;
  /** The cluster's shared secret (cluster_secret table): only peer admins know it. */
  peerSecret: string;
}

const MAX_FORWARD_DEADLINE_MS = 60_000;

/** AdminPeerService: other admins of the cluster reach the executors whose streams this admin holds. */
export function createPeerService(options: PeerServiceOptions): AdminPeerServiceImplementation {
  const peerTokens = new AcceptedTokens([options.peerSecret]);
  function authorize(context: CallContext): void {
    if (!peerTokens.accepts(bearerToken(context))) {
      throw new ServerError(Status.UNAUTHENTICATED, 'peer token not accepted');
    }
  }

  function connectedSession(appName: string, instanceName: string) {
    // The executor may have reconnected (new session) to this same admin: use its current stream.
    const session = options.sessions.get(appName, instanceName);
    if (!session || session.isClosed) {
      throw new ServerError(
        Status.NOT_FOUND,
        `executor ${instanceName} of ${appName} is not connected to this admin`,
      );
    }
    return session;
  }

  return {
    async forwardRunRequests(request, context) {
      authorize(context);
      if (request.runRequests.length < 1 || request.runRequests.length > MAX_BATCH_ITEMS) {
        invalid('run_requests', `must hold 1 to ${MAX_BATCH_ITEMS} requests`);
      }
      if (request.deadlineMs < 1 || request.deadlineMs > MAX_FORWARD_DEADLINE_MS) {
        invalid('deadline_ms', `must be from 1 to ${MAX_FORWARD_DEADLINE_MS}`);
      }
      const session = connectedSession(request.appName, request.instanceName);
      // Begun in order, so they take the executor's run slots and go out in that order.
      const replies = await Promise.all(
        request.runRequests.map(async (run, index) => {
          try {
            const reply = await session.request({ $case: 'runRequest', value: run }, request.deadlineMs);
            // The run's result arrives on the stream this admin holds: the acceptance waits
            // here for it, to be stored in the same row update.
            const message = request.acceptanceMessages[index] ?? '';
            const { acceptances } = options;
            if (reply.accepted && message !== '' && acceptances) {
              acceptances.hold({
                logId: run.logId,
                attempt: run.attempt,
                triggeredAt: new Date(),
                executorInstance: session.instanceName,
                executorSessionId: session.sessionId,
                message,
              });
              return { reply, acceptanceHeld: true };
            }
            return { reply };
          } catch (error) {
            if (!(error instanceof ExecutorRequestError)) throw error;
            return {
              reply: undefined,
              failure: FORWARD_FAILURE_BY_FAILURE[error.kind],
              failureMessage: error.message,
            };
          }
        }),
      );
      return {
        replies: replies.map(reply => ({
          reply: reply.reply,
          failure: 'failure' in reply ? reply.failure : ForwardFailure.FORWARD_FAILURE_UNSPECIFIED,
          failureMessage: 'failureMessage' in reply ? reply.failureMessage : '',
          acceptanceHeld: 'acceptanceHeld' in reply ? reply.acceptanceHeld : false,
        })),
      };
    },

    async forwardExecutorRequest(request, context) {
      authorize(context);
      if (!request.body) invalid('body', 'is required');
      if (request.deadlineMs < 1 || request.deadlineMs > MAX_FORWARD_DEADLINE_MS) {
        invalid('deadline_ms', `must be from 1 to ${MAX_FORWARD_DEADLINE_MS}`);
      }
      const session = connectedSession(request.appName, request.instanceName);
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
