import { describe, expect, it } from 'vitest';
import {
  APP_NAME_PATTERN,
  INSTANCE_NAME_PATTERN,
  durationFromMs,
  durationToMs,
  positiveDurationMs,
  runKey,
} from '@jobstream/proto';

describe('protocol helpers shared by admin and executor', () => {
  it('converts durations both ways, keeping the sign for validators', () => {
    expect(durationFromMs(1_500)).toEqual({ seconds: '1', nanos: 500_000_000 });
    expect(durationToMs(durationFromMs(86_400_123))).toBe(86_400_123);
    expect(durationToMs(undefined)).toBe(0);
    expect(durationToMs({ seconds: '-2', nanos: 0 })).toBe(-2_000);
    expect(positiveDurationMs({ seconds: '-2', nanos: 0 })).toBe(0);
    expect(positiveDurationMs({ seconds: 'NaN', nanos: 0 })).toBe(0);
    expect(positiveDurationMs({ seconds: '3', nanos: 0 })).toBe(3_000);
  });

  it('keys a run attempt the same way on both ends', () => {
    expect(runKey('42', 3)).toBe('42#3');
    expect(runKey('42', 3)).not.toBe(runKey('4', 23));
  });

  it('holds one rule for app and instance names', () => {
    expect(APP_NAME_PATTERN.test('billing-jobs.v2')).toBe(true);
    expect(APP_NAME_PATTERN.test('has space')).toBe(false);
    expect(APP_NAME_PATTERN.test('x'.repeat(65))).toBe(false);
    expect(INSTANCE_NAME_PATTERN.test('10.0.0.7:9999')).toBe(true);
    expect(INSTANCE_NAME_PATTERN.test('bad name!')).toBe(false);
  });
});
