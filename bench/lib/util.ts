// Small helpers shared by the harness: progress output, bounded waits, wall-clock time.
import { sleep } from '@jobstream/proto/concurrency';

export { sleep };

const startedAt = performance.now();

/** Progress on stderr (stdout carries only the final table). */
export function progress(scope: string, message: string, fields: Record<string, unknown> = {}): void {
  const elapsed = ((performance.now() - startedAt) / 1000).toFixed(1).padStart(6);
  const extra = Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'number' ? formatNumber(value) : String(value)}`)
    .join(' ');
  process.stderr.write(`[bench +${elapsed}s] ${scope}: ${message}${extra ? ` (${extra})` : ''}\n`);
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/** Sleeps until the given wall-clock instant (ms since the epoch). */
export function sleepUntil(wallMs: number, signal?: AbortSignal): Promise<void> {
  return sleep(wallMs - Date.now(), signal);
}

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** Rejects with a TimeoutError naming `what` when `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns something other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new TimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Runs `work` over `items` with at most `concurrency` in flight; rejects on the first failure. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, () => worker()));
  return results;
}

/** The first whole second at or after `ms`. */
export function ceilSecond(ms: number): number {
  return Math.ceil(ms / 1000) * 1000;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
