/**
 * Quartz cron expressions, as XXL-JOB users write them, evaluated in an IANA time zone.
 *
 * ## Syntax
 *
 *     seconds minutes hours day-of-month month day-of-week [year]
 *
 * | field        | values                   | special characters      |
 * | ------------ | ------------------------ | ----------------------- |
 * | seconds      | 0-59                     | , - * /                 |
 * | minutes      | 0-59                     | , - * /                 |
 * | hours        | 0-23                     | , - * /                 |
 * | day-of-month | 1-31                     | , - * / ? L W           |
 * | month        | 1-12 or JAN-DEC          | , - * /                 |
 * | day-of-week  | 1-7 or SUN-SAT (1 = SUN) | , - * / ? L #           |
 * | year         | 1970-2199 (optional)     | , - * /                 |
 *
 * Fields are separated by whitespace; names and letters are case-insensitive. `expression` on the
 * compiled object is the input with single spaces and upper case.
 *
 * - `*` every value; `a,b` a list; `a-b` a range; `a/c` from a every c up to the field maximum;
 *   `a-b/c` and `* /c` (without the space) step through a range or the whole field.
 * - Ranges may wrap: `22-2` in hours is 22,23,0,1,2; `FRI-MON` is FRI,SAT,SUN,MON; `NOV-FEB` is
 *   NOV,DEC,JAN,FEB; `25-5` in day-of-month is 25..31,1..5. A step applies along the wrapped range
 *   exactly as Quartz does it (`22-2/2` is 22,0,2). Year ranges cannot wrap.
 * - `?` (no specific value) is allowed only in day-of-month and day-of-week, and exactly one of the
 *   two must be `?`: Quartz does not implement specifying both.
 * - day-of-month: `L` last day of the month; `L-n` n days before the last day (n 0-30); `nW` the
 *   weekday (Mon-Fri) nearest to day n, never crossing into another month (`1W` on a Saturday is
 *   Monday the 3rd, `31W` on a Sunday is Friday the 29th); `LW` the last weekday of the month;
 *   `L-nW` the weekday nearest to n days before the last day. These forms must stand alone (no
 *   lists or ranges). A day that a month does not have never matches in that month (`31` skips
 *   April; `31W` also skips April rather than moving to the 30th).
 * - day-of-week: `L` alone is SAT (7); `nL` is the last weekday n of the month (`6L` = the last
 *   Friday); `n#k` is the k-th weekday n of the month (`6#3` = the third Friday, k 1-5; a month
 *   without a fifth one is skipped). These forms must stand alone.
 * - A step larger than Quartz allows is refused: seconds and minutes above 59, hours above 23,
 *   day-of-month above 31, month above 12, day-of-week above 7 (Quartz's own limits); a step of 0
 *   is refused in every field.
 * - Refused although Quartz parses it: a name followed by a step (`MON-FRI/2`, `JAN/3`) because
 *   Quartz silently drops the step, and `W` in a list (`1W,15W`), which older Quartz (the one
 *   XXL-JOB embeds) evaluates inconsistently. Refusing is the rule wherever we cannot reproduce
 *   Quartz exactly: a job must never silently fire at times other than the ones Quartz would pick.
 *
 * Every `QuartzCronError` message starts with the field it is about, e.g.
 * `day-of-week: value 8 is out of range 1-7 (1 = SUN)`.
 *
 * ## Time zones and daylight saving
 *
 * The expression describes wall-clock times in `timeZone`. Each matching wall-clock time becomes
 * one instant:
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
 * `next(after)` returns the earliest such instant strictly after `after`, or null when there is
 * none up to the end of 2199 (a year field in the past, or a date that never exists such as
 * `0 0 0 30 2 ?`).
 *
 * ## How it is built on cron-parser, and where it differs
 *
 * The expression is parsed and validated here (cron-parser's validation differs from Quartz's and
 * its messages do not follow our field naming). Evaluation is split:
 *
 * - Calendar days (year, month, day-of-month / day-of-week with all their special forms) are
 *   chosen here, month by month, which is exact and cheap.
 * - The time of day within a chosen day comes from cron-parser: the seconds, minutes and hours are
 *   translated into explicit lists, together with the month and, where cron-parser reads them the
 *   same way, the day fields (day lists, `L`, day-of-week lists renumbered to 0-6, `n#k` -> `(n-1)#k`,
 *   `nL` -> `(n-1)L`); forms it lacks are given to it as `*` (a superset) and are decided here. Each
 *   cron-parser candidate is checked against the Quartz fields before it is used.
 * - cron-parser runs with `tz: 'UTC'` over a "wall-clock timeline" (local date-times encoded as if
 *   they were UTC), and the wall-clock -> instant step with the DST rules above happens here.
 * - next() keeps no state between calls, so compiled expressions, cron-parser instances and each
 *   zone's hourly UTC offsets are cached and shared between jobs (bounded caches).
 *
 * What cron-parser 5.10 does differently from Quartz (checked by experiment):
 *
 * - Day-of-week is numbered 0-7 with 0 and 7 = SUN (Quartz: 1-7, 1 = SUN); renumbered here.
 * - When day-of-month and day-of-week are both restricted it ORs them (Vixie cron); `?` is just an
 *   alias of `*`. Quartz requires one to be `?`, so the other is always translated alone with `*`
 *   in its partner, and the both-specified form is refused.
 * - `L` alone in day-of-week is rejected (Quartz: SAT); `L-n`, `W`, `LW` and the year field do not
 *   exist; wrapping ranges (`22-2`, `FRI-MON`) are rejected; a step wider than the field (`* /61`
 *   in seconds) is accepted and silently yields one value (Quartz refuses it).
 * - An explicit day of month that no listed month has (`30` in February) throws at parse time;
 *   Quartz accepts the expression and it simply never fires, so `next()` returns null.
 * - With a real `tz`, cron-parser moves each wall-clock time in a spring-forward gap by the length
 *   of the gap (`0 30 2` fires at 03:30, `0 0/15 2` fires four times from 03:00) and fires a
 *   repeated fall-back wall-clock time twice when the hour field is `*` but once otherwise. Hence
 *   the wall-clock timeline and our own DST rules.
 *
 * ## Compared with Quartz itself
 *
 * Checked against Quartz's own CronExpression (the 2.3.1 copy XXL-JOB embedded for years, and
 * 2.5) on tens of thousands of random expressions: fire times are identical in zones without a
 * transition, except where we chose otherwise:
 *
 * - Daylight saving: Java's lenient Calendar makes Quartz fire a repeated wall-clock time at its
 *   second occurrence and either shift a gap time by an hour (`0 30 2` -> 03:30) or skip it
 *   (`0 0/15 2`, or `0 24 0` on Santiago's midnight gap). We follow the rules above instead.
 * - `nW` where the month has no day n: Quartz 2.3 lets the day spill into the next month (`31W`
 *   fires on Friday 30 April 2027 because "31 April" is Saturday 1 May); we skip the month, as
 *   Quartz 2.5 does. Likewise `L-nW` reaching before the 1st (`L-30W` in a 30-day month) fires
 *   nowhere that month, as `L-n` does; Quartz 2.3 sometimes fires it on the 1st.
 * - Quartz gives up at the current year + 100, we at 2199. Quartz 2.3 loops forever on `L-nW` with
 *   a large n; we return the right days (or null).
 * - Quartz ignores characters after a value or name (`5DEC3`, `FRI?`, `MON/2`), reads `L-3` in
 *   day-of-week as SAT, allows empty list entries (`,5`), `/0` and years outside 1970-2199; we
 *   refuse all of these.
 */
