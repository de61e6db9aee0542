import type { RunRef } from './gen/jobstream/v1/executor.js';

/** One attempt of one run as a map key. */
export function runKey(logId: string, attempt: number): string {
  return `${logId}#${attempt}`;
}

export function refKey(ref: RunRef): string {
  return runKey(ref.logId, ref.attempt);
}
