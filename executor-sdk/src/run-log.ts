import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from './logger.js';

/** The most lines one LogReadRequest returns, whatever it asks for. */
export const MAX_LOG_READ_LINES = 1000;
/**
 * The most bytes of line text (UTF-8) one LogReadRequest returns: the reply must fit in one
 * gRPC message with room to spare, and the admin refuses larger chunks.
 */
export const MAX_LOG_READ_BYTES = 1024 * 1024;

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

/** Buffered lines reach their files at least this often (reads flush first, so they see everything). */
const FLUSH_INTERVAL_MS = 50;
/** A flush yields to the event loop after this long, so writing many logs never stalls runs. */
const FLUSH_SLICE_MS = 2;
/** A log with this much unwritten text is flushed at once rather than at the next interval. */
const MAX_BUFFERED_BYTES = 256 * 1024;
/** Quiet logs (only the SDK's own lines) kept in memory for reads: at least the newest this many. */
const MAX_QUIET_LOGS = 10_000;

/**
 * Run logs: one file per log id at `<dir>/<logId>.log`, one line per `ctx.log` line,
 * each prefixed with an ISO-8601 timestamp. Retries of a log (attempts) append to the
 * same file.
 *
 * Lines are buffered and written in batches with synchronous calls, in slices of at
 * most FLUSH_SLICE_MS. A file opened, written and closed through the thread pool
 * (fs streams or fs/promises) costs three cross-thread hand-offs, several times the
 * CPU of the same three system calls made directly (measured: about 120-220 µs
 * against 35 µs per short log on the benchmark machine), and a busy executor writes
 * one log per run. Writes land in the page cache, so a slice is short; an executor
 * that dies loses at most the last FLUSH_INTERVAL_MS of lines, as with any buffered
 * logger.
 */
