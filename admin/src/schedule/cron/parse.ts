/**
 * Quartz cron expression text -> the sets of values each field selects, validated the way Quartz
 * validates, with messages that name the field.
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
 */

export class QuartzCronError extends Error {
  override readonly name = 'QuartzCronError';
}

export const FIRST_YEAR = 1970;
export const LAST_YEAR = 2199;

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
export type DaySpec =
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
export class ValueSet {
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

export interface ParsedExpression {
  readonly seconds: ValueSet;
  readonly minutes: ValueSet;
  readonly hours: ValueSet;
  readonly months: ValueSet;
  readonly years: ValueSet;
  readonly days: DaySpec;
}

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

/**
 * The expression's fields, upper case, checked only for their count: the normalised text is the
 * cache key, so it is cheap to get before any field is parsed.
 */
export function splitIntoFields(expression: string): readonly string[] {
  const upper = expression.trim().toUpperCase();
  const fields = upper === '' ? [] : upper.split(/\s+/);
  if (fields.length !== 6 && fields.length !== 7) {
    throw new QuartzCronError(
      `expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), got ${fields.length}`,
    );
  }
  return fields;
}

/** @throws QuartzCronError naming the offending field. */
export function parseFields(fields: readonly string[]): ParsedExpression {
  const [sec = '', min = '', hour = '', dom = '', month = '', dow = '', year = '*'] = fields;
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
