import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RunRequest } from '@jobstream/proto/executor';
import { GlueType, RunOutcome } from '@jobstream/proto/types';
import type { Logger } from './logger.js';
import type { ResolvedScriptOptions, ScriptKind } from './options.js';

/** The wire value of each script kind (Register.script_kinds, RunRequest.glue_type). */
export const GLUE_TYPE_OF_KIND: Readonly<Record<ScriptKind, GlueType>> = {
  SHELL: GlueType.GLUE_TYPE_SHELL,
  PYTHON: GlueType.GLUE_TYPE_PYTHON,
  NODEJS: GlueType.GLUE_TYPE_NODEJS,
  POWERSHELL: GlueType.GLUE_TYPE_POWERSHELL,
};

/** Names of the glue types that are scripts, PHP included (no SDK runs it), for messages. */
const SCRIPT_NAMES: Partial<Record<GlueType, string>> = {
  [GlueType.GLUE_TYPE_SHELL]: 'SHELL',
  [GlueType.GLUE_TYPE_PYTHON]: 'PYTHON',
  [GlueType.GLUE_TYPE_NODEJS]: 'NODEJS',
  [GlueType.GLUE_TYPE_PHP]: 'PHP',
  [GlueType.GLUE_TYPE_POWERSHELL]: 'POWERSHELL',
};

/**
 * The script file's extension. NODEJS scripts are CommonJS (`.cjs`) whatever package.json
 * surrounds the work directory, as XXL-JOB's; pwsh needs `.ps1` to run a file.
 */
const EXTENSION: Readonly<Record<ScriptKind, string>> = {
  SHELL: 'sh',
  PYTHON: 'py',
  NODEJS: 'cjs',
  POWERSHELL: 'ps1',
};

/** A line of output this long without a newline is logged as a line of its own. */
const MAX_PARTIAL_LINE_CHARS = 64 * 1024;
/** After a group was signalled: how often to look whether it is empty. */
const GROUP_POLL_MS = 100;
/** After the script exited: how long its output pipes may stay open (held by what it left behind). */
const OUTPUT_DRAIN_EXTRA_MS = 1_000;
const ID_PATTERN = /^\d{1,20}$/;

/** What a script run ended with, as the run scheduler reports it (unless the run was aborted). */
export interface ScriptSettled {
  outcome: RunOutcome;
  message: string;
}

export interface ScriptRunContext {
  readonly request: RunRequest;
  readonly kind: ScriptKind;
  /** Aborted on kill, timeout, cover or shutdown: the script's process group is ended. */
  readonly signal: AbortSignal;
  /** A line in the run's log. */
  readonly log: (line: string) => void;
}

/**
 * Whether a run request's glue type is a handler (undefined), a script kind this executor
 * runs, or a refusal (REJECT_REASON_INVALID, with the message).
 */
export type ScriptAdmission = { kind: ScriptKind } | { refusal: string } | undefined;

/**
 * Runs script (GLUE) jobs in child processes: `<interpreter> <script file> <param> <shard index>
 * <shard total>`, in a fresh working directory per run, each in a process group of its own
 * (`detached`), so a kill, timeout or stop ends the script and everything it started: SIGTERM
 * to the group, SIGKILL after `killGraceMs`. Whatever a script leaves running in its group when
 * it exits is ended the same way. Script files are cached per (job, glue_updated_at).
 */
export class ScriptRunner {
  readonly #options: ResolvedScriptOptions;
  readonly #logger: Logger;
  readonly #scriptsDir: string;
  readonly #runsDir: string;
  /** Process groups started and not known to be empty. */
  readonly #groups = new Set<ProcessGroup>();
  /** Script files runs are using, with how many: never pruned while in use. */
  readonly #inUse = new Map<string, number>();
  #stopped = false;

  constructor(options: ResolvedScriptOptions, logger: Logger) {
    this.#options = options;
    this.#logger = logger;
    this.#scriptsDir = path.join(options.workDir, 'scripts');
    this.#runsDir = path.join(options.workDir, 'runs');
  }

