import { createChannel, createClient, Metadata, type Channel } from 'nice-grpc';
import {
  ExecutorServiceDefinition,
  type AdminMessage,
  type ExecutorMessage,
  type Register,
} from '@jobstream/proto/executor';
import { BoundedQueue } from '@jobstream/proto/concurrency';
import { EVENT_CEILING_MS } from './ceiling.js';

type AdminKind = NonNullable<AdminMessage['kind']>;
type AdminValues = { [C in AdminKind['$case']]: Extract<AdminKind, { $case: C }>['value'] };

/**
 * A hand-driven executor stream for protocol tests: the test decides every message
 * (or lack of one) the "executor" sends.
 */
export class RawExecutor {
  readonly received: AdminMessage[] = [];
  /** When each of `received` arrived (Date.now()), index for index. */
  readonly receivedAt: number[] = [];
  readonly #outbound = new BoundedQueue<ExecutorMessage>(1024);
  readonly #channel: Channel;
  readonly #abort = new AbortController();
  readonly done: Promise<unknown>;
  #wake: (() => void) | undefined;
  #beats: NodeJS.Timeout | undefined;
  error: unknown;

  constructor(address: string, token: string) {
    this.#channel = createChannel(address);
    const client = createClient(ExecutorServiceDefinition, this.#channel);
    const responses = client.connect(this.#outbound, {
      metadata: Metadata({ authorization: `Bearer ${token}` }),
      signal: this.#abort.signal,
    });
    this.done = (async () => {
      try {
        for await (const message of responses) {
          this.received.push(message);
          this.receivedAt.push(Date.now());
          this.#wake?.();
        }
      } catch (error) {
        this.error = error;
      } finally {
        this.#wake?.();
      }
    })();
  }

  /** Sends a message; once the stream is over it is dropped, as a real executor's would be. */
  send(message: ExecutorMessage): void {
    if (!this.#outbound.isOpen) return;
    if (!this.#outbound.tryPush(message)) throw new Error('raw executor outbound queue full');
  }

  register(fields: Partial<Register> & Pick<Register, 'appName' | 'instanceName'>): void {
    this.send({
      kind: {
        $case: 'register',
        value: {
          hostname: 'test-host',
          pid: 1,
          sdkName: 'raw-test',
          sdkVersion: '0',
          handlers: ['echo'],
          capacity: 4,
          labels: {},
          running: [],
          unacknowledgedResults: [],
          scriptKinds: [],
          protocolVersion: 1,
          // Like an executor predating the pipelining window: at most `capacity` runs held.
          pipelineWindow: 0,
          ...fields,
        },
      },
    });
  }

  /** Waits for the n-th (1-based) received message of a kind. */
  async next<K extends keyof AdminValues>(
    kind: K,
    nth = 1,
    timeoutMs = EVENT_CEILING_MS,
  ): Promise<AdminValues[K]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const matches = this.received.filter(message => message.kind?.$case === kind);
      const match = matches[nth - 1];
      // The filter above guarantees the case; TypeScript cannot narrow a generic union member.
      if (match?.kind) return match.kind.value as AdminValues[K];
      if (this.error !== undefined) throw this.error as Error;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${kind} #${nth} within ${timeoutMs} ms`);
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, remaining);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * Beats every `intervalMs` from now on, whatever else the test has it do (or not do):
   * the admin closes a stream that stays silent for three beat intervals.
   */
  keepBeating(intervalMs: number): void {
    clearInterval(this.#beats);
    this.#beats = setInterval(() => {
      this.#outbound.tryPush({
        kind: {
          $case: 'beat',
          value: {
            runningCount: 0,
            queuedCount: 0,
            eventLoopLagMs: 0,
            sentAt: new Date(),
            unresponsiveRuns: [],
          },
        },
      });
    }, intervalMs);
  }

  count(kind: NonNullable<AdminMessage['kind']>['$case']): number {
    return this.received.filter(message => message.kind?.$case === kind).length;
  }

  /** Half-closes the stream, as an executor leaving cleanly would. */
  end(): void {
    clearInterval(this.#beats);
    this.#outbound.close();
  }

  async close(): Promise<void> {
    clearInterval(this.#beats);
    this.#outbound.close();
    this.#abort.abort();
    await this.done;
    this.#channel.close();
  }
}
