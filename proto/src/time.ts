import type { Duration } from './gen/google/protobuf/duration.js';

/** A duration in milliseconds as a protobuf Duration. */
export function durationFromMs(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

/**
 * A protobuf Duration in whole milliseconds, sign kept (so a validator can refuse a
 * negative one); absent reads as 0.
 */
export function durationToMs(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1_000_000);
}

/**
 * For fields the contract documents as "0 or absent: not set": a negative or unreadable
 * duration reads as not set rather than as a deadline in the past.
 */
export function positiveDurationMs(duration: Duration | undefined): number {
  const ms = durationToMs(duration);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
