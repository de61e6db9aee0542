import type { CronExpression } from 'cron-parser';
import { BoundedCache } from './bounded-cache.js';
import { CompiledQuartzCron, type QuartzCron } from './calendar.js';
import { parseFields, splitIntoFields } from './parse.js';
import { compileTimeOfDay, toCronParserExpression } from './time-of-day.js';
import { Zone } from './zone.js';

/** Distinct compiled (expression, zone) pairs kept before the cache starts over. */
const COMPILED_CACHE_LIMIT = 10_000;
/** Distinct translated expressions kept parsed before the cache starts over. */
const TIME_OF_DAY_CACHE_LIMIT = 10_000;
/** Well above the number of IANA zones; only spelling variants (Intl ignores case) could reach it. */
const ZONE_CACHE_LIMIT = 1_000;

/**
 * Compiles Quartz cron expressions and keeps what compilations share: compiled expressions,
 * cron-parser instances, and per zone the cache of hourly UTC offsets. The scheduler computes next
 * fire times for many jobs over and over, so one instance should serve the whole process (app.ts
 * creates it and hands it to whoever compiles schedules); every cache is bounded.
 */
export class QuartzCronCompiler {
  /** Keyed by normalised expression and zone: jobs with the same schedule share one. */
  readonly #compiled = new BoundedCache<string, CompiledQuartzCron>(COMPILED_CACHE_LIMIT);
  /**
   * Keyed by translated text. Sharing is safe: an instance is only used inside a synchronous
   * next() call, which always resets it first.
   */
  readonly #timeOfDay = new BoundedCache<string, CronExpression>(TIME_OF_DAY_CACHE_LIMIT);
  readonly #zones = new BoundedCache<string, Zone>(ZONE_CACHE_LIMIT);

  /**
   * Parses and validates a Quartz cron expression for evaluation in an IANA time zone.
   * @throws QuartzCronError with a message naming the offending field.
   */
  compile(expression: string, timeZone: string): QuartzCron {
    const fields = splitIntoFields(expression);
    const normalised = fields.join(' ');
    const key = `${normalised}\u0000${timeZone}`;
    let compiled = this.#compiled.get(key);
    if (compiled === undefined) {
      const parsed = parseFields(fields);
      const zone = this.#zoneFor(timeZone);
      const translated = toCronParserExpression(parsed);
      const timeOfDay = translated === null ? null : this.#timeOfDayFor(translated);
      compiled = new CompiledQuartzCron(normalised, timeZone, parsed, zone, timeOfDay);
      this.#compiled.set(key, compiled);
    }
    return compiled;
  }

  #zoneFor(timeZone: string): Zone {
    let zone = this.#zones.get(timeZone);
    if (zone === undefined) {
      zone = new Zone(timeZone);
      this.#zones.set(timeZone, zone);
    }
    return zone;
  }

  #timeOfDayFor(translated: string): CronExpression {
    let timeOfDay = this.#timeOfDay.get(translated);
    if (timeOfDay === undefined) {
      timeOfDay = compileTimeOfDay(translated);
      this.#timeOfDay.set(translated, timeOfDay);
    }
    return timeOfDay;
  }
}

/**
 * Compiles one expression with caches of its own, shared with nothing: for a one-off. Code that
 * compiles again and again takes a QuartzCronCompiler instead.
 * @throws QuartzCronError with a message naming the offending field.
 */
export function compileQuartzCron(expression: string, timeZone: string): QuartzCron {
  return new QuartzCronCompiler().compile(expression, timeZone);
}