export class RunLogStore {
  readonly dir: string;
  readonly #logger: Logger;
  /** Open writers per log id; a log is "active" while any is open. */
  readonly #open = new Map<string, Set<RunLogWriter>>();
  /**
   * The lines of closed logs that never got a line of their handler's (only the SDK's own
   * start and end lines), by log id, oldest first: such a log gets no file at all, since
   * opening, writing and closing a file per run was a third of a busy executor's CPU.
   */
  #quiet = new Map<string, string>();
  /**
   * The generation before #quiet, dropped whole when #quiet fills up. Evicting one oldest
   * entry per run from a single Map instead (`keys().next()` after deleting from its front)
   * scans the deleted entries every time: 8 % of a busy executor's CPU.
   */
  #quietBefore = new Map<string, string>();
  readonly #indexes = new Map<string, LineIndex>();
  /** Writers with unwritten lines or an unclosed file, in the order they became dirty. */
  readonly #dirty = new Set<RunLogWriter>();
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing = false;

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
    return this.#open.has(logId);
  }

  /**
   * Opens the log of a run that is starting. Close it when the run's result is known. Its
   * file is created only once it has a line that is not a note (see RunLogWriter.note).
   */
  open(logId: string): RunLogWriter {
    let writers = this.#open.get(logId);
    if (writers === undefined) this.#open.set(logId, (writers = new Set()));
    const open = writers;
    const writer: RunLogWriter = new RunLogWriter(logId, this.fileOf(logId), this.#logger, {
      dirty: dirty => this.#markDirty(dirty),
      closedQuiet: text => this.#keepQuiet(logId, text),
      closed: () => {
        open.delete(writer);
        if (open.size === 0 && this.#open.get(logId) === open) this.#open.delete(logId);
      },
    });
    open.add(writer);
    return writer;
  }

  /** Appends notes to a log that has no open writer (runs dropped before they started). */
  append(logId: string, notes: readonly string[]): Promise<void> {
    if (this.fileOf(logId) === undefined) return Promise.resolve();
    const writer = this.open(logId);
    for (const note of notes) writer.note(note);
    return writer.close();
  }

  #keepQuiet(logId: string, text: string): void {
    const earlier = this.#quietText(logId);
    this.#quietBefore.delete(logId);
    if (this.#quiet.size >= MAX_QUIET_LOGS && !this.#quiet.has(logId)) {
      this.#quietBefore = this.#quiet;
      this.#quiet = new Map();
    }
    this.#quiet.set(logId, earlier === undefined ? text : earlier + text);
  }

  #quietText(logId: string): string | undefined {
    return this.#quiet.get(logId) ?? this.#quietBefore.get(logId);
  }

  /** Serves a read of a quiet log from memory (its lines end with a newline each). */
  #readQuiet(text: string, fromLine: number, maxLines: number): LogSlice {
    const all = text.slice(0, -1).split('\n');
    const from = Math.max(1, Math.floor(fromLine));
    const limit = maxLines <= 0 ? MAX_LOG_READ_LINES : Math.min(Math.floor(maxLines), MAX_LOG_READ_LINES);
    const lines = all.slice(from - 1, from - 1 + limit);
    return { fromLine: from, toLine: from + lines.length - 1, lines, more: from - 1 + limit < all.length };
  }

  /** Writes every buffered line and closes finished logs' files, at once. */
  flush(): void {
    for (const writer of [...this.#dirty]) this.#flushWriter(writer);
  }

  /** Flushes and stops the background flushing; writers opened later still work (flushed on close). */
  close(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.flush();
  }

  #markDirty(writer: RunLogWriter): void {
    this.#dirty.add(writer);
    if (writer.bufferedBytes >= MAX_BUFFERED_BYTES) {
      this.#flushWriter(writer);
      return;
    }
    if (this.#flushTimer === undefined && !this.#flushing) {
      this.#flushTimer = setTimeout(() => this.#flushSlices(), FLUSH_INTERVAL_MS);
    }
  }

  #flushWriter(writer: RunLogWriter): void {
    this.#dirty.delete(writer);
    writer.writeBuffered();
  }

  #flushSlices(): void {
    this.#flushTimer = undefined;
    this.#flushing = true;
    const sliceEnds = performance.now() + FLUSH_SLICE_MS;
    for (const writer of this.#dirty) {
      this.#flushWriter(writer);
      if (performance.now() >= sliceEnds) break;
    }
    this.#flushing = false;
    if (this.#dirty.size === 0) return;
    // More logs than one slice writes: continue after whatever else is waiting to run.
    this.#flushing = true;
    setImmediate(() => this.#flushSlices());
  }

  /**
   * Reads up to `maxLines` lines starting at line `fromLine` (1-based). Returns
   * undefined when the log does not exist.
   */
  async read(logId: string, fromLine: number, maxLines: number): Promise<LogSlice | undefined> {
    const file = this.fileOf(logId);
    if (file === undefined) return undefined;
    // A reader of a running log sees its lines so far, notes included: they go to its file now.
    for (const writer of this.#open.get(logId) ?? []) writer.materialize();
    for (const writer of this.#dirty) if (writer.logId === logId) this.#flushWriter(writer);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      const quiet = this.#quietText(logId);
      return quiet === undefined ? undefined : this.#readQuiet(quiet, fromLine, maxLines);
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
      let bytes = 0;
      let more = false;
      /** Adds a line unless the chunk is full; a line larger than a whole chunk is truncated. */
      const add = (text: string): boolean => {
        const size = Buffer.byteLength(text, 'utf8');
        if (bytes + size <= MAX_LOG_READ_BYTES) {
          lines.push(text);
          bytes += size;
          return true;
        }
        if (lines.length > 0) return false;
        // Returning nothing would stall a rolling read at this line forever.
        const truncated = truncateUtf8(text, MAX_LOG_READ_BYTES - 100);
        lines.push(`${truncated} [line truncated: ${size} bytes]`);
        bytes = MAX_LOG_READ_BYTES;
        return true;
      };
      const idx = index;
      const { tail } = await scanLines(fh, offset, size, (text, start, end) => {
        if (lineNo === idx.lines + 1) {
          idx.lines = lineNo;
          idx.offset = end;
          if ((lineNo - 1) % CHECKPOINT_EVERY_LINES === 0)
            idx.checkpoints[(lineNo - 1) / CHECKPOINT_EVERY_LINES] = start;
        }
        if (lineNo >= from) {
          if (lines.length >= limit || !add(text)) {
            more = true;
            return false;
          }
        }
        lineNo++;
        return true;
      });
      if (!more && tail !== '') {
        // An unterminated last line is still being written while the run is active.
        if (lineNo < from) {
          // The unterminated line lies before the requested range.
        } else if (this.isActive(logId)) more = true;
        else if (lines.length >= limit || !add(tail)) more = true;
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

interface WriterHooks {
  /** The writer has lines to write or a file to close. */
  dirty(writer: RunLogWriter): void;
  /** The writer closed with notes only and no file: here are its formatted lines. */
  closedQuiet(text: string): void;
  /** The writer is closed: the log is no longer active. */
  closed(): void;
}

/** The log of one running run: lines are buffered until the store flushes them. */
export class RunLogWriter {
  readonly logId: string;
  readonly #file: string | undefined;
  readonly #logger: Logger;
  readonly #hooks: WriterHooks;
  #buffered = '';
  /** Only notes so far, and no reader asked for the lines: no file yet. */
  #quiet = true;
  #fd: number | undefined;
  #closing = false;
  #failed = false;
  #whenClosed: { promise: Promise<void>; resolve: () => void } | undefined;

  constructor(logId: string, file: string | undefined, logger: Logger, hooks: WriterHooks) {
    this.logId = logId;
    this.#file = file;
    this.#logger = logger;
    this.#hooks = hooks;
  }

  get bufferedBytes(): number {
    return this.#buffered.length;
  }

  /** A line of the run's own (the handler's): the log gets its file. */
  line(text: string): void {
    if (this.#closing || this.#file === undefined || this.#failed) return;
    this.#quiet = false;
    this.#buffered += formatLines([text]);
    this.#hooks.dirty(this);
  }

  /**
   * A line of the SDK's own (run started, run ended). A log with nothing but notes gets no
   * file: its lines are kept in memory for reads (see RunLogStore).
   */
  note(text: string): void {
    if (this.#closing || this.#file === undefined || this.#failed) return;
    this.#buffered += formatLines([text]);
    if (!this.#quiet) this.#hooks.dirty(this);
  }

  /** Someone reads this log while it runs: its lines go to the file from now on. */
  materialize(): void {
    if (!this.#quiet || this.#closing) return;
    this.#quiet = false;
    if (this.#buffered !== '') this.#hooks.dirty(this);
  }

  /**
   * Resolves once everything written is in the file (in the OS), or kept in memory for a
   * quiet log, and the log is no longer active.
   */
  close(): Promise<void> {
    if (this.#whenClosed !== undefined) return this.#whenClosed.promise;
    this.#closing = true;
    let resolve!: () => void;
    const promise = new Promise<void>(r => (resolve = r));
    this.#whenClosed = { promise, resolve };
    if (this.#quiet && this.#buffered !== '') {
      this.#hooks.closedQuiet(this.#buffered);
      this.#finishClose();
    } else if (this.#buffered === '' && this.#fd === undefined) this.#finishClose();
    else this.#hooks.dirty(this);
    return promise;
  }

  /** Called by the store: writes what is buffered, and closes the file once the log is closed. */
  writeBuffered(): void {
    if (this.#buffered !== '' && this.#file !== undefined && !this.#failed) {
      const text = this.#buffered;
      this.#buffered = '';
      try {
        this.#fd ??= openSync(this.#file, 'a');
        writeSync(this.#fd, text);
      } catch (err) {
        // A log that cannot be written must not fail the run; its lines are lost.
        this.#failed = true;
        this.#logger.warn({ err, file: this.#file }, 'could not write run log');
      }
    }
    if (this.#closing) {
      if (this.#fd !== undefined) {
        try {
          closeSync(this.#fd);
        } catch (err) {
          this.#logger.warn({ err, file: this.#file }, 'could not close run log');
        }
        this.#fd = undefined;
      }
      this.#finishClose();
    }
  }

  #finishClose(): void {
    this.#buffered = '';
    this.#hooks.closed();
    this.#whenClosed?.resolve();
  }
}

/** The longest prefix of `text` that is at most `maxBytes` of UTF-8, cut between characters. */
function truncateUtf8(text: string, maxBytes: number): string {
  const encoded = Buffer.from(text, 'utf8');
  if (encoded.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && ((encoded[end] ?? 0) & 0xc0) === 0x80) end--;
  return encoded.toString('utf8', 0, end);
}

function formatLines(texts: readonly string[]): string {
  const stamp = new Date().toISOString();
  let out = '';
  for (const text of texts) {
    // Most lines are one line (the SDK's own start and end notes): no split for them.
    if (!text.includes('\n')) out += `${stamp} ${text}\n`;
    else for (const part of text.split(/\r?\n/)) out += `${stamp} ${part}\n`;
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
