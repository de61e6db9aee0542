import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { appendFile, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from './logger.js';

/** The most lines one LogReadRequest returns, whatever it asks for. */
export const MAX_LOG_READ_LINES = 1000;

/** Every this many lines the byte offset is remembered, so a rolling read skips to it. */
const CHECKPOINT_EVERY_LINES = 1000;
/** Line indexes kept for recently read logs. */
const MAX_CACHED_INDEXES = 64;
const READ_CHUNK_BYTES = 64 * 1024;

/** The admin names logs by int64 ids; anything else must not become a file name. */
const LOG_ID_PATTERN = /^-?\d{1,20}$/;

export interface LogSlice {
  fromLine: number;
  /** `fromLine - 1` when no lines were returned. */
  toLine: number;
  lines: string[];
  /** True when the file has content after `toLine`. */
  more: boolean;
}

/** Where a log's lines start, learned while reading; logs only grow, so it stays valid. */
interface LineIndex {
  /** checkpoints[i] is the byte offset of line i * CHECKPOINT_EVERY_LINES + 1. */
  checkpoints: number[];
  /** Complete lines seen so far. */
  lines: number;
  /** The byte offset just after the last complete line seen. */
  offset: number;
}

/**
 * Run logs: one file per log id at `<dir>/<logId>.log`, one line per `ctx.log` line,
 * each prefixed with an ISO-8601 timestamp. Retries of a log (attempts) append to the
 * same file.
 */
export class RunLogStore {
  readonly dir: string;
  readonly #logger: Logger;
  /** Open writers per log id; a log is "active" while any is open. */
  readonly #active = new Map<string, number>();
  readonly #indexes = new Map<string, LineIndex>();

  constructor(dir: string, logger: Logger) {
    this.dir = dir;
    this.#logger = logger;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  fileOf(logId: string): string | undefined {
    return LOG_ID_PATTERN.test(logId) ? path.join(this.dir, `${logId}.log`) : undefined;
  }

  isActive(logId: string): boolean {
    return this.#active.has(logId);
  }

  /** Opens the log of a run that is starting. Close it when the run's result is known. */
  open(logId: string): RunLogWriter {
    const file = this.fileOf(logId);
    this.#active.set(logId, (this.#active.get(logId) ?? 0) + 1);
    return new RunLogWriter(file, this.#logger, () => {
      const n = (this.#active.get(logId) ?? 1) - 1;
      if (n <= 0) this.#active.delete(logId);
      else this.#active.set(logId, n);
    });
  }

  /** Appends lines to a log that has no open writer (runs dropped before they started). */
  async append(logId: string, lines: readonly string[]): Promise<void> {
    const file = this.fileOf(logId);
    if (file === undefined) return;
    try {
      await appendFile(file, formatLines(lines));
    } catch (err) {
      this.#logger.warn({ err, logId }, 'could not write run log');
    }
  }

  /**
   * Reads up to `maxLines` lines starting at line `fromLine` (1-based). Returns
   * undefined when the log does not exist.
   */
  async read(logId: string, fromLine: number, maxLines: number): Promise<LogSlice | undefined> {
    const file = this.fileOf(logId);
    if (file === undefined) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const { size } = await fh.stat();
      const from = Math.max(1, Math.floor(fromLine));
      const limit = maxLines <= 0 ? MAX_LOG_READ_LINES : Math.min(Math.floor(maxLines), MAX_LOG_READ_LINES);
      let index = this.#indexes.get(logId);
      if (index === undefined || size < index.offset) index = { checkpoints: [0], lines: 0, offset: 0 };
      // Re-inserting keeps the Map in least-recently-used order.
      this.#indexes.delete(logId);
      this.#indexes.set(logId, index);
      if (this.#indexes.size > MAX_CACHED_INDEXES) {
        const oldest = this.#indexes.keys().next().value;
        if (oldest !== undefined) this.#indexes.delete(oldest);
      }

      let lineNo: number;
      let offset: number;
      if (from <= index.lines + 1) {
        const c = Math.min(Math.floor((from - 1) / CHECKPOINT_EVERY_LINES), index.checkpoints.length - 1);
        lineNo = c * CHECKPOINT_EVERY_LINES + 1;
        offset = index.checkpoints[c] ?? 0;
      } else {
        lineNo = index.lines + 1;
        offset = index.offset;
      }

      const lines: string[] = [];
      let more = false;
      const idx = index;
      const { tail } = await scanLines(fh, offset, size, (text, start, end) => {
        if (lineNo === idx.lines + 1) {
          idx.lines = lineNo;
          idx.offset = end;
          if ((lineNo - 1) % CHECKPOINT_EVERY_LINES === 0)
            idx.checkpoints[(lineNo - 1) / CHECKPOINT_EVERY_LINES] = start;
        }
        if (lineNo >= from) {
          if (lines.length >= limit) {
            more = true;
            return false;
          }
          lines.push(text);
        }
        lineNo++;
        return true;
      });
      if (!more && tail !== '') {
        // An unterminated last line is still being written while the run is active.
        if (lineNo < from) {
          // The unterminated line lies before the requested range.
        } else if (this.isActive(logId)) more = true;
        else if (lines.length < limit) lines.push(tail);
        else more = true;
      }
      return { fromLine: from, toLine: from + lines.length - 1, lines, more };
    } finally {
      await fh.close();
    }
  }

  /** Deletes logs last written before `cutoff`, except active ones. Returns how many. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let deleted = 0;
    for (const name of names) {
      if (!name.endsWith('.log')) continue;
      const logId = name.slice(0, -'.log'.length);
      if (this.isActive(logId)) continue;
      const file = path.join(this.dir, name);
      try {
        const info = await stat(file);
        if (info.mtime < cutoff) {
          await unlink(file);
          this.#indexes.delete(logId);
          deleted++;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          this.#logger.warn({ err, file }, 'could not delete old run log');
      }
    }
    return deleted;
  }
}

/** The log of one running run. */
export class RunLogWriter {
  #stream: WriteStream | undefined;
  #closed = false;
  readonly #onClosed: () => void;

  constructor(file: string | undefined, logger: Logger, onClosed: () => void) {
    this.#onClosed = onClosed;
    if (file === undefined) return;
    const stream = createWriteStream(file, { flags: 'a' });
    stream.on('error', err => {
      // A log that cannot be written must not fail the run; the lines are lost.
      logger.warn({ err, file }, 'could not write run log');
      this.#stream = undefined;
      stream.destroy();
    });
    this.#stream = stream;
  }

  line(text: string): void {
    if (this.#closed) return;
    this.#stream?.write(formatLines([text]));
  }

  /** Resolves once everything written is on disk (in the OS) and the log is no longer active. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    const stream = this.#stream;
    this.#stream = undefined;
    return new Promise<void>(resolve => {
      if (stream === undefined || stream.destroyed) {
        resolve();
        return;
      }
      stream.once('error', () => resolve());
      stream.end(() => resolve());
    }).finally(this.#onClosed);
  }
}

function formatLines(texts: readonly string[]): string {
  const stamp = new Date().toISOString();
  let out = '';
  for (const text of texts) {
    for (const part of text.split(/\r?\n/)) out += `${stamp} ${part}\n`;
  }
  return out;
}

/**
 * Calls `onLine` for each complete line between byte offsets `start` and `end`, until
 * it returns false. Lines are split on bytes, which is safe for UTF-8. Returns the
 * unterminated rest, if the scan reached `end`.
 */
async function scanLines(
  fh: FileHandle,
  start: number,
  end: number,
  onLine: (text: string, lineStart: number, lineEnd: number) => boolean,
): Promise<{ tail: string }> {
  const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  let pending = Buffer.alloc(0);
  let pendingStart = start;
  let pos = start;
  while (pos < end) {
    const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, end - pos), pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    const data =
      pending.length > 0
        ? Buffer.concat([pending, chunk.subarray(0, bytesRead)])
        : chunk.subarray(0, bytesRead);
    const dataStart = pendingStart;
    let i = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, i);
      if (nl === -1) break;
      const lineEnd = nl > i && data[nl - 1] === 0x0d ? nl - 1 : nl;
      if (!onLine(data.toString('utf8', i, lineEnd), dataStart + i, dataStart + nl + 1)) return { tail: '' };
      i = nl + 1;
    }
    // `chunk` is reused by the next read, so the rest must be copied out.
    pending = Buffer.from(data.subarray(i));
    pendingStart = dataStart + i;
  }
  return { tail: pending.toString('utf8') };
}
