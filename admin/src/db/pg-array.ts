/**
 * PostgreSQL array literals for `unnest` parameters, written here rather than by node-postgres:
 * its generic conversion (a regex escape per element and a local-time formatting of every
 * Date, with padStart per field) was the largest allocator on the hot path, about 15 % of
 * what the admin allocated per scheduled run. Every element is quoted unless it is digits
 * only, so no value, whatever an executor sent, can split into two elements.
 */
export type ArrayElement = string | number | boolean | Date | null | undefined;

const DIGITS = /^-?[0-9]+$/;
const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/** The text form of a one-dimensional array, for a parameter cast to `<type>[]`. */
export function pgArray(values: readonly ArrayElement[]): string {
  const instants = new InstantFormat();
  let text = '{';
  for (let index = 0; index < values.length; index += 1) {
    if (index > 0) text += ',';
    const value = values[index];
    text += value instanceof Date ? instants.quoted(value) : element(value);
  }
  return text + '}';
}

const DAY_MS = 86_400_000;
/** The instants whose ISO form has a four-digit year: 0000-01-01 to 9999-12-31. */
const FIRST_MS = -62_167_219_200_000;
const LAST_MS = 253_402_300_799_999;
const TWO_DIGITS = Array.from({ length: 60 }, (_, n) => String(n).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, n) => String(n).padStart(3, '0'));

/**
 * ISO-8601 UTC text of instants, as Date.toISOString writes it, several times faster: a
 * batch's instants share their day (its text is made once) and often their millisecond
 * (fires of one schedule), and toISOString was most of the cost of an array of them.
 */
class InstantFormat {
  #lastMs = Number.NaN;
  #lastText = '';
  #dayStart = Number.NaN;
  #dayText = '';

  quoted(date: Date): string {
    const ms = date.getTime();
    if (ms === this.#lastMs) return this.#lastText;
    // toISOString throws for an invalid Date, as it should: nothing is stored for it.
    if (!(ms >= FIRST_MS && ms <= LAST_MS)) return `"${date.toISOString()}"`;
    const dayStart = Math.floor(ms / DAY_MS) * DAY_MS;
    if (dayStart !== this.#dayStart) {
      this.#dayStart = dayStart;
      this.#dayText = new Date(dayStart).toISOString().slice(0, 11);
    }
    let rest = ms - dayStart;
    const hours = Math.floor(rest / 3_600_000);
    rest -= hours * 3_600_000;
    const minutes = Math.floor(rest / 60_000);
    rest -= minutes * 60_000;
    const seconds = Math.floor(rest / 1000);
    const millis = rest - seconds * 1000;
    const text = `"${this.#dayText}${TWO_DIGITS[hours]!}:${TWO_DIGITS[minutes]!}:${TWO_DIGITS[seconds]!}.${THREE_DIGITS[millis]!}Z"`;
    this.#lastMs = ms;
    this.#lastText = text;
    return text;
  }
}

function element(value: Exclude<ArrayElement, Date>): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') {
    if (DIGITS.test(value)) return value;
    return NEEDS_ESCAPE.test(value) ? `"${value.replace(ESCAPED, '\\$&')}"` : `"${value}"`;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`pgArray: ${value} is not a finite number`);
    return String(value);
  }
  return value ? 't' : 'f';
}
