import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ExecutorScriptOptions } from '../../executor-sdk/src/index.js';
import { PROCESS_START_CEILING_MS } from './ceiling.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Set by global-setup.ts for one `vitest run`; every child gets it as CHILD_MARK_VARIABLE,
 * so the run's teardown can find and kill children a crashed worker left behind.
 */
export const TEST_RUN_ID_VARIABLE = 'JOBSTREAM_TEST_RUN_ID';
export const CHILD_MARK_VARIABLE = 'JOBSTREAM_TEST_CHILD_OF_RUN';

/** Children of this worker still running; killed after each test file (kill-leftovers.ts). */
const running = new Set<ChildTs>();

/**
 * SIGKILLs every child this worker started that still runs: one whose test failed or timed
 * out before handing it to its own cleanup. Returns how many there were.
 */
export async function killLeftoverChildren(): Promise<number> {
  const leftovers = [...running];
  await Promise.all(leftovers.map(child => child.kill('SIGKILL')));
  return leftovers.length;
}

/**
 * A child process running a TypeScript entry point through tsx (or, with `compiled`, a
 * JavaScript one with plain node, as users run built code; or, with `interpreter`, any
 * script), with its stdout read as lines.
 */
export class ChildTs {
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    script: string,
    args: readonly string[],
    env: Record<string, string>,
    options: {
      compiled?: boolean;
      cwd?: string;
      /** Another interpreter and its arguments before the script (e.g. Debian's python3). */
      interpreter?: readonly [string, ...string[]];
    } = {},
  ) {
    const runner = options.compiled ? [] : ['--conditions=jobstream-source', '--import', 'tsx'];
    const [file, ...before] = options.interpreter ?? [process.execPath, ...runner];
    this.process = spawn(file, [...before, script, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: {
        ...process.env,
        ...env,
        ...(process.env[TEST_RUN_ID_VARIABLE]
          ? { [CHILD_MARK_VARIABLE]: process.env[TEST_RUN_ID_VARIABLE] }
          : {}),
      },
      stdio: ['ignore', 'pipe', process.env.TEST_CHILD_STDERR === '1' ? 'inherit' : 'ignore'],
    });
    createInterface({ input: this.process.stdout! }).on('line', line => {
      this.lines.push(line);
      for (const wake of this.#waiters) wake();
    });
    running.add(this);
    this.exited = new Promise(resolve => {
      this.process.once('exit', (code, signal) => {
        running.delete(this);
        resolve({ code, signal });
        for (const wake of this.#waiters) wake();
      });
    });
  }

  /**
   * Waits for a stdout line that parses as JSON and matches, returning the parsed object.
   * The ceiling covers tsx compiling a process that just started on a loaded machine.
   */
  async waitForJson(
    match: (record: Record<string, unknown>) => boolean,
    timeoutMs = PROCESS_START_CEILING_MS,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let scanned = 0;
    for (;;) {
      for (; scanned < this.lines.length; scanned += 1) {
        const record = parseJson(this.lines[scanned]!);
        if (record && match(record)) return record;
      }
      if (this.process.exitCode !== null || this.process.signalCode !== null) {
        throw new Error(
          `process exited (${this.process.exitCode ?? this.process.signalCode}) before the expected line`,
        );
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new Error(`timed out waiting for a line; got:\n${this.lines.slice(-20).join('\n')}`);
      await new Promise<void>(resolve => {
        const timer = setTimeout(done, remaining);
        const waiters = this.#waiters;
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Every stdout line so far that parses as JSON and matches. */
  records(match: (record: Record<string, unknown>) => boolean = () => true): Record<string, unknown>[] {
    return this.lines.flatMap(line => {
      const record = parseJson(line);
      return record && match(record) ? [record] : [];
    });
  }

  /** Sends a signal without waiting for an exit (SIGSTOP, SIGCONT, a SIGTERM to be awaited later). */
  signal(signal: NodeJS.Signals): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
    await this.exited;
  }
}

/** A child whose start failed is nobody's to clean up: it is killed before the error is thrown. */
async function killOnFailure<T>(child: ChildTs, waiting: Promise<T>): Promise<T> {
  try {
    return await waiting;
  } catch (error) {
    await child.kill('SIGKILL');
    throw error;
  }
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export interface AdminProcessOptions {
  databaseUrl: string;
  adminToken: string;
  port?: number;
  beatIntervalMs?: number;
  instanceId?: string;
  /** More JOBSTREAM_* settings (lost-run grace, monitor interval, ...), applied last. */
  env?: Record<string, string>;
}

/** A real admin process (`jobstream-admin serve`); resolves once it listens. */
export async function startAdminProcess(
  options: AdminProcessOptions,
): Promise<{ child: ChildTs; address: string }> {
  const child = new ChildTs('admin/src/cli.ts', ['serve'], {
    DATABASE_URL: options.databaseUrl,
    JOBSTREAM_ADMIN_TOKEN: options.adminToken,
    JOBSTREAM_GRPC_PORT: String(options.port ?? 0),
    JOBSTREAM_METRICS_PORT: 'off',
    JOBSTREAM_CONSOLE_PORT: 'off',
    JOBSTREAM_BEAT_INTERVAL_MS: String(options.beatIntervalMs ?? 500),
    JOBSTREAM_LOG_LEVEL: 'info',
    ...(options.instanceId ? { JOBSTREAM_ADMIN_INSTANCE_ID: options.instanceId } : {}),
    ...options.env,
  });
  const started = await killOnFailure(
    child,
    child.waitForJson(record => record.msg === 'admin started'),
  );
  return { child, address: String(started.grpc) };
}

export interface ExecutorProcessOptions {
  adminAddresses: string[];
  appName: string;
  accessToken: string;
  instanceName: string;
  dataDir: string;
  /** The SDK's shutdownGracePeriodMs (what SIGTERM gives running runs); the SDK default when omitted. */
  shutdownGracePeriodMs?: number;
  /** The SDK's capacity; the SDK default when omitted. */
  capacity?: number;
  /** The SDK's pipelineWindow; the SDK default when omitted. */
  pipelineWindow?: number;
  /** The SDK's scripts option (script kinds it runs); none when omitted, as by default. */
  scripts?: ExecutorScriptOptions;
}

/** A real executor process running test/fixtures/executor-process.ts; resolves once it is registered. */
export async function startExecutorProcess(
  options: ExecutorProcessOptions,
  waitReady = true,
): Promise<ChildTs> {
  const child = new ChildTs('test/fixtures/executor-process.ts', [], {
    FIXTURE_ADMIN_ADDRESSES: options.adminAddresses.join(','),
    FIXTURE_APP_NAME: options.appName,
    FIXTURE_ACCESS_TOKEN: options.accessToken,
    FIXTURE_INSTANCE_NAME: options.instanceName,
    FIXTURE_DATA_DIR: options.dataDir,
    ...(options.shutdownGracePeriodMs === undefined
      ? {}
      : { FIXTURE_SHUTDOWN_GRACE_MS: String(options.shutdownGracePeriodMs) }),
    ...(options.capacity === undefined ? {} : { FIXTURE_CAPACITY: String(options.capacity) }),
    ...(options.pipelineWindow === undefined
      ? {}
      : { FIXTURE_PIPELINE_WINDOW: String(options.pipelineWindow) }),
    ...(options.scripts === undefined ? {} : { FIXTURE_SCRIPTS: JSON.stringify(options.scripts) }),
  });
  if (waitReady)
    await killOnFailure(
      child,
      child.waitForJson(record => record.event === 'ready'),
    );
  return child;
}

/** A port that was free a moment ago (for processes that must come back on the same address). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