import { CronExpressionParser } from 'cron-parser';
import type { CronExpression } from 'cron-parser';

export class QuartzCronError extends Error {
  override readonly name = 'QuartzCronError';
}

export interface QuartzCron {
  /** Normalised: single spaces, upper case. */
  readonly expression: string;
  /** IANA time zone the wall-clock times are read in, as given. */
  readonly timeZone: string;
  /**
   * The first fire time strictly after `after` (millisecond precision input; fire times fall on
   * whole seconds), or null when the expression never fires again (e.g. a year field in the past).
   */
  next(after: Date): Date | null;
}

const FIRST_YEAR = 1970;
const LAST_YEAR = 2199;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Cached hour offsets per zone (about 5.7 years of hours) before the cache starts over. */
const OFFSET_CACHE_LIMIT = 50_000;
/** Distinct translated expressions kept parsed before the cache starts over. */
const PARSER_CACHE_LIMIT = 10_000;
/** Distinct compiled (expression, zone) pairs kept before the cache starts over. */
const COMPILED_CACHE_LIMIT = 10_000;
/** Rounds of the search loop in one next() call; a normal call needs one to three. */
const MAX_ROUNDS = 1000;

type FieldName = 'seconds' | 'minutes' | 'hours' | 'day-of-month' | 'month' | 'day-of-week' | 'year';

