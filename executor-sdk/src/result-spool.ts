import { open, readFile, rename } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { RunRef, RunResult } from '@jobstream/proto/executor';
import { RunOutcome } from '@jobstream/proto/types';
import type { Logger } from './logger.js';
import { runKey } from '@jobstream/proto';

export const SPOOL_FILE_NAME = 'results.spool.jsonl';

/** Rewriting the file is not worth it for a handful of acknowledged lines. */
const MIN_ACK_LINES_BEFORE_COMPACTION = 64;
/**
 * How long a result waits before it is written. A healthy admin acknowledges it well
 * within this, and an acknowledged result is never written: at thousands of results a
 * second, writing and fsyncing each (and then its ack line) was a fifth of the
 * executor's CPU. Only results the admin is slow to store reach the disk.
 */
export const SPOOL_WRITE_DELAY_MS = 50;
/** How many acknowledged runs are remembered to ignore re-sent requests for them. */
const RECENTLY_ACKED_LIMIT = 10_000;

type SpoolLine =
  | {
      t: 'result';
      logId: string;
      attempt: number;
      outcome: number;
      message: string;
      startedAt: string | null;
      finishedAt: string | null;
    }
  | { t: 'ack'; logId: string; attempt: number };

interface Entry {
  result: RunResult;
  /** Part of a write to the file (an acknowledgement then needs an ack line). */
  written: boolean;
  /** Written and fsynced. */
  durable: boolean;
}

/**
 * The results this executor owes the admin, on disk.
 *
 * The file is an append-only log of `result` and `ack` lines. A result is sent at once and
 * appended and fsynced SPOOL_WRITE_DELAY_MS later unless acknowledged by then (group commit): waiting for the fsync before sending put a
 * disk flush into every run's round trip, and bought nothing, since a process that dies
 * before the fsync loses the result either way (the admin then stores the copy it got, or
 * declares the run lost as for any process that died while running it). An ack is appended
 * without fsync, because losing one only means the result is sent again, which the admin
 * tolerates (it applies a result at most once per (log id, attempt)); a result acknowledged
 * before it was written is never written at all. When acknowledged lines outnumber live ones the
 * file is rewritten with only the live results (tmp file + fsync + rename), which also
 * happens once on open so every process starts from a clean file.
 *
 * A dataDir belongs to one process at a time.
 */
export class ResultSpool {
  readonly #file: string;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #recentlyAcked = new Set<string>();
  /** Results waiting for their write, oldest first (`addedAt`: performance.now()). */
  readonly #pendingAdds: { key: string; entry: Entry; resolve: () => void; addedAt: number }[] = [];
  #flushQueued = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #handle: FileHandle | undefined;
  #ackLines = 0;
  /** File operations run one at a time, in call order. */
  #chain: Promise<void> = Promise.resolve();
  readonly #emptyWaiters = new Set<() => void>();
  #closed = false;

  private constructor(file: string, logger: Logger) {
    this.#file = file;
    this.#logger = logger;
  }

