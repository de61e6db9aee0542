import { isAbortError } from 'abort-controller-x';
import {
  ClientError,
  createChannel,
  createClient,
  Metadata,
  Status,
  type Channel,
  type ChannelCredentials,
  type Client,
} from 'nice-grpc';
import type { Db } from '../db/database.js';
import { listPresence } from '../db/registry.repository.js';
import { listLiveAdmins } from '../db/scheduler.repository.js';
import type { ExecutorPresence } from '../domain.js';
import type { Reply } from '@jobstream/proto/executor';
import { AdminPeerServiceDefinition } from '@jobstream/proto/peer';
import {
  ExecutorRequestError,
  type ExecutorLookup,
  type ExecutorRequestFailure,
  type ExecutorTarget,
} from '../dispatch/executor-port.js';
import { askToProto, replyToAnswer } from '../wire/executor-messages.js';
import { answerGraceMs, type RequestBody } from './executor-session.js';
import type { SessionRegistry } from './session-registry.js';

/**
 * An executor the admin can send requests to, whichever admin holds its stream: the
 * dispatcher asks it in domain terms (ExecutorTarget), the operator API and peer
 * forwarding send protocol requests as they are.
 */
export interface ExecutorHandle extends ExecutorTarget {
  /** Resolves with the executor's Reply; rejects with ExecutorRequestError. */
  request(body: RequestBody, deadlineMs: number): Promise<Reply>;
}

export interface ExecutorDirectoryOptions {
  db: Db;
  sessions: SessionRegistry;
  adminInstanceId: string;
  /** The bearer token peers accept (the cluster shares its admin token). */
  peerToken: string;
  /** How peers are called: TLS when the cluster serves TLS. Default: plaintext. */
  peerCredentials?: ChannelCredentials;
  /** How stale the view of other admins' executors may be. */
  cacheTtlMs?: number;
}

/**
 * The cluster-wide view of executors. Streams held by this admin are used directly;
 * executors connected to another admin are reached through that admin's
 * AdminPeerService (its address comes from the admin_instance table). The view of
 * other admins' executors is read from the shared registry and cached briefly, so a
 * burst of fires costs one query per cache period, not one per fire.
 */