interface FieldRule {
  readonly name: FieldName;
  readonly min: number;
  readonly max: number;
  /** Quartz's largest accepted increment after '/'; undefined: any. */
  readonly maxStep: number | undefined;
  /** names[i] stands for the value min + i. */
  readonly names: readonly string[] | undefined;
  /** Whether a range may run past the maximum and wrap around (22-2). */
  readonly wraps: boolean;
  /** Appended to out-of-range messages. */
  readonly hint: string;
}

const SECONDS: FieldRule = {
  name: 'seconds',
  min: 0,
  max: 59,
  maxStep: 59,
  names: undefined,
  wraps: true,
  hint: '',
};
const MINUTES: FieldRule = { ...SECONDS, name: 'minutes' };
const HOURS: FieldRule = {
  name: 'hours',
  min: 0,
  max: 23,
  maxStep: 23,
  names: undefined,
  wraps: true,
  hint: '',
};
const DAY_OF_MONTH: FieldRule = {
  name: 'day-of-month',
  min: 1,
  max: 31,
  maxStep: 31,
  names: undefined,
  wraps: true,
  hint: '',
};
const MONTH: FieldRule = {
  name: 'month',
  min: 1,
  max: 12,
  maxStep: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  wraps: true,
  hint: ' (1 = JAN)',
};
const DAY_OF_WEEK: FieldRule = {
  name: 'day-of-week',
  min: 1,
  max: 7,
  maxStep: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
  wraps: true,
  hint: ' (1 = SUN)',
};
const YEAR: FieldRule = {
  name: 'year',
  min: FIRST_YEAR,
  max: LAST_YEAR,
  maxStep: undefined,
  names: undefined,
  wraps: false,
  hint: '',
};

/** Which calendar days match, from the day-of-month or the day-of-week field (the other is '?'). */
type DaySpec =
  | { readonly kind: 'days-of-month'; readonly days: ValueSet }
  /** L, L-n, LW, L-nW */
  | { readonly kind: 'last-day'; readonly offset: number; readonly nearestWeekday: boolean }
  /** nW */
  | { readonly kind: 'nearest-weekday'; readonly day: number }
  /** Quartz numbering, 1 = SUN. */
  | { readonly kind: 'days-of-week'; readonly days: ValueSet }
  /** n#k */
  | { readonly kind: 'nth-weekday'; readonly weekday: number; readonly nth: number }
  /** nL */
  | { readonly kind: 'last-weekday'; readonly weekday: number };

/** The values a field selects, as a bitmap over the field's range plus the sorted list. */
class ValueSet {
  readonly values: readonly number[];
  readonly #min: number;
  readonly #member: Uint8Array;

