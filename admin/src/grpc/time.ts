import type { Duration } from '../gen/google/protobuf/duration.js';

export function durationFromMs(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function durationToMs(duration: Duration | undefined): number {
  if (!duration) return 0;
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1_000_000);
}
