import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../admin/src/db/embedded-postgres.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** One life of a process, for the checks (a run recorded by a pid that was SIGKILLed may be LOST). */
export interface Incarnation {
  readonly name: string;
  readonly pid: number;
  readonly startedAt: number;
  endedAt?: number;
  /** The signal that ended it (our fault), or the exit code of an exit nobody asked for. */
  ended?: string;
  /** Whether the soak caused the exit (a fault or the final shutdown). */
  expected?: boolean;
  /** Whether it printed its ready line: an exit before is a failed start, retried by the starter. */
  ready?: boolean;
}

/**
 * A restartable child process running a TypeScript entry point. Output goes to one log
 * file per process (all lives appended), readiness is a stdout line the caller names.
 */
export class SoakProcess {
  readonly name: string;
  readonly #script: string;
  readonly #env: () => Record<string, string>;
  readonly #ready: (line: string) => boolean;
  readonly #log: WriteStream;
  readonly incarnations: Incarnation[] = [];
  #child: ChildProcess | undefined;
  #current: Incarnation | undefined;
  #exited: Promise<void> = Promise.resolve();
  #readyNow: Promise<boolean> = Promise.resolve(false);
  /** Set while the soak itself ends the process, so the exit is not counted as a crash. */
  #expectExit = false;
  /** The process was stopped (SIGSTOP) by the soak and not yet continued. */
  stopped = false;
  onUnexpectedExit: ((incarnation: Incarnation) => void) | undefined;

  constructor(options: {
    name: string;
    script: string;
    env: () => Record<string, string>;
    ready: (line: string) => boolean;
    logFile: string;
  }) {
    this.name = options.name;
    this.#script = options.script;
    this.#env = options.env;
    this.#ready = options.ready;
    this.#log = createWriteStream(options.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Starts a new life; resolves true once it printed its ready line (false if it died first). */
  start(): Promise<boolean> {
    if (this.running) return this.#readyNow;
    const child = spawn(
      process.execPath,
      ['--conditions=jobstream-source', '--import', 'tsx', this.#script],
      {
        cwd: repoRoot,
        env: { ...process.env, ...this.#env() },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.#child = child;
    this.#expectExit = false;
    this.stopped = false;
    const incarnation: Incarnation = { name: this.name, pid: child.pid ?? -1, startedAt: Date.now() };
    this.#current = incarnation;
    this.incarnations.push(incarnation);
    this.#log.write(`--- ${new Date().toISOString()} started pid ${child.pid}\n`);
    child.stderr.on('data', (chunk: Buffer) => this.#log.write(chunk));
    let markReady: (ready: boolean) => void = () => undefined;
    this.#readyNow = new Promise(resolve => (markReady = resolve));
    createInterface({ input: child.stdout }).on('line', line => {
      this.#log.write(`${line}\n`);
      if (this.#ready(line)) {
        incarnation.ready = true;
        markReady(true);
      }
    });
    this.#exited = new Promise(resolve => {
      child.once('exit', (code, signal) => {
        incarnation.endedAt = Date.now();
        incarnation.ended = signal ?? `exit ${code}`;
        incarnation.expected = this.#expectExit;
        this.#log.write(`--- ${new Date().toISOString()} pid ${child.pid} ended: ${incarnation.ended}\n`);
        markReady(false);
        // A failed start (an admin that cannot reach PostgreSQL exits) is retried by whoever
        // started it; only a process that was up and died on its own is a crash.
        if (!this.#expectExit && incarnation.ready) this.onUnexpectedExit?.(incarnation);
        resolve();
      });
    });
    return this.#readyNow;
  }

  /** Sends a signal to the live process; SIGKILL and SIGTERM mark the exit as the soak's doing. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    if (signal === 'SIGKILL' || signal === 'SIGTERM') this.#expectExit = true;
    if (signal === 'SIGSTOP') this.stopped = true;
    if (signal === 'SIGCONT') this.stopped = false;
    this.#child!.kill(signal);
  }

  exited(): Promise<void> {
    return this.#exited;
  }

  /** Ends the process for good (SIGCONT first: a stopped process does not handle SIGTERM). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.signal(signal);
    if (signal !== 'SIGKILL') this.signal('SIGCONT');
    await this.#exited;
  }

  /** Synchronous last resort for process 'exit' handlers. */
  killNow(): void {
    if (this.running) {
      this.#expectExit = true;
      this.#child!.kill('SIGKILL');
    }
  }

  current(): Incarnation | undefined {
    return this.#current;
  }

  async close(): Promise<void> {
    await new Promise<void>(resolve => this.#log.end(() => resolve()));
  }
}

/**
 * The soak's own PostgreSQL (embedded-postgres binaries, a temporary data directory, a
 * fixed port), restartable at will. Never the machine's shared server: restarting that
 * would break everyone else using it.
 */
export class SoakPostgres {
  readonly #dataDir: string;
  #server: EmbeddedPostgres | undefined;
  #port = 0;
  #url = '';
  readonly #log: WriteStream;

  constructor(dataDir: string, logFile: string) {
    this.#dataDir = dataDir;
    this.#log = createWriteStream(logFile, { flags: 'a' });
  }

  /** URL of the `postgres` database. */
  get serverUrl(): string {
    return this.#url;
  }

  get up(): boolean {
    return this.#server !== undefined;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = await startEmbeddedPostgres({
      dataDir: this.#dataDir,
      ...(this.#port ? { port: this.#port } : {}),
      onLog: line => this.#log.write(`${line}\n`),
    });
    this.#server = server;
    this.#url = server.connectionString;
    this.#port = Number(new URL(this.#url).port);
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.stop();
  }

  async close(): Promise<void> {
    await this.stop();
    await new Promise<void>(resolve => this.#log.end(() => resolve()));
  }
}

export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function repoPath(...parts: string[]): string {
  return path.join(repoRoot, ...parts);
}
