import { ServerError, Status, createServer } from 'nice-grpc';
import type { CallContext, Server } from 'nice-grpc';
import { ExecutorServiceDefinition } from '@jobstream/proto/executor';
import type {
  AdminMessage,
  DeepPartial,
  ExecutorMessage,
  Register,
  Reply,
  RunRequest,
  RunResult,
} from '@jobstream/proto/executor';
import { BlockStrategy, GlueType } from '@jobstream/proto/types';
import { EVENT_CEILING_MS } from '../../../test/support/ceiling.js';

/**
 * Waits re-check on every message and also on this interval, so a wait on state the
 * session does not see (a handler starting, a file written) wakes without a message.
 */
const RECHECK_INTERVAL_MS = 10;

type ExecutorKind = NonNullable<ExecutorMessage['kind']>;
type MessageOf<K extends ExecutorKind['$case']> = Extract<ExecutorKind, { $case: K }>['value'];

/** An unbounded async queue; fine for a test double. */
class Outbox<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #end: { error?: Error } | undefined;

  push(item: T): void {
    if (this.#end !== undefined) return;
    this.#items.push(item);
    this.#wake?.();
  }

  end(error?: Error): void {
    this.#end ??= { error };
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#end !== undefined) {
        if (this.#end.error !== undefined) throw this.#end.error;
        return;
      }
      await new Promise<void>(resolve => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

interface Waiter {
  check: () => boolean;
}

/**
 * Waits until `check` returns a value, re-checking on every change signalled through `notify`
 * and every RECHECK_INTERVAL_MS; the timeout is a ceiling only a hang reaches.
 */
class Watch {
  readonly #waiters = new Set<Waiter>();

  notify(): void {
    for (const waiter of [...this.#waiters]) waiter.check();
  }

  until<T>(pick: () => T | undefined, what: string, timeoutMs = EVENT_CEILING_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check: () => {
          const value = pick();
          if (value === undefined) return false;
          this.#waiters.delete(waiter);
          clearTimeout(timer);
          clearInterval(recheck);
          resolve(value);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        clearInterval(recheck);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const recheck = setInterval(() => waiter.check(), RECHECK_INTERVAL_MS);
      this.#waiters.add(waiter);
      waiter.check();
    });
  }
}

/** The admin's side of one Connect stream. */
export class FakeSession {
  readonly index: number;
  readonly sessionId: string;
  readonly register: Register;
  /** Everything the executor sent after Register, in order. */
  readonly messages: ExecutorMessage[] = [];
  readonly #admin: FakeAdmin;
  readonly #outbox = new Outbox<DeepPartial<AdminMessage>>();
  readonly #watch = new Watch();
  #nextRequestId = 1;
  #closed = false;

  constructor(admin: FakeAdmin, index: number, register: Register) {
    this.#admin = admin;
    this.index = index;
    this.sessionId = `session-${index}`;
    this.register = register;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get outbox(): AsyncIterable<DeepPartial<AdminMessage>> {
    return this.#outbox;
  }

  /** Stream messages received after Register (a batch counts once). */
  streamMessages = 0;
  /** Stream messages that arrived as an ExecutorBatch envelope (their items are in `messages`). */
  batchesReceived = 0;

  /** @internal Records what the executor sent, a batch as its items, in order. */
  receive(message: ExecutorMessage): void {
    this.streamMessages += 1;
    if (message.kind?.$case === 'batch') {
      this.batchesReceived += 1;
      for (const reply of message.kind.value.replies)
        this.#record({ kind: { $case: 'reply', value: reply } });
      for (const result of message.kind.value.runResults) {
        this.#record({ kind: { $case: 'runResult', value: result } });
      }
      return;
    }
    this.#record(message);
  }

  #record(message: ExecutorMessage): void {
    this.messages.push(message);
    if (message.kind?.$case === 'runResult' && this.#admin.autoAck) {
      const { logId, attempt } = message.kind.value;
      this.send({ kind: { $case: 'resultAck', value: { results: [{ logId, attempt }] } } });
    }
    this.#watch.notify();
    this.#admin.notify();
  }

  /** @internal The executor's request stream ended (half-close or cancel). */
  requestEnded(): void {
    this.#closed = true;
    this.#outbox.end();
    this.#watch.notify();
    this.#admin.notify();
  }

  send(message: DeepPartial<AdminMessage>): void {
    this.#outbox.push(message);
  }

  /** The admin ends the stream normally. */
  end(): void {
    this.#outbox.end();
  }

  /** The admin ends the stream with an error status. */
  fail(code: Status, details = 'fake admin failure'): void {
    this.#outbox.end(new ServerError(code, details));
  }

  ofKind<K extends ExecutorKind['$case']>(kind: K): MessageOf<K>[] {
    const out: MessageOf<K>[] = [];
    for (const m of this.messages) if (m.kind?.$case === kind) out.push(m.kind.value as MessageOf<K>);
    return out;
  }

  results(): RunResult[] {
    return this.ofKind('runResult');
  }

  waitFor<T>(pick: () => T | undefined, what: string, timeoutMs?: number): Promise<T> {
    return this.#watch.until(pick, what, timeoutMs);
  }

  waitForResult(logId: string, attempt = 1, timeoutMs?: number): Promise<RunResult> {
    return this.waitFor(
      () => this.results().find(r => r.logId === logId && r.attempt === attempt),
      `result of log ${logId} attempt ${attempt} on ${this.sessionId}`,
      timeoutMs,
    );
  }

  waitForClose(timeoutMs?: number): Promise<true> {
    return this.waitFor(() => (this.#closed ? true : undefined), `${this.sessionId} to close`, timeoutMs);
  }

  /** Sends a request (assigning its request id) and resolves with the executor's Reply. */
  request(body: RequestBody, timeoutMs?: number): Promise<Reply> {
    const requestId = String(this.#nextRequestId++);
    this.send({ kind: { $case: body.$case, value: { ...body.value, requestId } } });
    return this.waitFor(
      () => this.ofKind('reply').find(r => r.requestId === requestId),
      `reply to ${body.$case} ${requestId}`,
      timeoutMs,
    );
  }

  run(request: Partial<Omit<RunRequest, 'requestId'>> & { logId: string }): Promise<Reply> {
    return this.request({ $case: 'runRequest', value: runRequest(request) });
  }
}

type RequestBody =
  | { $case: 'runRequest'; value: DeepPartial<RunRequest> }
  | { $case: 'killRequest'; value: { logId: string; reason?: string } }
  | { $case: 'idleBeatRequest'; value: { jobId: string } }
  | { $case: 'beatRequest'; value: Record<string, never> }
  | { $case: 'logReadRequest'; value: { logId: string; fromLine: number; maxLines: number } };

/** A RunRequest with test defaults: job 1, handler "echo", attempt 1, serial, BEAN. */
export function runRequest(
  r: Partial<Omit<RunRequest, 'requestId'>> & { logId: string },
): DeepPartial<RunRequest> {
  return {
    jobId: '1',
    handler: 'echo',
    attempt: 1,
    param: '',
    blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
    glueType: GlueType.GLUE_TYPE_BEAN,
    shardIndex: 0,
    shardTotal: 1,
    ...r,
  };
}

export interface FakeAdminOptions {
  token?: string;
  beatIntervalMs?: number;
  /** Acknowledge every result as it arrives. Default true. */
  autoAck?: boolean;
}

/**
 * A stand-in admin on 127.0.0.1: checks the bearer token, welcomes each Register,
 * records what executors send and lets the test drive requests.
 */
export class FakeAdmin {
  readonly token: string;
  readonly beatIntervalMs: number;
  autoAck: boolean;
  readonly sessions: FakeSession[] = [];
  /** Connect calls refused for a wrong token. */
  rejectedCalls = 0;
  readonly #watch = new Watch();
  #server: Server | undefined;
  #address = '';

  private constructor(options: FakeAdminOptions) {
    this.token = options.token ?? 'test-token';
    this.beatIntervalMs = options.beatIntervalMs ?? 5_000;
    this.autoAck = options.autoAck ?? true;
  }

  static async start(options: FakeAdminOptions = {}): Promise<FakeAdmin> {
    const admin = new FakeAdmin(options);
    const server = createServer();
    server.add(ExecutorServiceDefinition, {
      connect: (request: AsyncIterable<ExecutorMessage>, context: CallContext) =>
        admin.#connect(request, context),
    });
    const port = await server.listen('127.0.0.1:0');
    admin.#server = server;
    admin.#address = `127.0.0.1:${port}`;
    return admin;
  }

  get address(): string {
    return this.#address;
  }

  /** @internal */
  notify(): void {
    this.#watch.notify();
  }

  /** Resolves with the n-th session (0-based) once its Register arrived. */
  session(index: number, timeoutMs?: number): Promise<FakeSession> {
    return this.#watch.until(() => this.sessions[index], `session #${index}`, timeoutMs);
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.end();
    this.#server?.forceShutdown();
    await Promise.resolve();
  }

  async *#connect(
    request: AsyncIterable<ExecutorMessage>,
    context: CallContext,
  ): AsyncGenerator<DeepPartial<AdminMessage>, void> {
    if (context.metadata.get('authorization') !== `Bearer ${this.token}`) {
      this.rejectedCalls++;
      this.notify();
      throw new ServerError(Status.UNAUTHENTICATED, 'invalid access token');
    }
    const iterator = request[Symbol.asyncIterator]();
    const first = await iterator.next();
    if (first.done === true || first.value.kind?.$case !== 'register') {
      throw new ServerError(Status.FAILED_PRECONDITION, 'first message must be Register');
    }
    const session = new FakeSession(this, this.sessions.length, first.value.kind.value);
    session.send({
      kind: {
        $case: 'welcome',
        value: {
          sessionId: session.sessionId,
          beatInterval: {
            seconds: String(Math.floor(this.beatIntervalMs / 1000)),
            nanos: (this.beatIntervalMs % 1000) * 1e6,
          },
          adminInstanceId: 'fake-admin',
          serverTime: new Date(),
        },
      },
    });
    this.sessions.push(session);
    this.notify();
    void (async () => {
      try {
        for (;;) {
          const next = await iterator.next();
          if (next.done === true) break;
          session.receive(next.value);
        }
      } catch {
        // Cancelled by the executor.
      } finally {
        session.requestEnded();
      }
    })();
    yield* session.outbox;
  }
}
