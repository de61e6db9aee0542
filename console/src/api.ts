import {
  ClientError,
  createChannel,
  createClientFactory,
  FetchTransport,
  Metadata,
  Status,
  type ClientMiddleware,
} from 'nice-grpc-web';
import { AdminServiceDefinition } from '@jobstream/proto/admin';

/** The header the admin requires on every call the console's cookie authenticates (its CSRF check). */
const CONSOLE_HEADER = 'x-jobstream-console';

type SessionListener = () => void;
const expiredListeners = new Set<SessionListener>();

/** Called when a call finds the session gone (expired, revoked, logged out elsewhere). */
export function onSessionExpired(listener: SessionListener): () => void {
  expiredListeners.add(listener);
  return () => expiredListeners.delete(listener);
}

const sessionWatch: ClientMiddleware = async function* watch(call, options) {
  try {
    return yield* call.next(call.request, options);
  } catch (error) {
    if (
      error instanceof ClientError &&
      error.code === Status.UNAUTHENTICATED &&
      !call.method.path.endsWith('/Login')
    ) {
      for (const listener of expiredListeners) listener();
    }
    throw error;
  }
};

/**
 * AdminService over gRPC-Web, served by the admin on the page's own origin. The session
 * is an HttpOnly cookie the admin sets at login: page scripts never see the token.
 */
export const api = createClientFactory()
  .use(sessionWatch)
  .create(
    AdminServiceDefinition,
    createChannel(window.location.origin, FetchTransport({ credentials: 'same-origin' })),
    { '*': { metadata: Metadata({ [CONSOLE_HEADER]: '1' }) } },
  );

const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status)
    .filter(([, value]) => typeof value === 'number')
    .map(([name, value]) => [value as number, name]),
);

/** An error as the operator reads it: the API's status and message. */
export function describeError(error: unknown): string {
  if (error instanceof ClientError) {
    const status = STATUS_NAMES[error.code] ?? `status ${error.code}`;
    if (error.code === Status.UNAVAILABLE && error.details.startsWith('Received HTTP')) {
      return `The admin cannot be reached (${error.details}).`;
    }
    return `${status}: ${error.details}`;
  }
  if (error instanceof TypeError) return `The admin cannot be reached (${error.message}).`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * The field an INVALID_ARGUMENT is about: the API starts such messages with the field's
 * path ("spec.timeout_seconds: must be from 0 to 604800, got -1").
 */
export function fieldErrorOf(error: unknown): { field: string; message: string } | undefined {
  if (!(error instanceof ClientError) || error.code !== Status.INVALID_ARGUMENT) return undefined;
  const match = /^([a-z0-9_.[\]]+): (.*)$/s.exec(error.details);
  if (match === null) return undefined;
  return { field: match[1]!, message: match[2]! };
}

export function isStatus(error: unknown, code: Status): boolean {
  return error instanceof ClientError && error.code === code;
}

export { Status };
