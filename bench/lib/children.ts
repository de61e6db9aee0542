import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TimeoutError, withTimeout } from './util.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

const TAIL_LINES = 30;
const TAIL_LINE_CHARS = 400;

let runFromSource = false;

/** Children run the TypeScript sources through tsx from now on, instead of the builds. */
export function runChildrenFromSource(): void {
  runFromSource = true;
}

/** Every child still alive, so cleanup (and SIGINT) can reach them all. */
const living = new Set<Child>();

export interface ChildOptions {
  /** Shown in progress output and errors. */
  name: string;
  /** A TypeScript entry point relative to the repository root, run with `node --import tsx`. */
  script: string;
  /**
   * The built JavaScript of `script`, run with plain `node` unless the bench runs from
   * source. Without it, `script` runs through tsx either way, importing the workspace
   * packages' builds unless the bench runs from source.
   */
  built?: string;
  /** Flags for node itself, before the entry point. */
  nodeArgs?: readonly string[];
  args?: readonly string[];
  env: Record<string, string>;
  /** Where stdout and stderr lines go (appended). */
  logFile: string;
  /** Lines that should not be copied to the log file (large dumps). */
  skipLogging?: (line: string) => boolean;
  /** Keep stdin open for commands. */
  stdin?: boolean;
}

type JsonRecord = Record<string, unknown>;

/**
 * A child process running a TypeScript entry point. Its stdout and stderr go to a log
 * file; JSON lines on stdout are handed to listeners. Only a short tail of lines is kept
 * in memory (for error messages), so chatty children cannot grow the harness.
 */
