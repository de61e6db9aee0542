import type { ScheduleType } from '../domain.js';
import { QuartzCronError, type QuartzCronCompiler } from './cron/index.js';

export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';
}

/** A compiled schedule: when a job fires on its own. */
export interface Schedule {
  readonly type: ScheduleType;
  readonly timeZone: string;
  /**
   * The first fire strictly after `after`, or null when the schedule never fires again
   * (NONE, or a cron expression whose years are over). FIX_RATE keeps its cadence
   * anchored to `anchor` (a previous planned fire) when given: fires stay on
   * anchor + k·N however late the question is asked.
   */
  nextAfter(after: Date, anchor?: Date): Date | null;
}

const MAX_FIX_SECONDS = 366 * 24 * 3600;

/**
 * Compiles a job's schedule, or throws ScheduleError with the reason. CRON schedules come from
 * `cronCompiler`, so that jobs sharing an expression or a zone share its cached work.
 */
export function compileSchedule(
  type: ScheduleType,
  conf: string,
  timeZone: string,
  cronCompiler: QuartzCronCompiler,
): Schedule {
  switch (type) {
    case 'NONE':
      return { type, timeZone, nextAfter: () => null };
    case 'CRON': {
      let cron;
      try {
        cron = cronCompiler.compile(conf, timeZone);
      } catch (error) {
        if (error instanceof QuartzCronError) throw new ScheduleError(error.message, { cause: error });
        throw error;
      }
      return { type, timeZone, nextAfter: after => cron.next(after) };
    }
    case 'FIX_RATE':
    case 'FIX_DELAY': {
      const seconds = Number(conf);
      if (!/^[0-9]+$/.test(conf) || seconds < 1 || seconds > MAX_FIX_SECONDS) {
        throw new ScheduleError(
          `an interval of 1 to ${MAX_FIX_SECONDS} whole seconds is required, got "${conf}"`,
        );
      }
      const periodMs = seconds * 1000;
      return {
        type,
        timeZone,
        nextAfter(after, anchor) {
          if (type === 'FIX_DELAY' || anchor === undefined || anchor > after) {
            return new Date(after.getTime() + periodMs);
          }
          const periods = Math.floor((after.getTime() - anchor.getTime()) / periodMs) + 1;
          return new Date(anchor.getTime() + periods * periodMs);
        },
      };
    }
  }
}

/** Whether an IANA time zone name is known to this runtime. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