export class ExecutorDirectory implements ExecutorLookup {
  readonly #options: ExecutorDirectoryOptions;
  readonly #peers = new Map<
    string,
    { address: string; channel: Channel; client: Client<typeof AdminPeerServiceDefinition> }
  >();
  #cache: { at: number; presence: ExecutorPresence[]; admins: Map<string, string> } | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: ExecutorDirectoryOptions) {
    this.#options = options;
  }

  /** The group's executors, local and remote, in a stable order (by instance name). */
  async candidates(appName: string): Promise<ExecutorHandle[]> {
    const local = this.#options.sessions.list(appName);
    const remote = await this.#remote(appName);
    const localNames = new Set(local.map(session => session.instanceName));
    const handles: ExecutorHandle[] = [
      ...local,
      ...remote.filter(handle => !localNames.has(handle.instanceName)),
    ];
    return handles.sort((a, b) =>
      a.instanceName < b.instanceName ? -1 : a.instanceName > b.instanceName ? 1 : 0,
    );
  }

  /** One executor by name, wherever its stream is; undefined when it is not connected. */
  async find(appName: string, instanceName: string): Promise<ExecutorHandle | undefined> {
    const local = this.#options.sessions.get(appName, instanceName);
    if (local && !local.isClosed) return local;
    // A kill or log read must not miss an executor that connected a moment ago.
    this.#cache = undefined;
    return (await this.#remote(appName)).find(handle => handle.instanceName === instanceName);
  }

  close(): void {
    for (const peer of this.#peers.values()) peer.channel.close();
    this.#peers.clear();
  }

  async #remote(appName: string): Promise<ExecutorHandle[]> {
    const ttl = this.#options.cacheTtlMs ?? 250;
    if (!this.#cache || Date.now() - this.#cache.at > ttl) {
      this.#refreshing ??= this.#refresh().finally(() => {
        this.#refreshing = undefined;
      });
      await this.#refreshing;
    }
    const cache = this.#cache!;
    return cache.presence
      .filter(row => row.appName === appName && row.adminInstanceId !== this.#options.adminInstanceId)
      .flatMap(row => {
        const address = cache.admins.get(row.adminInstanceId);
        return address === undefined ? [] : [this.#remoteHandle(row, address)];
      });
  }

  async #refresh(): Promise<void> {
    const [presence, admins] = await Promise.all([
      listPresence(this.#options.db, undefined, new Date()),
      listLiveAdmins(this.#options.db),
    ]);
    this.#cache = {
      at: Date.now(),
      presence,
      admins: new Map(admins.map(admin => [admin.id, admin.grpcAddress])),
    };
  }

  #remoteHandle(row: ExecutorPresence, address: string): ExecutorHandle {
    const peer = this.#peer(row.adminInstanceId, address);
    const token = this.#options.peerToken;
    return {
      appName: row.appName,
      instanceName: row.instanceName,
      sessionId: row.sessionId,
      process: `${row.hostname}/${row.pid}`,
      async ask(ask, deadlineMs) {
        return replyToAnswer(await this.request(askToProto(ask), deadlineMs));
      },
      async request(body, deadlineMs) {
        const { $case, value } = body;
        // Longer than the peer may take (a wait to send, then the executor's deadline and
        // grace), so the peer's own verdict wins unless the peer is stalled or overloaded.
        const peerTimeoutMs = 2 * deadlineMs + answerGraceMs(deadlineMs) + 500;
        const timeout = AbortSignal.timeout(peerTimeoutMs);
        try {
          const response = await peer.client.forwardExecutorRequest(
            {
              appName: row.appName,
              instanceName: row.instanceName,
              sessionId: row.sessionId,
              deadlineMs,
              body: { $case, value: { ...value, requestId: '0' } },
            },
            {
              metadata: Metadata({ authorization: `Bearer ${token}` }),
              signal: timeout,
            },
          );
          if (!response.reply)
            throw new ExecutorRequestError('no-answer', `admin ${row.adminInstanceId} sent no reply`);
          return response.reply;
        } catch (error) {
          // The call aborts with the timeout's reason, a DOMException named TimeoutError, not
          // an AbortError: the peer may have sent the request, so it is in doubt.
          if (timeout.aborted || isAbortError(error)) {
            throw new ExecutorRequestError(
              'no-answer',
              `admin ${row.adminInstanceId} did not say within ${peerTimeoutMs} ms whether executor ${row.instanceName} answered`,
              { streamMayBeOpen: true },
            );
          }
          if (error instanceof ClientError) {
            const kind = failureOfPeerStatus(error.code);
            throw new ExecutorRequestError(
              kind,
              kind === 'no-answer'
                ? `executor ${row.instanceName} did not answer within ${deadlineMs} ms (via admin ${row.adminInstanceId})`
                : `executor ${row.instanceName} not reachable via admin ${row.adminInstanceId}: ${error.details}`,
              // Only the peer's DEADLINE_EXCEEDED and ABORTED say it ended the stream.
              { streamMayBeOpen: error.code !== Status.DEADLINE_EXCEEDED && error.code !== Status.ABORTED },
            );
          }
          throw error;
        }
      },
    };
  }

  #peer(adminInstanceId: string, address: string) {
    const existing = this.#peers.get(adminInstanceId);
    if (existing?.address === address) return existing;
    existing?.channel.close();
    const channel = createChannel(address, this.#options.peerCredentials);
    const peer = { address, channel, client: createClient(AdminPeerServiceDefinition, channel) };
    this.#peers.set(adminInstanceId, peer);
    return peer;
  }
}

/**
 * What a peer's status says about a forwarded request. Only the peer's own word that it
 * did not send (NOT_FOUND, RESOURCE_EXHAUSTED) rules out the executor having it: a peer
 * that died or was cut off mid-call may have sent it.
 */
function failureOfPeerStatus(code: Status): ExecutorRequestFailure {
  if (code === Status.NOT_FOUND) return 'not-connected';
  if (code === Status.RESOURCE_EXHAUSTED) return 'not-sent';
  if (code === Status.DEADLINE_EXCEEDED) return 'no-answer';
  return 'session-closed';
}