  /** The kinds this executor runs, in Register's order. */
  get kinds(): ScriptKind[] {
    return [...this.#options.kinds];
  }

  get glueTypes(): GlueType[] {
    return this.kinds.map(kind => GLUE_TYPE_OF_KIND[kind]);
  }

  /** See {@link ScriptAdmission}. */
  admit(glueType: GlueType): ScriptAdmission {
    if (glueType === GlueType.GLUE_TYPE_BEAN || glueType === GlueType.GLUE_TYPE_UNSPECIFIED) return undefined;
    const name = SCRIPT_NAMES[glueType];
    if (name === undefined) return { refusal: `unknown glue type ${glueType}` };
    const kind = this.kinds.find(k => k === name);
    if (kind === undefined) {
      return { refusal: `this executor does not run ${name} scripts (not enabled in its scripts option)` };
    }
    return { kind };
  }

  /** Creates the work directory; working directories a previous process left are removed. */
  async init(): Promise<void> {
    if (this.#options.kinds.size === 0) return;
    await mkdir(this.#scriptsDir, { recursive: true });
    await rm(this.#runsDir, { recursive: true, force: true });
    await mkdir(this.#runsDir, { recursive: true });
  }

  /**
   * Runs the script to its end. Resolves when its process exited and its output was read (or
   * the output stayed open too long); never rejects. After an abort the value is ignored.
   */
  async run(context: ScriptRunContext): Promise<ScriptSettled> {
    const { request, kind } = context;
    let file: string;
    try {
      file = await this.#scriptFile(request, kind);
    } catch (err) {
      return failed(`could not write the script file: ${errorText(err)}`);
    }
    this.#hold(file);
    let runDir: string | undefined;
    try {
      await this.#prune(request.jobId, file);
      runDir = await mkdtemp(path.join(this.#runsDir, `${request.logId}-${request.attempt}-`));
      return await this.#execute(context, file, runDir);
    } catch (err) {
      return failed(`could not start the script: ${errorText(err)}`);
    } finally {
      this.#release(file);
      if (runDir !== undefined) {
        await rm(runDir, { recursive: true, force: true }).catch((err: unknown) =>
          this.#logger.warn({ err, runDir }, 'could not remove a script run directory'),
        );
      }
    }
  }

  /**
   * Ends every script process group still there (SIGTERM, SIGKILL after the grace) and waits
   * for that; no script starts afterwards. For stop(), after the runs were aborted.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    const groups = [...this.#groups];
    for (const group of groups) group.terminate(this.#options.killGraceMs);
    await Promise.all(groups.map(group => group.ended));
  }

  /** `<workDir>/scripts/<jobId>-<glue_updated_at ms>.<ext>`, written atomically once per version. */
  async #scriptFile(request: RunRequest, kind: ScriptKind): Promise<string> {
    if (!ID_PATTERN.test(request.jobId))
      throw new Error(`job id ${JSON.stringify(request.jobId)} is not an id`);
    const updatedAt = request.glueUpdatedAt?.getTime();
    // Without a version the file is named by its content, so it is still never stale.
    const version =
      updatedAt === undefined || Number.isNaN(updatedAt)
        ? `sha256_${createHash('sha256').update(request.glueSource).digest('hex').slice(0, 32)}`
        : String(updatedAt);
    const name = `${request.jobId}-${version}.${EXTENSION[kind]}`;
    const file = path.join(this.#scriptsDir, name);
    if (await exists(file)) return file;
    const temporary = path.join(
      this.#scriptsDir,
      `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
    );
    try {
      await writeFile(temporary, request.glueSource, { encoding: 'utf8', mode: 0o600 });
      await rename(temporary, file);
    } catch (err) {
      await unlink(temporary).catch(() => {});
      throw err;
    }
    return file;
  }

  /** Deletes the other versions of the job's script that no run is using. */
  async #prune(jobId: string, current: string): Promise<void> {
    const prefix = `${jobId}-`;
    let names: string[];
    try {
      names = await readdir(this.#scriptsDir);
    } catch {
      return;
    }
    for (const name of names) {
      const file = path.join(this.#scriptsDir, name);
      if (!name.startsWith(prefix) || file === current || this.#inUse.has(file)) continue;
      await unlink(file).catch(() => {});
    }
  }

  #hold(file: string): void {
    this.#inUse.set(file, (this.#inUse.get(file) ?? 0) + 1);
  }

  #release(file: string): void {
    const left = (this.#inUse.get(file) ?? 1) - 1;
    if (left > 0) this.#inUse.set(file, left);
    else this.#inUse.delete(file);
  }

  #execute(context: ScriptRunContext, file: string, cwd: string): Promise<ScriptSettled> {
    const { request, kind, signal, log } = context;
    // Aborted while the file was written: the result is already reported, nothing may start.
    if (signal.aborted || this.#stopped)
      return Promise.resolve(failed('run ended before the script started'));
    const interpreter = this.#options.interpreters[kind];
    const graceMs = this.#options.killGraceMs;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      JOBSTREAM_PARAM: request.param,
      JOBSTREAM_SHARD_INDEX: String(request.shardIndex),
      JOBSTREAM_SHARD_TOTAL: String(request.shardTotal),
      JOBSTREAM_JOB_ID: request.jobId,
      JOBSTREAM_LOG_ID: request.logId,
    };
    // Python block-buffers a pipe: its lines would reach the log only at exit.
    if (kind === 'PYTHON' && env.PYTHONUNBUFFERED === undefined) env.PYTHONUNBUFFERED = '1';

    let child: ChildProcess;
    try {
      child = spawn(
        interpreter,
        [file, request.param, String(request.shardIndex), String(request.shardTotal)],
        { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (err) {
      return Promise.resolve(
        failed(`could not start the ${kind} interpreter "${interpreter}": ${errorText(err)}`),
      );
    }
    const tailLines = this.#options.stderrTailLines;
    const tail: string[] = [];
    const stdout = new LineSplitter(log);
    const stderr = new LineSplitter(line => {
      log(line);
      tail.push(line);
      if (tail.length > tailLines) tail.shift();
    });
    const group = child.pid === undefined ? undefined : new ProcessGroup(child.pid, this.#logger);
    if (group !== undefined) {
      this.#groups.add(group);
      void group.ended.then(() => this.#groups.delete(group));
    }

    return new Promise<ScriptSettled>(resolve => {
      let openStreams = 2;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let drainTimer: NodeJS.Timeout | undefined;
      let settled = false;
      const onAbort = (): void => group?.terminate(graceMs);
      signal.addEventListener('abort', onAbort, { once: true });

      const settle = (result: ScriptSettled): void => {
        if (settled) return;
        settled = true;
        clearTimeout(drainTimer);
        signal.removeEventListener('abort', onAbort);
        resolve(result);
      };
      const finishIfDone = (): void => {
        if (exit === undefined || openStreams > 0) return;
        stdout.end();
        stderr.end();
        settle(exitResult(exit, tail, log));
      };
      for (const stream of [child.stdout!, child.stderr!]) {
        const lines = stream === child.stdout ? stdout : stderr;
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => lines.push(chunk));
        stream.on('error', () => {});
        stream.once('close', () => {
          openStreams -= 1;
          finishIfDone();
        });
      }
      child.once('error', err => {
        if (child.pid !== undefined) {
          this.#logger.warn({ err, logId: request.logId }, 'script process error');
          return;
        }
        child.stdout?.destroy();
        child.stderr?.destroy();
        settle(failed(`could not start the ${kind} interpreter "${interpreter}": ${err.message}`));
      });
      child.once('exit', (code, exitSignal) => {
        exit = { code, signal: exitSignal };
        // What the script left running in its group ends with it.
        group?.terminate(graceMs);
        // Something that left the group (setsid) may hold the pipes open: stop reading then.
        drainTimer = setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          openStreams = 0;
          finishIfDone();
        }, graceMs + OUTPUT_DRAIN_EXTRA_MS);
        finishIfDone();
      });
    });
  }
}

/**
 * A script's process group (its id is the script process's pid: it was spawned detached).
 * `terminate` sends SIGTERM to the group and SIGKILL after the grace unless the group is gone
 * by then; `ended` settles when the group is empty or was sent SIGKILL.
 */
class ProcessGroup {
  readonly #pgid: number;
  readonly #logger: Logger;
  readonly ended: Promise<void>;
  #end!: () => void;
  #terminating = false;
  #killTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;

  constructor(pgid: number, logger: Logger) {
    this.#pgid = pgid;
    this.#logger = logger;
    this.ended = new Promise<void>(resolve => (this.#end = resolve));
  }

  terminate(graceMs: number): void {
    if (this.#terminating) return;
    this.#terminating = true;
    if (!this.#signal('SIGTERM')) {
      this.#finish();
      return;
    }
    this.#killTimer = setTimeout(() => {
      this.#signal('SIGKILL');
      this.#finish();
    }, graceMs);
    this.#pollTimer = setInterval(() => {
      if (!this.#signal(0)) this.#finish();
    }, GROUP_POLL_MS);
  }

  #finish(): void {
    clearTimeout(this.#killTimer);
    clearInterval(this.#pollTimer);
    this.#end();
  }

  /** False when the group has no process left (or none this process may signal). */
  #signal(signal: NodeJS.Signals | 0): boolean {
    try {
      process.kill(-this.#pgid, signal);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH')
        this.#logger.warn({ err, pgid: this.#pgid }, 'could not signal a script process group');
      return false;
    }
  }
}

/** Splits decoded output into lines (`\n` or `\r\n`); an overlong unterminated line is cut. */
class LineSplitter {
  readonly #onLine: (line: string) => void;
  #partial = '';

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  push(chunk: string): void {
    const text = this.#partial + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.#onLine(text.slice(start, end));
      start = nl + 1;
    }
    this.#partial = text.slice(start);
    if (this.#partial.length >= MAX_PARTIAL_LINE_CHARS) {
      this.#onLine(this.#partial);
      this.#partial = '';
    }
  }

  end(): void {
    if (this.#partial !== '') this.#onLine(this.#partial);
    this.#partial = '';
  }
}

function exitResult(
  exit: { code: number | null; signal: NodeJS.Signals | null },
  tail: readonly string[],
  log: (line: string) => void,
): ScriptSettled {
  const how = exit.code !== null ? `exit code ${exit.code}` : `ended by signal ${exit.signal ?? 'unknown'}`;
  log(`[jobstream] script ${how}`);
  if (exit.code === 0) return { outcome: RunOutcome.RUN_OUTCOME_SUCCEEDED, message: how };
  const stderrTail = tail.join('\n').trim();
  return failed(stderrTail === '' ? `script failed: ${how}` : stderrTail);
}

function failed(message: string): ScriptSettled {
  return { outcome: RunOutcome.RUN_OUTCOME_FAILED, message };
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
