/**
 * The time of day within a matching calendar day comes from cron-parser, run with `tz: 'UTC'` over
 * the wall-clock timeline (see zone.ts). This module translates a parsed Quartz expression into
 * the six-field cron-parser expression that does it: seconds, minutes and hours as explicit lists,
 * the month, and, where cron-parser reads them the same way, the day fields (day lists, `L`,
 * day-of-week lists renumbered to 0-6, `n#k` -> `(n-1)#k`, `nL` -> `(n-1)L`). Forms it lacks are
 * given to it as `*` (a superset) and decided by calendar.ts, which also checks every cron-parser
 * candidate against the Quartz fields before using it.
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
 */
import { CronExpressionParser } from 'cron-parser';
import type { CronExpression } from 'cron-parser';
import { QuartzCronError, type ParsedExpression, type ValueSet } from './parse.js';

/** Longest each month can be (February: 29). */
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function listOrStar(set: ValueSet, map: (value: number) => number = v => v): string {
  return set.isFull() ? '*' : set.values.map(map).join(',');
}

/**
 * The six-field cron-parser expression for the time of day (exact) and the days (exact or a
 * superset), or null when the expression can never fire (a day of month no listed month has).
 */
export function toCronParserExpression(parsed: ParsedExpression): string | null {
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

/** @throws QuartzCronError when cron-parser refuses the translation. */
export function compileTimeOfDay(translated: string): CronExpression {
  try {
    return CronExpressionParser.parse(translated, { tz: 'UTC', currentDate: 0 });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new QuartzCronError(`cannot be evaluated (cron-parser refused '${translated}': ${reason})`);
  }
}