  constructor(rule: FieldRule, values: Iterable<number>) {
    this.#min = rule.min;
    this.#member = new Uint8Array(rule.max - rule.min + 1);
    for (const value of values) this.#member[value - rule.min] = 1;
    const sorted: number[] = [];
    this.#member.forEach((member, index) => {
      if (member === 1) sorted.push(index + rule.min);
    });
    this.values = sorted;
  }

  has(value: number): boolean {
    return this.#member[value - this.#min] === 1;
  }

  isFull(): boolean {
    return this.values.length === this.#member.length;
  }
}

interface ParsedExpression {
  readonly seconds: ValueSet;
  readonly minutes: ValueSet;
  readonly hours: ValueSet;
  readonly months: ValueSet;
  readonly years: ValueSet;
  readonly days: DaySpec;
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

function fail(rule: FieldRule | undefined, reason: string): never {
  throw new QuartzCronError(rule === undefined ? reason : `${rule.name}: ${reason}`);
}

function isName(token: string): boolean {
  return /^[A-Z]+$/.test(token);
}

/** Explains why `token` (part of `item`) is neither a number nor a name of the field. */
function badToken(rule: FieldRule, token: string, item: string): never {
  if (token.includes('?')) {
    fail(
      rule,
      `'?' must be the whole field, and only day-of-month or day-of-week may be '?' (got '${item}')`,
    );
  }
  if (token.includes('#')) fail(rule, `'#' is only allowed in day-of-week (got '${item}')`);
  if (isName(token) && rule.names !== undefined) {
    fail(rule, `'${token}' is not a ${rule === MONTH ? 'month name (JAN-DEC)' : 'day name (SUN-SAT)'}`);
  }
  if (token.includes('W')) fail(rule, `'W' is only allowed in day-of-month (got '${item}')`);
  if (token.includes('L')) fail(rule, `'L' is only allowed in day-of-month and day-of-week (got '${item}')`);
  if (isName(token)) fail(rule, `names are not allowed here (got '${item}')`);
  return fail(rule, `'${item}' is not a valid value`);
}

function parseValue(rule: FieldRule, token: string, item: string): number {
  if (/^\d+$/.test(token)) {
    const value = Number(token);
    if (value < rule.min || value > rule.max) {
      fail(rule, `value ${value} is out of range ${rule.min}-${rule.max}${rule.hint}`);
    }
    return value;
  }
  const index = rule.names?.indexOf(token) ?? -1;
  if (index >= 0) return rule.min + index;
  return badToken(rule, token, item);
}

/** Values from start to end (wrapping past the maximum when end < start) every `step`, as Quartz does. */
function expandRange(rule: FieldRule, start: number, end: number, step: number, item: string): number[] {
  const values: number[] = [];
  if (end < start) {
    if (!rule.wraps) fail(rule, `range '${item}' runs backwards (${start} > ${end})`);
    const size = rule.max - rule.min + 1;
    for (let i = start; i <= end + size; i += step) values.push(((i - rule.min) % size) + rule.min);
  } else {
    for (let i = start; i <= end; i += step) values.push(i);
  }
  return values;
}

/** One comma-separated item without L, W or #: `*`, `a`, `a-b`, with an optional `/step`. */
function parseItem(rule: FieldRule, item: string): number[] {
  if (item === '') fail(rule, 'empty entry in a list');
  const slash = item.split('/');
  if (slash.length > 2) fail(rule, `'${item}' has more than one '/'`);
  const [base = '', stepText] = slash;
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText)) fail(rule, `'/' must be followed by a whole number (got '${item}')`);
    step = Number(stepText);
    if (step < 1) fail(rule, `step 0 in '${item}' is not allowed; a step must be at least 1`);
    if (rule.maxStep !== undefined && step > rule.maxStep) {
      fail(rule, `step ${step} in '${item}' is out of range 1-${rule.maxStep}`);
    }
  }
  // Quartz reads '/5' like '*/5'.
  if (base === '*' || (base === '' && stepText !== undefined)) {
    return expandRange(rule, rule.min, rule.max, step, item);
  }
  if (base === '') fail(rule, `'${item}' is not a valid value`);
  const dash = base.split('-');
  const [first = '', last] = dash;
  if (dash.length > 2 || first === '' || last === '') fail(rule, `'${item}' is not a valid value or range`);
  const start = parseValue(rule, first, item);
  const end = last === undefined ? undefined : parseValue(rule, last, item);
  if (last !== undefined && isName(first) !== isName(last)) {
    fail(rule, `range '${item}' mixes a name and a number`);
  }
  if (stepText !== undefined && (isName(first) || (last !== undefined && isName(last)))) {
    // Quartz parses the name (range) and silently ignores everything after it.
    fail(rule, `a step after a name ('${item}') is not supported (Quartz ignores it); use numbers`);
  }
  if (end === undefined) {
    return stepText === undefined ? [start] : expandRange(rule, start, rule.max, step, item);
  }
  return expandRange(rule, start, end, step, item);
}

