/**
 * "Full jitter" exponential backoff: a uniformly random delay below the exponential
 * cap, so a fleet of executors that lost the same admin does not reconnect in lockstep.
 */
export function fullJitterDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random = Math.random,
): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * cap);
}
