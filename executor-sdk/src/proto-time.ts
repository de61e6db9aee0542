import type { Duration } from './gen/google/protobuf/duration.js';

/** A protobuf Duration in milliseconds; 0 for absent or negative durations. */
export function durationToMs(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  const ms = Number(duration.seconds) * 1000 + duration.nanos / 1e6;
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