function parseList(rule: FieldRule, field: string): ValueSet {
  if (field === '?') {
    fail(rule, `'?' is only allowed in day-of-month and day-of-week`);
  }
  const values: number[] = [];
  for (const item of field.split(',')) values.push(...parseItem(rule, item));
  return new ValueSet(rule, values);
}

function parseDayOfMonth(field: string): DaySpec {
  const items = field.split(',');
  if (!items.some(item => /[LW]/.test(item))) {
    return { kind: 'days-of-month', days: parseList(DAY_OF_MONTH, field) };
  }
  if (items.length > 1) {
    fail(DAY_OF_MONTH, `'L' and 'W' must stand alone, not in a list (got '${field}')`);
  }
  const last = /^L(?:-(\d+))?(W?)$/.exec(field);
  if (last !== null) {
    const offset = last[1] === undefined ? 0 : Number(last[1]);
    if (offset > 30) fail(DAY_OF_MONTH, `offset ${offset} in '${field}' is out of range 0-30`);
    return { kind: 'last-day', offset, nearestWeekday: last[2] === 'W' };
  }
  const weekday = /^(\d+)W$/.exec(field);
  if (weekday !== null) {
    const day = parseValue(DAY_OF_MONTH, weekday[1] ?? '', field);
    return { kind: 'nearest-weekday', day };
  }
  if (field.includes('W')) {
    fail(DAY_OF_MONTH, `'W' must follow a single day (15W) or L (LW) (got '${field}')`);
  }
  return fail(DAY_OF_MONTH, `'L' must be written L, L-n, LW or L-nW (got '${field}')`);
}

function parseDayOfWeek(field: string): DaySpec {
  const items = field.split(',');
  // No day name contains an L.
  if (!items.some(item => item.includes('#') || item.includes('L'))) {
    return { kind: 'days-of-week', days: parseList(DAY_OF_WEEK, field) };
  }
  if (items.length > 1) {
    fail(DAY_OF_WEEK, `'L' and '#' must stand alone, not in a list (got '${field}')`);
  }
  if (field === 'L') return { kind: 'days-of-week', days: new ValueSet(DAY_OF_WEEK, [7]) };
  const last = /^(\d+|[A-Z]{3})L$/.exec(field);
  if (last !== null) {
    return { kind: 'last-weekday', weekday: parseValue(DAY_OF_WEEK, last[1] ?? '', field) };
  }
  const nth = /^(\d+|[A-Z]{3})#(\d+)$/.exec(field);
  if (nth !== null) {
    const weekday = parseValue(DAY_OF_WEEK, nth[1] ?? '', field);
    const occurrence = Number(nth[2]);
    if (occurrence < 1 || occurrence > 5) {
      fail(DAY_OF_WEEK, `occurrence ${occurrence} after '#' in '${field}' is out of range 1-5`);
    }
    return { kind: 'nth-weekday', weekday, nth: occurrence };
  }
  if (field.includes('#')) {
    fail(DAY_OF_WEEK, `'#' must be written day#n with n 1-5, e.g. 6#3 (got '${field}')`);
  }
  return fail(
    DAY_OF_WEEK,
    `'L' must stand alone (L = SAT) or follow a single day (6L = last Friday) (got '${field}')`,
  );
}

