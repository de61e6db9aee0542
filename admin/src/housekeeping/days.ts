/**
 * Calendar days as 'YYYY-MM-DD' strings. Report rows, dashboard requests and retention
 * all speak in days of the admin's default time zone, and a plain string compares,
 * serialises and binds to a PostgreSQL `date` without any time-zone conversion on the
 * way (pg would turn a `date` into a JS Date at the *process's* local midnight).
 */

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;
const MS_PER_DAY = 86_400_000;

/**
 * The day as a UTC midnight Date: calendar arithmetic on it is plain millisecond
 * arithmetic, with no DST in the way. setUTCFullYear, not Date.UTC, because Date.UTC
 * maps years 0 to 99 to 1900 to 1999.
 */
function utcMidnight(year: number, month: number, day: number): Date {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date;
}

function format(date: Date): string {
  const year = String(date.getUTCFullYear()).padStart(4, '0');
  const month = String(date.getUTCMonth() + 1).padStart(2, '0');
  const day = String(date.getUTCDate()).padStart(2, '0');
  return `${year}-${month}-${day}`;
}

function toUtcMidnight(day: string): Date {
  const match = DAY.exec(day);
  if (!match) throw new RangeError(`not a day: "${day}"`);
  return utcMidnight(Number(match[1]), Number(match[2]), Number(match[3]));
}

/**
 * A real calendar day written as YYYY-MM-DD, or undefined. Years start at 1000 so that
 * every accepted day, and the week before it, is a four-digit year PostgreSQL accepts
 * (it has no year 0).
 */
export function parseDay(text: string): string | undefined {
  const match = DAY.exec(text);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (year < 1000) return undefined;
  // An impossible day (02-30) rolls over into the next month and no longer round-trips.
  return format(utcMidnight(year, month, day)) === text ? text : undefined;
}

export function addDays(day: string, days: number): string {
  return format(new Date(toUtcMidnight(day).getTime() + days * MS_PER_DAY));
}

/** How many days `to` is after `from` (negative when before). */
export function daysBetween(from: string, to: string): number {
  return Math.round((toUtcMidnight(to).getTime() - toUtcMidnight(from).getTime()) / MS_PER_DAY);
}

/** Every day from `from` to `to`, both included, oldest first. */
export function dayRange(from: string, to: string): string[] {
  const days: string[] = [];
  for (let day = from; day <= to; day = addDays(day, 1)) days.push(day);
  return days;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar day an instant falls on in `timeZone`. */
export function dayInZone(instant: Date, timeZone: string): string {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    formatters.set(timeZone, formatter);
  }
  const parts = formatter.formatToParts(instant);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find(p => p.type === type)?.value ?? '';
  return `${part('year').padStart(4, '0')}-${part('month')}-${part('day')}`;
}
