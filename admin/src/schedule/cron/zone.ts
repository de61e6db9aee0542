/**
 * Wall-clock time <-> instant in one IANA zone.
 *
 * An expression describes wall-clock times in its zone. Each matching wall-clock time becomes one
 * instant:
 *
 * - A wall-clock time that occurs once fires at that instant.
 * - A wall-clock time inside a spring-forward gap (it never shows on the clock) fires at the first
 *   instant after the gap, i.e. the transition instant: `0 30 2 * * ?` in Europe/Berlin on
 *   2026-03-29 fires at 03:00 CEST (01:00Z). Several matches inside one gap (`0 0/15 2 * * ?`)
 *   collapse into that single firing.
 * - A wall-clock time that occurs twice at fall-back fires once, at its first occurrence
 *   (`0 30 2 * * ?` on 2026-10-25 in Berlin fires at 02:30 CEST = 00:30Z only).
 * - Consequently hourly and finer expressions fire once per distinct wall-clock time: `0 0 * * * ?`
 *   in America/New_York on 2026-11-01 fires at 01:00 EDT and then at 02:00 EST, two real hours
 *   later; the repeated 01:00-01:59 (EST) does not fire again. In a spring gap the skipped hour's
 *   firings collapse into the transition instant (`0 30 * * * ?` in Berlin on 2026-03-29 fires at
 *   01:30 CET, 03:00 CEST and 03:30 CEST).
 *
 * Wall-clock times are handled as "local date-time encoded as UTC milliseconds", which is also how
 * cron-parser sees them (it runs with tz UTC).
 */
import { BoundedCache } from './bounded-cache.js';
import { QuartzCronError } from './parse.js';

const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** Cached hour offsets per zone (about 5.7 years of hours) before the cache starts over. */
const OFFSET_CACHE_LIMIT = 50_000;

/**
 * Offsets of one zone. Share one instance between all expressions in the zone (QuartzCronCompiler
 * does), so that its offset cache serves every job.
 */
export class Zone {
  readonly #format: Intl.DateTimeFormat;
  /** Offset at the start of each hour (key: instant / HOUR_MS), filled lazily. */
  readonly #hourStartOffsets = new BoundedCache<number, number>(OFFSET_CACHE_LIMIT);

  /** @throws QuartzCronError when the runtime does not know the zone. */
  constructor(timeZone: string) {
    try {
      // Intl would quietly use the process's zone for a missing one.
      if (typeof timeZone !== 'string' || timeZone === '') throw new RangeError('no time zone');
      this.#format = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch {
      throw new QuartzCronError(`time zone: '${timeZone}' is not a known IANA time zone`);
    }
  }

  /**
   * UTC offset in milliseconds at an instant. An hour whose start and end have the same offset has
   * no transition inside (zones never change offset twice within an hour), so such hours are
   * answered from the cache; only hours containing a transition ask Intl for the exact instant.
   */
  offsetAt(instant: number): number {
    const hour = Math.floor(instant / HOUR_MS);
    const start = this.#hourStartOffset(hour);
    return start === this.#hourStartOffset(hour + 1) ? start : this.#exactOffsetAt(instant);
  }

  #hourStartOffset(hour: number): number {
    let offset = this.#hourStartOffsets.get(hour);
    if (offset === undefined) {
      offset = this.#exactOffsetAt(hour * HOUR_MS);
      this.#hourStartOffsets.set(hour, offset);
    }
    return offset;
  }

  #exactOffsetAt(instant: number): number {
    // Intl reads out whole seconds; the offset is the difference to that same whole second.
    const whole = Math.floor(instant / 1000) * 1000;
    const fields = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
    for (const part of this.#format.formatToParts(whole)) {
      if (part.type in fields) fields[part.type as keyof typeof fields] = Number(part.value);
    }
    const wall = Date.UTC(
      fields.year,
      fields.month - 1,
      fields.day,
      fields.hour,
      fields.minute,
      fields.second,
    );
    return wall - whole;
  }

  /**
   * The wall-clock time (exclusive) from which fire times after `instant` are searched. Normally
   * the wall-clock reading at `instant`; but during the second pass through a repeated fall-back
   * stretch every wall-clock time of that stretch already had its (single) firing on the first
   * pass, so the search starts where the repetition ends.
   */
  searchStart(instant: number): number {
    const offset = this.offsetAt(instant);
    const wall = instant + offset;
    const earlier = this.offsetAt(instant - DAY_MS);
    if (earlier > offset) {
      const firstPass = wall - earlier;
      if (this.offsetAt(firstPass) === earlier) {
        const transition = this.#transition(firstPass, instant);
        return transition + earlier - 1;
      }
    }
    return wall;
  }

  /** The instant a matching wall-clock time fires at, under the DST rules in the file comment. */
  instantOf(wall: number): number {
    const before = this.offsetAt(wall - DAY_MS);
    const after = this.offsetAt(wall + DAY_MS);
    let best: number | null = null;
    for (const offset of before === after ? [before] : [before, after]) {
      const instant = wall - offset;
      if (this.offsetAt(instant) === offset && (best === null || instant < best)) best = instant;
    }
    if (best !== null) return best;
    if (before === after) return wall - before; // not a real zone's behaviour; be total anyway
    // Skipped by a spring-forward gap: the first instant after the gap is the transition itself.
    return this.#transition(wall - Math.max(before, after), wall - Math.min(before, after));
  }

  /** The first whole second in (lo, hi] whose offset differs from the offset at lo. */
  #transition(lo: number, hi: number): number {
    const base = this.offsetAt(lo);
    let low = Math.floor(lo / 1000);
    let high = Math.ceil(hi / 1000);
    while (high - low > 1) {
      const middle = Math.floor((low + high) / 2);
      if (this.offsetAt(middle * 1000) === base) low = middle;
      else high = middle;
    }
    return high * 1000;
  }
}