  static async open(dir: string, logger: Logger): Promise<ResultSpool> {
    const spool = new ResultSpool(path.join(dir, SPOOL_FILE_NAME), logger);
    await spool.#load();
    await spool.#rewrite();
    return spool;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(logId: string, attempt: number): boolean {
    return this.#entries.has(runKey(logId, attempt));
  }

  /**
   * Whether the admin acknowledged this run's result lately (kept in memory, the newest
   * RECENTLY_ACKED_LIMIT): an admin re-sends a run request whose stream broke, and the
   * run must not start again just because its result already left the spool.
   */
  acknowledgedRecently(logId: string, attempt: number): boolean {
    return this.#recentlyAcked.has(runKey(logId, attempt));
  }

  /** Every result not acknowledged yet, oldest first: what a new stream re-sends. */
  pendingResults(): RunResult[] {
    return [...this.#entries.values()].map(entry => entry.result);
  }

  /** Results written and fsynced, oldest first. */
  durableResults(): RunResult[] {
    const out: RunResult[] = [];
    for (const entry of this.#entries.values()) if (entry.durable) out.push(entry.result);
    return out;
  }

  refs(): RunRef[] {
    return [...this.#entries.values()].map(e => ({ logId: e.result.logId, attempt: e.result.attempt }));
  }

  /**
   * Records a result. It is visible to `has()` at once (so a repeated RunRequest is
   * recognized while the write is in flight); the promise resolves once it is durable.
   * If the disk write fails the result stays in memory and is still delivered.
   */
  add(result: RunResult): Promise<void> {
    const key = runKey(result.logId, result.attempt);
    const entry: Entry = { result, written: false, durable: false };
    this.#entries.set(key, entry);
    return new Promise<void>(resolve => {
      this.#pendingAdds.push({ key, entry, resolve, addedAt: performance.now() });
      this.#scheduleFlush();
    });
  }

  /** A write when the oldest result waiting has waited SPOOL_WRITE_DELAY_MS. */
  #scheduleFlush(): void {
    const oldest = this.#pendingAdds[0];
    if (this.#flushQueued || oldest === undefined) return;
    this.#flushQueued = true;
    this.#flushTimer = setTimeout(
      () => {
        this.#flushTimer = undefined;
        void this.#enqueue(() => this.#flushPendingAdds('due'));
      },
      Math.max(0, oldest.addedAt + SPOOL_WRITE_DELAY_MS - performance.now()),
    );
  }

  /**
   * Group commit: the results that have waited SPOOL_WRITE_DELAY_MS (`due`), or all of them,
   * go to disk in one write and one fsync. An fsync costs about as much as the whole run of a
   * short handler, so one per result would cap an executor at a few hundred results a second.
   * Younger results wait for a later write: most are acknowledged by then and never written
   * (writing every result waiting at the time wrote those of the last few milliseconds too).
   */
  async #flushPendingAdds(which: 'due' | 'all'): Promise<void> {
    this.#flushQueued = false;
    let count = this.#pendingAdds.length;
    if (which === 'due') {
      // Timers do not fire early, but performance.now() and the timer clock may differ by a fraction of a millisecond.
      const writtenBefore = performance.now() - SPOOL_WRITE_DELAY_MS + 1;
      count = this.#pendingAdds.findIndex(add => add.addedAt > writtenBefore);
      if (count === -1) count = this.#pendingAdds.length;
    }
    const adds = this.#pendingAdds.splice(0, count);
    const batch = adds.filter(add => this.#entries.get(add.key) === add.entry);
    for (const add of batch) add.entry.written = true;
    if (batch.length > 0) {
      try {
        const handle = this.#requireHandle();
        await handle.write(batch.map(add => JSON.stringify(toLine(add.entry.result)) + '\n').join(''));
        await handle.sync();
      } catch (err) {
        this.#logger.error({ err, results: batch.length }, 'could not spool run results');
      }
    }
    for (const add of batch) add.entry.durable = true;
    // Adds superseded before the flush (acked or replaced) resolve too.
    for (const add of adds) add.resolve();
    this.#scheduleFlush();
  }

  /** Forgets acknowledged results; unknown refs are ignored. Returns how many were removed. */
  ack(refs: readonly RunRef[]): Promise<number> {
    const removed: RunRef[] = [];
    let forgotten = 0;
    for (const ref of refs) {
      const key = runKey(ref.logId, ref.attempt);
      const entry = this.#entries.get(key);
      if (entry !== undefined) {
        this.#entries.delete(key);
        forgotten += 1;
        if (entry.written) removed.push(ref);
      }
      this.#recentlyAcked.add(key);
    }
    for (const key of this.#recentlyAcked) {
      if (this.#recentlyAcked.size <= RECENTLY_ACKED_LIMIT) break;
      this.#recentlyAcked.delete(key);
    }
    if (this.#entries.size === 0) for (const wake of [...this.#emptyWaiters]) wake();
    if (removed.length === 0) return Promise.resolve(forgotten);
    return this.#enqueue(async () => {
      const lines = removed.map(r => JSON.stringify({ t: 'ack', logId: r.logId, attempt: r.attempt }) + '\n');
      try {
        await this.#requireHandle().write(lines.join(''));
        this.#ackLines += removed.length;
        if (this.#ackLines >= MIN_ACK_LINES_BEFORE_COMPACTION && this.#ackLines > this.#entries.size) {
          await this.#rewrite();
        }
      } catch (err) {
        this.#logger.warn({ err }, 'could not record result acks in the spool');
      }
    }).then(() => forgotten);
  }

  /** Resolves when nothing is left to deliver, or when `signal` aborts. */
  whenEmpty(signal?: AbortSignal): Promise<void> {
    if (this.#entries.size === 0 || signal?.aborted) return Promise.resolve();
    return new Promise(resolve => {
      const done = (): void => {
        this.#emptyWaiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#emptyWaiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Results still waiting for their write go to disk before the file closes.
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pendingAdds.length > 0) void this.#enqueue(() => this.#flushPendingAdds('all'));
    await this.#enqueue(async () => {
      await this.#handle?.close();
      this.#handle = undefined;
    });
  }

  #enqueue(op: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(op);
    // The chain must survive a failed operation; each caller still sees its own failure.
    this.#chain = run.catch(() => {});
    return run;
  }

  #requireHandle(): FileHandle {
    if (this.#handle === undefined) throw new Error('result spool is closed');
    return this.#handle;
  }

  async #load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let bad = 0;
    for (const raw of text.split('\n')) {
      if (raw.trim() === '') continue;
      const line = parseLine(raw);
      if (line === undefined) {
        // A crash mid-append leaves a torn last line; that result was never sent (no fsync yet).
        bad++;
        continue;
      }
      const key = runKey(line.logId, line.attempt);
      if (line.t === 'ack') this.#entries.delete(key);
      else this.#entries.set(key, { result: fromLine(line), written: true, durable: true });
    }
    if (bad > 0) this.#logger.warn({ file: this.#file, lines: bad }, 'skipped unreadable result spool lines');
    if (this.#entries.size > 0) {
      this.#logger.info({ results: this.#entries.size }, 'loaded unacknowledged run results from the spool');
    }
  }

  /** Replaces the file with only the durable live results, atomically. */
  async #rewrite(): Promise<void> {
    const tmp = `${this.#file}.tmp`;
    await this.#handle?.close();
    this.#handle = undefined;
    const body = this.durableResults()
      .map(r => JSON.stringify(toLine(r)) + '\n')
      .join('');
    const out = await open(tmp, 'w');
    try {
      await out.write(body);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.#file);
    await syncDirectory(path.dirname(this.#file));
    this.#ackLines = 0;
    this.#handle = await open(this.#file, 'a');
  }
}

function toLine(r: RunResult): SpoolLine {
  return {
    t: 'result',
    logId: r.logId,
    attempt: r.attempt,
    outcome: r.outcome,
    message: r.message,
    startedAt: r.startedAt?.toISOString() ?? null,
    finishedAt: r.finishedAt?.toISOString() ?? null,
  };
}

function fromLine(line: Extract<SpoolLine, { t: 'result' }>): RunResult {
  return {
    logId: line.logId,
    attempt: line.attempt,
    outcome: toOutcome(line.outcome),
    message: line.message,
    startedAt: line.startedAt === null ? undefined : new Date(line.startedAt),
    finishedAt: line.finishedAt === null ? undefined : new Date(line.finishedAt),
  };
}

function toOutcome(n: number): RunOutcome {
  const known = Object.values(RunOutcome) as number[];
  return (known.includes(n) ? n : RunOutcome.RUN_OUTCOME_UNSPECIFIED) as RunOutcome;
}

function parseLine(raw: string): SpoolLine | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.logId !== 'string' || typeof v.attempt !== 'number') return undefined;
  if (v.t === 'ack') return { t: 'ack', logId: v.logId, attempt: v.attempt };
  if (v.t !== 'result' || typeof v.outcome !== 'number' || typeof v.message !== 'string') return undefined;
  const date = (x: unknown): string | null => (typeof x === 'string' ? x : null);
  return {
    t: 'result',
    logId: v.logId,
    attempt: v.attempt,
    outcome: v.outcome,
    message: v.message,
    startedAt: date(v.startedAt),
    finishedAt: date(v.finishedAt),
  };
}

async function syncDirectory(dir: string): Promise<void> {
  // Makes the rename durable on POSIX; directories cannot be opened this way on Windows.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    /* best effort */
  }
}
