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
import type { Reply, RunRequest } from '@jobstream/proto/executor';
import { AdminPeerServiceDefinition, ForwardFailure } from '@jobstream/proto/peer';
import { MAX_BATCH_ITEMS } from '@jobstream/proto';
import {
  ExecutorRequestError,
  type ExecutorLookup,
  type ExecutorRequestFailure,
  type ExecutorTarget,
} from '../dispatch/executor-port.js';
import { askToProto, replyToAnswer } from '../wire/executor-messages.js';
import { answerGraceMs, type ExecutorSession, type RequestBody } from './executor-session.js';
import type { SessionRegistry } from './session-registry.js';

/**
 * How much older than its TTL the view of other admins' executors may be while it is read
 * again: routing goes on over it meanwhile (ExecutorDirectory.candidates).
 */
const MAX_STALE_MS = 2_000;

/** Groups whose candidate lists are kept (see ExecutorDirectory.candidates) before starting over. */
const MAX_CANDIDATE_LISTS = 10_000;

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
  #cache: RegistryView | undefined;
  #refreshing: Promise<void> | undefined;
  /**
   * Each group's candidate list, kept while neither the view of other admins' executors
   * nor this admin's sessions changed: every fire is routed over it, and building it (with
   * a handle per remote executor) per fire was a tenth of what a busy admin allocated.
   */
  readonly #candidateLists = new Map<
    string,
    {
      cache: RegistryView | undefined;
      registryVersion: number;
      local: readonly ExecutorSession[];
      handles: readonly ExecutorHandle[];
    }
  >();
  /** Run requests to forward, gathered per executor and deadline until the end of the turn. */
  readonly #forwards = new Map<string, ForwardBatch>();

  constructor(options: ExecutorDirectoryOptions) {
    this.#options = options;
  }

  /**
   * The group's executors, local and remote, in a stable order (by instance name).
   * Synchronous while the view is fresh and the group's list is kept: every fire is routed
   * over it, and a promise per fire was most of what routing allocated. `mayBeStale`: see
   * ExecutorLookup.candidates.
   */
  candidates(
    appName: string,
    mayBeStale = false,
  ): readonly ExecutorHandle[] | Promise<readonly ExecutorHandle[]> {
    const age = this.#cache === undefined ? Infinity : Date.now() - this.#cache.at;
    if (age <= this.#ttlMs()) return this.#candidatesInView(appName);
    if (!mayBeStale || age > this.#ttlMs() + MAX_STALE_MS) return this.#freshCandidates(appName);
    // Read again in the background: fires keep going over the view a moment older instead
    // of each waiting for the registry read, which takes long on a busy database. An empty
    // list waits for the read: an executor that just connected to a peer is not missed.
    void this.#refreshOnce().catch(() => undefined);
    const listed = this.#candidatesInView(appName);
    return listed.length > 0 ? listed : this.#freshCandidates(appName);
  }

  async #freshCandidates(appName: string): Promise<readonly ExecutorHandle[]> {
    await this.#fresh();
    return this.#candidatesInView(appName);
  }

  /** The group's list over the current view (which must have been read). */
  #candidatesInView(appName: string): readonly ExecutorHandle[] {
    const kept = this.#keptCandidates(appName);
    if (kept !== undefined) return kept;
    const registryVersion = this.#options.sessions.version;
    const local = this.#options.sessions.list(appName);
    const remote = this.#remoteInView(appName);
    const localNames = new Set(local.map(session => session.instanceName));
    const handles: ExecutorHandle[] = [
      ...local,
      ...remote.filter(handle => !localNames.has(handle.instanceName)),
    ];
    handles.sort((a, b) => (a.instanceName < b.instanceName ? -1 : a.instanceName > b.instanceName ? 1 : 0));
    if (this.#candidateLists.size > MAX_CANDIDATE_LISTS) this.#candidateLists.clear();
    this.#candidateLists.set(appName, { cache: this.#cache, registryVersion, local, handles });
    return handles;
  }

  /** The group's list, while neither the view nor this admin's sessions changed. */
  #keptCandidates(appName: string): readonly ExecutorHandle[] | undefined {
    const kept = this.#candidateLists.get(appName);
    if (
      kept === undefined ||
      kept.cache !== this.#cache ||
      kept.registryVersion !== this.#options.sessions.version
    ) {
      return undefined;
    }
    for (const session of kept.local) if (session.isClosed) return undefined;
    return kept.handles;
  }

  /** One executor by name, wherever its stream is; undefined when it is not connected. */
  async find(appName: string, instanceName: string): Promise<ExecutorHandle | undefined> {
    const local = this.#options.sessions.get(appName, instanceName);
    if (local && !local.isClosed) return local;
    // A kill or log read must not miss an executor that connected a moment ago. The view is
    // read again rather than dropped: routing goes on over the current one meanwhile.
    await this.#refreshOnce();
    return this.#remoteInView(appName).find(handle => handle.instanceName === instanceName);
  }

  close(): void {
    for (const peer of this.#peers.values()) peer.channel.close();
    this.#peers.clear();
  }

  #ttlMs(): number {
    return this.#options.cacheTtlMs ?? 250;
  }

  /** Reads the registry again when the cached view of it is older than the TTL. */
  async #fresh(): Promise<void> {
    if (this.#cache === undefined || Date.now() - this.#cache.at > this.#ttlMs()) await this.#refreshOnce();
  }

  /** One registry read at a time: callers while one runs share it. */
  #refreshOnce(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /** The group's executors held by other admins, in the current view (which must have been read). */
  #remoteInView(appName: string): ExecutorHandle[] {
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
    const handle: ExecutorHandle = {
      appName: row.appName,
      instanceName: row.instanceName,
      sessionId: row.sessionId,
      process: `${row.hostname}/${row.pid}`,
      scriptKinds: row.scriptKinds,
      // Runs go to another admin's executor at their time: the peer protocol does not say
      // which revision the executor speaks.
      holdsUntilStartAt: false,
      ask: async (ask, deadlineMs) => {
        const body = askToProto(ask);
        // Run requests go in batches (ForwardRunRequests): a call per run capped what a
        // cluster forwards far below what one admin sends itself.
        if (body.$case === 'runRequest') {
          const acceptanceMessage = ask.kind === 'run' ? (ask.acceptanceMessage ?? '') : '';
          const forwarded = await this.#forwardRun(row, address, body.value, deadlineMs, acceptanceMessage);
          const answer = replyToAnswer(forwarded.reply);
          // Spelled out: a spread that adds a property is V8's slow path (about 0.6 µs a run).
          return {
            accepted: answer.accepted,
            rejectReason: answer.rejectReason,
            message: answer.message,
            acceptanceRecorded: forwarded.acceptanceHeld,
          };
        }
        return replyToAnswer(await handle.request(body, deadlineMs));
      },
      async request(body, deadlineMs) {
        const { $case, value } = body;
        // Longer than the peer may take (a wait to send, then the executor's deadline and
        // grace), so the peer's own verdict wins unless the peer is stalled or overloaded.
        const peerTimeoutMs = peerCallTimeoutMs(deadlineMs);
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
          throw peerCallError(error, timeout, peerTimeoutMs, row, deadlineMs);
        }
      },
    };
    return handle;
  }

  #forwardRun(
    row: ExecutorPresence,
    address: string,
    run: Omit<RunRequest, 'requestId'>,
    deadlineMs: number,
    acceptanceMessage: string,
  ): Promise<{ reply: Reply; acceptanceHeld: boolean }> {
    const key = `${row.adminInstanceId}\u0000${address}\u0000${row.appName}\u0000${row.instanceName}\u0000${deadlineMs}`;
    return new Promise((resolve, reject) => {
      let batch = this.#forwards.get(key);
      if (batch === undefined) {
        const created: ForwardBatch = { row, address, deadlineMs, items: [] };
        batch = created;
        this.#forwards.set(key, created);
        setImmediate(() => this.#sendForwards(key, created));
      }
      batch.items.push({ run: { ...run, requestId: '0' }, acceptanceMessage, resolve, reject });
      if (batch.items.length >= MAX_BATCH_ITEMS) this.#sendForwards(key, batch);
    });
  }

  #sendForwards(key: string, batch: ForwardBatch): void {
    if (this.#forwards.get(key) !== batch) return;
    this.#forwards.delete(key);
    const { row, address, deadlineMs, items } = batch;
    const peer = this.#peer(row.adminInstanceId, address);
    const peerTimeoutMs = peerCallTimeoutMs(deadlineMs);
    const timeout = AbortSignal.timeout(peerTimeoutMs);
    peer.client
      .forwardRunRequests(
        {
          appName: row.appName,
          instanceName: row.instanceName,
          sessionId: row.sessionId,
          deadlineMs,
          runRequests: items.map(item => item.run),
          acceptanceMessages: items.map(item => item.acceptanceMessage),
        },
        { metadata: Metadata({ authorization: `Bearer ${this.#options.peerToken}` }), signal: timeout },
      )
      .then(
        response => {
          items.forEach((item, index) => {
            const answer = response.replies[index];
            if (answer?.reply !== undefined)
              item.resolve({ reply: answer.reply, acceptanceHeld: answer.acceptanceHeld });
            else
              item.reject(forwardedRunError(answer?.failure, answer?.failureMessage ?? '', row, deadlineMs));
          });
        },
        (error: unknown) => {
          const failure = peerCallError(error, timeout, peerTimeoutMs, row, deadlineMs);
          for (const item of items)
            item.reject(failure instanceof Error ? failure : new Error(String(failure)));
        },
      );
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

/** Other admins' executors and the admins' addresses, as last read from the registry. */
interface RegistryView {
  at: number;
  presence: ExecutorPresence[];
  admins: Map<string, string>;
}

interface ForwardBatch {
  row: ExecutorPresence;
  /** The peer admin's address, as the registry named it when the runs were routed. */
  address: string;
  deadlineMs: number;
  items: {
    run: RunRequest;
    acceptanceMessage: string;
    resolve(forwarded: { reply: Reply; acceptanceHeld: boolean }): void;
    reject(error: Error): void;
  }[];
}

/**
 * Longer than the peer may take (a wait for a run slot or for room, then the executor's
 * deadline and grace), so the peer's own verdict wins unless the peer is stalled or
 * overloaded.
 */
function peerCallTimeoutMs(deadlineMs: number): number {
  return 2 * deadlineMs + answerGraceMs(deadlineMs) + 500;
}

/** What a failed call to a peer says about the requests it carried. */
function peerCallError(
  error: unknown,
  timeout: AbortSignal,
  peerTimeoutMs: number,
  row: ExecutorPresence,
  deadlineMs: number,
): unknown {
  // The call aborts with the timeout's reason, a DOMException named TimeoutError, not
  // an AbortError: the peer may have sent the request, so it is in doubt.
  if (timeout.aborted || isAbortError(error)) {
    return new ExecutorRequestError(
      'no-answer',
      `admin ${row.adminInstanceId} did not say within ${peerTimeoutMs} ms whether executor ${row.instanceName} answered`,
      { streamMayBeOpen: true },
    );
  }
  if (error instanceof ClientError) {
    const kind = failureOfPeerStatus(error.code);
    return new ExecutorRequestError(
      kind,
      kind === 'no-answer'
        ? `executor ${row.instanceName} did not answer within ${deadlineMs} ms (via admin ${row.adminInstanceId})`
        : `executor ${row.instanceName} not reachable via admin ${row.adminInstanceId}: ${error.details}`,
      // Only the peer's DEADLINE_EXCEEDED and ABORTED say it ended the stream.
      { streamMayBeOpen: error.code !== Status.DEADLINE_EXCEEDED && error.code !== Status.ABORTED },
    );
  }
  return error;
}

/** One run request's failure as a peer reported it in a ForwardRunRequests answer. */
function forwardedRunError(
  failure: ForwardFailure | undefined,
  message: string,
  row: ExecutorPresence,
  deadlineMs: number,
): ExecutorRequestError {
  const via = `via admin ${row.adminInstanceId}`;
  switch (failure) {
    case ForwardFailure.FORWARD_FAILURE_NOT_SENT:
      return new ExecutorRequestError('not-sent', `${message} (${via})`, { streamMayBeOpen: true });
    case ForwardFailure.FORWARD_FAILURE_NOT_CONNECTED:
      return new ExecutorRequestError(
        'not-connected',
        `executor ${row.instanceName} not reachable ${via}: ${message}`,
        {
          streamMayBeOpen: true,
        },
      );
    case ForwardFailure.FORWARD_FAILURE_NO_ANSWER:
      return new ExecutorRequestError(
        'no-answer',
        `executor ${row.instanceName} did not answer within ${deadlineMs} ms (${via})`,
        { streamMayBeOpen: false },
      );
    default:
      // SESSION_CLOSED, or nothing said for this request: it may have gone out.
      return new ExecutorRequestError(
        'session-closed',
        `executor ${row.instanceName} disconnected (${via})`,
        {
          streamMayBeOpen: false,
        },
      );
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