function parseExpression(tokens: readonly string[]): ParsedExpression {
  const [sec = '', min = '', hour = '', dom = '', month = '', dow = '', year = '*'] = tokens;
  const seconds = parseList(SECONDS, sec);
  const minutes = parseList(MINUTES, min);
  const hours = parseList(HOURS, hour);
  const domUnspecified = dom === '?';
  const dowUnspecified = dow === '?';
  const domSpec = domUnspecified ? undefined : parseDayOfMonth(dom);
  const months = parseList(MONTH, month);
  const dowSpec = dowUnspecified ? undefined : parseDayOfWeek(dow);
  const years = parseList(YEAR, year);
  if (domSpec !== undefined && dowSpec !== undefined) {
    fail(
      undefined,
      "day-of-month and day-of-week: one of them must be '?' (Quartz does not support specifying both)",
    );
  }
  const days = domSpec ?? dowSpec;
  if (days === undefined) {
    fail(undefined, "day-of-month and day-of-week: only one of them may be '?'");
  }
  return { seconds, minutes, hours, months, years, days };
}

// ---------------------------------------------------------------------------------------------
// Calendar days
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Translation to cron-parser
// ---------------------------------------------------------------------------------------------

/** Longest each month can be (February: 29). */
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function listOrStar(set: ValueSet, map: (value: number) => number = v => v): string {
  return set.isFull() ? '*' : set.values.map(map).join(',');
}

/**
 * The six-field cron-parser expression for the time of day (exact) and the days (exact or a
 * superset), or null when the expression can never fire (a day of month no listed month has).
 */
function toCronParser(parsed: ParsedExpression): string | null {
  const time = [listOrStar(parsed.seconds), listOrStar(parsed.minutes), listOrStar(parsed.hours)].join(' ');
  const months = listOrStar(parsed.months);
  const spec = parsed.days;
  let dom = '*';
  let dow = '*';
  switch (spec.kind) {
    case 'days-of-month': {
      const longest = Math.max(...parsed.months.values.map(m => MAX_DAYS_IN_MONTH[m - 1] ?? 31));
      if ((spec.days.values[0] ?? 32) > longest) return null;
      dom = listOrStar(spec.days);
      break;
    }
    case 'last-day':
      // cron-parser knows plain L; L-n and the W forms are decided by firstMatchingDay alone.
      if (spec.offset === 0 && !spec.nearestWeekday) dom = 'L';
      break;
    case 'nearest-weekday':
      break;
    case 'days-of-week':
      dow = listOrStar(spec.days, v => v - 1);
      break;
    case 'nth-weekday':
      dow = `${spec.weekday - 1}#${spec.nth}`;
      break;
    case 'last-weekday':
      dow = `${spec.weekday - 1}L`;
      break;
  }
  return `${time} ${dom} ${months} ${dow}`;
}

// ---------------------------------------------------------------------------------------------
// Time zones: wall-clock time <-> instant
// ---------------------------------------------------------------------------------------------

/**
 * Offsets of one IANA zone. Wall-clock times are handled as "local date-time encoded as UTC
 * milliseconds", which is also how cron-parser sees them (it runs with tz UTC). One instance per
 * zone is shared by all expressions (see zoneFor), so its offset cache serves every job.
 */
class Zone {
  readonly #format: Intl.DateTimeFormat;
  /** Offset at the start of each hour (key: instant / HOUR_MS), filled lazily. */
  readonly #hourStartOffsets = new Map<number, number>();

  constructor(timeZone: string) {
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
      if (this.#hourStartOffsets.size >= OFFSET_CACHE_LIMIT) this.#hourStartOffsets.clear();
      this.#hourStartOffsets.set(hour, offset);
    }
    return offset;
  }