export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #tail: string[] = [];
  readonly #listeners = new Set<(record: JsonRecord) => void>();
  readonly #log: WriteStream;
  /** Warning and error log lines (JSON, pino or SDK style) by message. */
  readonly warnings = new Map<string, number>();
  /** Set once the harness asked the process to go: its exit is not a crash. */
  #stopRequested = false;

  constructor(options: ChildOptions) {
    this.name = options.name;
    this.#log = createWriteStream(options.logFile, { flags: 'a' });
    this.#log.on('error', () => undefined);
    const entry =
      runFromSource || options.built === undefined
        ? [...(runFromSource ? ['--conditions=jobstream-source'] : []), '--import', 'tsx', options.script]
        : [options.built];
    this.process = spawn(
      process.execPath,
      [...profilerArgs(), ...(options.nodeArgs ?? []), ...entry, ...(options.args ?? [])],
      {
        cwd: repoRoot,
        env: { ...process.env, ...options.env },
        stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      },
    );
    living.add(this);
    this.process.stdin?.on('error', () => undefined);
    const skip = options.skipLogging ?? (() => false);
    createInterface({ input: this.process.stdout! }).on('line', line => {
      if (!skip(line)) this.#record(line);
      const record = parseJson(line);
      if (!record) return;
      this.#countWarning(record);
      for (const listener of [...this.#listeners]) listener(record);
    });
    createInterface({ input: this.process.stderr! }).on('line', line => {
      this.#record(line);
      const record = parseJson(line);
      if (record) this.#countWarning(record);
    });
    this.exited = new Promise(resolve => {
      this.process.once('exit', (code, signal) => {
        living.delete(this);
        this.#record(`[bench] ${this.name} exited (code ${code}, signal ${signal})`);
        resolve({ code, signal });
      });
      this.process.once('error', error => {
        living.delete(this);
        this.#record(`[bench] ${this.name} failed to start: ${error.message}`);
        resolve({ code: null, signal: null });
      });
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null && living.has(this);
  }

  /** The process ended without the harness asking it to (it crashed). */
  get crashed(): boolean {
    return !this.#stopRequested && (this.process.exitCode !== null || this.process.signalCode !== null);
  }

  /** SIGKILL now, without waiting (a fault the harness injects on purpose). */
  killNow(): void {
    this.#stopRequested = true;
    if (this.alive) this.process.kill('SIGKILL');
  }

  /** The error a crashed Node.js process printed, with where it was thrown, if it printed one. */
  crashReason(): string | undefined {
    const lines = this.#tail;
    const index = lines.findIndex(line => /^[A-Za-z]*(?:Error|Exception)\b/.test(line));
    if (index < 0) return undefined;
    const at = lines.slice(index + 1).find(line => /^\s+at /.test(line));
    const where = at ? / \(?(?:.*\/)?([^/()]+:\d+):\d+\)?$/.exec(at)?.[1] : undefined;
    return where ? `${lines[index]} (at ${where})` : lines[index];
  }

  tail(): string {
    return this.#tail.join('\n');
  }

  /** Calls `listener` with every JSON line from now on; returns the unsubscribe function. */
  onJson(listener: (record: JsonRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Waits for a JSON stdout line that matches (from now on); fails on exit or timeout. */
  waitForJson(what: string, match: (record: JsonRecord) => boolean, timeoutMs: number): Promise<JsonRecord> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        unsubscribe();
        this.process.off('exit', onExit);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new TimeoutError(`${this.name}: no ${what} within ${timeoutMs} ms; last output:\n${this.tail()}`),
        );
      }, timeoutMs);
      const unsubscribe = this.onJson(record => {
        if (!match(record)) return;
        cleanup();
        resolve(record);
      });
      const onExit = (): void => {
        cleanup();
        reject(new Error(`${this.name} exited before ${what}; last output:\n${this.tail()}`));
      };
      if (!this.alive) {
        onExit();
        return;
      }
      this.process.once('exit', onExit);
    });
  }

  /** Writes one line to the child's stdin. */
  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  /** Sends `signal` and waits for the exit; escalates to SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    this.#stopRequested = true;
    if (this.alive) {
      this.process.kill(signal);
      if (signal !== 'SIGKILL') {
        try {
          await withTimeout(this.exited, graceMs, `${this.name} to exit after ${signal}`);
        } catch {
          this.#record(`[bench] ${this.name} did not exit within ${graceMs} ms of ${signal}; SIGKILL`);
          this.process.kill('SIGKILL');
        }
      }
    }
    await withTimeout(this.exited, 10_000, `${this.name} to exit after SIGKILL`).catch(() => undefined);
    await new Promise<void>(resolve => this.#log.end(resolve));
  }

  #countWarning(record: JsonRecord): void {
    const level = record.level;
    const serious = typeof level === 'number' ? level >= 40 : level === 'warn' || level === 'error';
    if (!serious) return;
    const err = record.err as { message?: unknown } | undefined;
    const detail = typeof err?.message === 'string' ? `: ${err.message.slice(0, 80)}` : '';
    const key = `${String(record.msg)}${detail}`;
    this.warnings.set(key, (this.warnings.get(key) ?? 0) + 1);
  }

  #record(line: string): void {
    this.#log.write(`${line}\n`);
    // The tail explains failures: routine JSON log lines (below warn) only crowd it.
    if (/^\{"level":(?:[123]\d|"(?:debug|info)")[,}]/.test(line)) return;
    this.#tail.push(line.length > TAIL_LINE_CHARS ? `${line.slice(0, TAIL_LINE_CHARS)}…` : line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
  }
}

/** Kills every child still alive (SIGKILL), waiting briefly for them to go. */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...living].map(child => child.stop('SIGKILL')));
}

/** Last resort on process exit: synchronous SIGKILL to every child. */
export function killAllChildrenSync(): void {
  for (const child of living) {
    try {
      child.process.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function parseJson(line: string): JsonRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as JsonRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** `BENCH_CPU_PROFILE_DIR` makes every child write a V8 CPU profile there when it exits. */
function profilerArgs(): string[] {
  const directory = process.env['BENCH_CPU_PROFILE_DIR'];
  return directory ? ['--cpu-prof', `--cpu-prof-dir=${directory}`] : [];
}
