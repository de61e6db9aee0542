import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Executor, silentLogger } from '../../src/index.js';
import type { ExecutorOptions } from '../../src/index.js';
import { FakeAdmin } from './fake-admin.js';
import type { FakeAdminOptions } from './fake-admin.js';

/** Tracks what a test created so afterEach can tear it all down. */
export class Harness {
  readonly #executors: Executor[] = [];
  readonly #admins: FakeAdmin[] = [];
  readonly #dirs: string[] = [];

  async admin(options?: FakeAdminOptions): Promise<FakeAdmin> {
    const admin = await FakeAdmin.start(options);
    this.#admins.push(admin);
    return admin;
  }

  async tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'jobstream-executor-test-'));
    this.#dirs.push(dir);
    return dir;
  }

  /** An executor with fast test timings, pointed at `admins`; not started. */
  async executor(admins: FakeAdmin | FakeAdmin[], options: Partial<ExecutorOptions> = {}): Promise<Executor> {
    const list = Array.isArray(admins) ? admins : [admins];
    const executor = new Executor({
      adminAddresses: list.map(a => a.address),
      appName: 'test-app',
      accessToken: list[0]?.token ?? 'test-token',
      instanceName: 'test-executor-1',
      dataDir: options.dataDir ?? (await this.tempDir()),
      logger: silentLogger,
      shutdownGracePeriodMs: 300,
      resultFlushTimeoutMs: 300,
      reconnectBaseDelayMs: 10,
      reconnectMaxDelayMs: 50,
      ...options,
    });
    this.#executors.push(executor);
    return executor;
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.#executors.map(e => e.stop()));
    await Promise.allSettled(this.#admins.map(a => a.stop()));
    await Promise.allSettled(this.#dirs.map(d => rm(d, { recursive: true, force: true })));
  }
}

/** A promise with its resolve function, for handlers the test releases by hand. */
export interface Gate<T = void> {
  promise: Promise<T>;
  open: (value: T) => void;
}

export function gate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  const promise = new Promise<T>(resolve => (open = resolve));
  return { promise, open };
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