  #exactOffsetAt(instant: number): number {
    const whole = instant - mod(instant, 1000);
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

const zones = new Map<string, Zone>();

function zoneFor(timeZone: string): Zone {
  let zone = zones.get(timeZone);
  if (zone === undefined) {
    try {
      // Intl would quietly use the process's zone for a missing one.
      if (typeof timeZone !== 'string' || timeZone === '') throw new RangeError('no time zone');
      zone = new Zone(timeZone);
    } catch {
      throw new QuartzCronError(`time zone: '${timeZone}' is not a known IANA time zone`);
    }
    zones.set(timeZone, zone);
  }
  return zone;
}

/**
 * cron-parser expressions by translated text. Sharing is safe: an instance is only used inside a
 * synchronous next() call, which always resets it first.
 */
const timeOfDayParsers = new Map<string, CronExpression>();

function timeOfDayParser(translated: string): CronExpression {
  let parser = timeOfDayParsers.get(translated);
  if (parser === undefined) {
    try {
      parser = CronExpressionParser.parse(translated, { tz: 'UTC', currentDate: 0 });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new QuartzCronError(`cannot be evaluated (cron-parser refused '${translated}': ${reason})`);
    }
    if (timeOfDayParsers.size >= PARSER_CACHE_LIMIT) timeOfDayParsers.clear();
    timeOfDayParsers.set(translated, parser);
  }
  return parser;
}

// ---------------------------------------------------------------------------------------------
// The compiled expression
// ---------------------------------------------------------------------------------------------

class CompiledQuartzCron implements QuartzCron {
  readonly expression: string;
  readonly timeZone: string;
  readonly #parsed: ParsedExpression;
  readonly #zone: Zone;
  /** null: the expression can never fire. */
  readonly #timeOfDay: CronExpression | null;
  readonly #lastYear: number;
  /** Milliseconds from midnight to the last time of day the expression matches. */
  readonly #lastTimeOfDay: number;

  constructor(expression: string, timeZone: string, parsed: ParsedExpression, zone: Zone) {
    this.expression = expression;
    this.timeZone = timeZone;
    this.#parsed = parsed;
    this.#zone = zone;
    this.#lastYear = parsed.years.values[parsed.years.values.length - 1] ?? LAST_YEAR;
    const last = (set: ValueSet): number => set.values[set.values.length - 1] ?? 0;
    this.#lastTimeOfDay =
      ((last(parsed.hours) * 60 + last(parsed.minutes)) * 60 + last(parsed.seconds)) * 1000;
    const translated = toCronParser(parsed);
    this.#timeOfDay = translated === null ? null : timeOfDayParser(translated);
  }

  next(after: Date): Date | null {
    const afterMs = after.getTime();
    if (!Number.isFinite(afterMs)) throw new RangeError('QuartzCron.next: invalid Date');
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
      return new Date(instant);
    }
    throw new Error(
      `quartz-cron: no fire time found for '${this.expression}' after ${after.toISOString()} in ${MAX_ROUNDS} rounds`,
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

/**
 * Compiled expressions by normalised text and zone. They are immutable from the outside (next()
 * keeps no state between calls), so jobs with the same schedule share one.
 */
const compiledCache = new Map<string, CompiledQuartzCron>();

/**
 * Parses and validates a Quartz cron expression for evaluation in an IANA time zone.
 * @throws QuartzCronError with a message naming the offending field.
 */
export function compileQuartzCron(expression: string, timeZone: string): QuartzCron {
  const upper = expression.trim().toUpperCase();
  const tokens = upper === '' ? [] : upper.split(/\s+/);
  if (tokens.length !== 6 && tokens.length !== 7) {
    throw new QuartzCronError(
      `expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), got ${tokens.length}`,
    );
  }
  const normalised = tokens.join(' ');
  const key = `${normalised}\u0000${timeZone}`;
  let compiled = compiledCache.get(key);
  if (compiled === undefined) {
    const parsed = parseExpression(tokens);
    compiled = new CompiledQuartzCron(normalised, timeZone, parsed, zoneFor(timeZone));
    if (compiledCache.size >= COMPILED_CACHE_LIMIT) compiledCache.clear();
    compiledCache.set(key, compiled);
  }
  return compiled;
}
