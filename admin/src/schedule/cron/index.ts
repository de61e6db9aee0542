/**
 * Quartz cron expressions, as XXL-JOB users write them, evaluated in an IANA time zone.
 *
 * Start here; each layer depends only on the ones listed before it:
 *
 * - parse.ts: the syntax, and expression text -> the values each field selects (QuartzCronError).
 *   Validated here rather than by cron-parser, whose validation differs from Quartz's and whose
 *   messages do not follow our field naming.
 * - zone.ts: wall-clock time <-> instant in a zone, and the daylight-saving rules.
 * - time-of-day.ts: the translation to cron-parser, which picks the time of day within a day.
 * - calendar.ts: the matching days, and next(): days + time of day + zone -> the next fire time.
 * - compiler.ts: QuartzCronCompiler, which owns the caches (compiled expressions, cron-parser
 *   instances, zone offsets). There is no module-level state: whoever compiles schedules is
 *   handed the compiler app.ts creates.
 *
 * ## Compared with Quartz itself
 *
 * Checked against Quartz's own CronExpression (the 2.3.1 copy XXL-JOB embedded for years, and
 * 2.5) on tens of thousands of random expressions: fire times are identical in zones without a
 * transition, except where we chose otherwise:
 *
 * - Daylight saving: Java's lenient Calendar makes Quartz fire a repeated wall-clock time at its
 *   second occurrence and either shift a gap time by an hour (`0 30 2` -> 03:30) or skip it
 *   (`0 0/15 2`, or `0 24 0` on Santiago's midnight gap). We follow the rules in zone.ts instead.
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
export { QuartzCronError } from './parse.js';
export type { QuartzCron } from './calendar.js';
export { compileQuartzCron, QuartzCronCompiler } from './compiler.js';
