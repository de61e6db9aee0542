/**
 * One attempt of one run, (log id, attempt), as a map key. A result is stored once per
 * key, so both ends must agree on it.
 */
export function runKey(logId: string, attempt: number): string {
  return `${logId}#${attempt}`;
}
