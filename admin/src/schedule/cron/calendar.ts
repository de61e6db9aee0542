/**
 * Finding fire times: the calendar days an expression selects (year, month, and day-of-month or
 * day-of-week with all their special forms) are chosen here, month by month, which is exact and
 * cheap; within a chosen day cron-parser proposes the time of day (time-of-day.ts), checked
 * against the Quartz fields, and the zone turns the wall-clock time into an instant (zone.ts).
 */
import type { CronExpression } from 'cron-parser';
import { FIRST_YEAR, LAST_YEAR, type DaySpec, type ParsedExpression, type ValueSet } from './parse.js';
import { DAY_MS, type Zone } from './zone.js';

/** Answers next() remembers per compiled expression before it starts over. */
const RECENT_ANSWERS = 4_096;
/** Rounds of the search loop in one next() call; a normal call needs one to three. */
const MAX_ROUNDS = 1000;

export interface QuartzCron {
  /** Normalised: single spaces, upper case. */
  readonly expression: string;
  /** IANA time zone the wall-clock times are read in, as given. */
  readonly timeZone: string;
  /**
   * The first fire time strictly after `after` (millisecond precision input; fire times fall on
   * whole seconds, placed by the daylight-saving rules in zone.ts), or null when there is none up
   * to the end of 2199 (a year field in the past, or a date that never exists such as
   * `0 0 0 30 2 ?`).
   */
  next(after: Date): Date | null;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** 0 = SUN .. 6 = SAT */
function weekdayOf(year: number, month: number, day: number): number {
  return new Date(Date.UTC(year, month - 1, day)).getUTCDay();
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

/** Quartz's W rule: Saturday -> Friday (Monday if that leaves the month), Sunday -> Monday (Friday likewise). */
function nearestWeekday(year: number, month: number, day: number, lastDay: number): number {
  const weekday = weekdayOf(year, month, day);
  if (weekday === 6) return day === 1 ? 3 : day - 1;
  if (weekday === 0) return day === lastDay ? day - 2 : day + 1;
  return day;
}

/** The first day >= from in the month that the day spec selects, or null. */
function firstMatchingDay(spec: DaySpec, year: number, month: number, from: number): number | null {
  const lastDay = daysInMonth(year, month);
  let day: number;
  switch (spec.kind) {
    case 'days-of-month':
      for (let d = from; d <= lastDay; d++) if (spec.days.has(d)) return d;
      return null;
    case 'days-of-week':
      for (let d = from; d <= lastDay; d++) if (spec.days.has(weekdayOf(year, month, d) + 1)) return d;
      return null;
    case 'last-day':
      day = lastDay - spec.offset;
      if (day < 1) return null;
      if (spec.nearestWeekday) day = nearestWeekday(year, month, day, lastDay);
      break;
    case 'nearest-weekday':
      if (spec.day > lastDay) return null;
      day = nearestWeekday(year, month, spec.day, lastDay);
      break;
    case 'nth-weekday':
      day = 1 + mod(spec.weekday - 1 - weekdayOf(year, month, 1), 7) + 7 * (spec.nth - 1);
      if (day > lastDay) return null;
      break;
    case 'last-weekday':
      day = lastDay - mod(weekdayOf(year, month, lastDay) - (spec.weekday - 1), 7);
      break;
  }
  return day >= from ? day : null;
}

/**
 * Immutable from the outside: next() keeps no state between calls, so jobs with the same schedule
 * can share one (QuartzCronCompiler does).
 */
export class CompiledQuartzCron implements QuartzCron {
  readonly expression: string;
  readonly timeZone: string;
  readonly #parsed: ParsedExpression;
  readonly #zone: Zone;
  /** null: the expression can never fire. */
  readonly #timeOfDay: CronExpression | null;
  readonly #lastYear: number;
  /** Milliseconds from midnight to the last time of day the expression matches. */
  readonly #lastTimeOfDay: number;
  /** Recent answers of next(), by the instant asked about (epoch ms; null: never again). */
  readonly #recent = new Map<number, number | null>();

  constructor(
    expression: string,
    timeZone: string,
    parsed: ParsedExpression,
    zone: Zone,
    timeOfDay: CronExpression | null,
  ) {
    this.expression = expression;
    this.timeZone = timeZone;
    this.#parsed = parsed;
    this.#zone = zone;
    this.#timeOfDay = timeOfDay;
    this.#lastYear = parsed.years.values[parsed.years.values.length - 1] ?? LAST_YEAR;
    const last = (set: ValueSet): number => set.values[set.values.length - 1] ?? 0;
    this.#lastTimeOfDay =
      ((last(parsed.hours) * 60 + last(parsed.minutes)) * 60 + last(parsed.seconds)) * 1000;
  }

  next(after: Date): Date | null {
    const afterMs = after.getTime();
    if (!Number.isFinite(afterMs)) throw new RangeError('QuartzCron.next: invalid Date');
    // Jobs sharing a schedule ask about the same instants (each fire's successor), once per
    // job: the answer is computed once. A pure function of `after`, so the memo is safe.
    const known = this.#recent.get(afterMs);
    if (known !== undefined) return known === null ? null : new Date(known);
    const next = this.#search(afterMs);
    if (this.#recent.size >= RECENT_ANSWERS) this.#recent.clear();
    this.#recent.set(afterMs, next);
    return next === null ? null : new Date(next);
  }

  #search(afterMs: number): number | null {
    const timeOfDay = this.#timeOfDay;
    if (timeOfDay === null) return null;
    // Wall-clock cursor; every candidate is strictly later than it.
    let cursor = this.#zone.searchStart(afterMs);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // Candidates are later than the cursor, so they start on the date of cursor + 1 ms.
      const day = this.#nextDay(cursor + 1);
      if (day === null) return null;
      if (day > cursor) cursor = day - 1;
      if (cursor >= day + this.#lastTimeOfDay) {
        // No time of day left on that day.
        cursor = day + DAY_MS - 1;
        continue;
      }
      // A time of day is left, so cron-parser answers within the day without a long search.
      timeOfDay.reset(new Date(cursor));
      const candidate = timeOfDay.next().getTime();
      if (candidate >= day + DAY_MS) {
        // cron-parser disagrees about the day (never seen); its later days are not trusted, ours are.
        cursor = day + DAY_MS - 1;
        continue;
      }
      const instant = this.#matchesTime(candidate) ? this.#zone.instantOf(candidate) : null;
      if (instant === null || instant <= afterMs) {
        cursor = candidate;
        continue;
      }
      return instant;
    }
    throw new Error(
      `quartz-cron: no fire time found for '${this.expression}' after ${new Date(afterMs).toISOString()} in ${MAX_ROUNDS} rounds`,
    );
  }

  #matchesTime(wall: number): boolean {
    const date = new Date(wall);
    return (
      date.getUTCMilliseconds() === 0 &&
      this.#parsed.seconds.has(date.getUTCSeconds()) &&
      this.#parsed.minutes.has(date.getUTCMinutes()) &&
      this.#parsed.hours.has(date.getUTCHours())
    );
  }

  /** Midnight (wall-clock ms) of the first matching day on or after the date of `from`, or null. */
  #nextDay(from: number): number | null {
    const { years, months, days } = this.#parsed;
    const start = new Date(from);
    let year = start.getUTCFullYear();
    let month = start.getUTCMonth() + 1;
    let day = start.getUTCDate();
    if (year < FIRST_YEAR) [year, month, day] = [FIRST_YEAR, 1, 1];
    for (; year <= this.#lastYear; year++, month = 1, day = 1) {
      if (!years.has(year)) continue;
      for (; month <= 12; month++, day = 1) {
        if (!months.has(month)) continue;
        const found = firstMatchingDay(days, year, month, day);
        if (found !== null) return Date.UTC(year, month - 1, found);
      }
    }
    return null;
  }
}
