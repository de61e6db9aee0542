import type { Db } from '../db/database.js';
import { InvalidInputError } from '../domain-errors.js';
import {
  DEFAULT_DASHBOARD_DAYS,
  loadDashboard,
  MAX_DASHBOARD_SPAN_DAYS,
  type Dashboard,
} from '../housekeeping/dashboard.js';
import { addDays, dayInZone, daysBetween } from '../housekeeping/days.js';

export interface DashboardServiceDependencies {
  db: Db;
  /** The zone whose calendar days the dashboard counts (the admin's default). */
  timeZone: string;
  now: () => Date;
}

/** Cluster-wide totals and runs per day. */
export class DashboardService {
  readonly #db: Db;
  readonly #timeZone: string;
  readonly #now: () => Date;

  constructor(dependencies: DashboardServiceDependencies) {
    this.#db = dependencies.db;
    this.#timeZone = dependencies.timeZone;
    this.#now = dependencies.now;
  }

  /**
   * Days `fromDay` to `toDay` (YYYY-MM-DD, already well-formed). Without `toDay`, up to
   * today; without `fromDay`, the week ending on `toDay`.
   */
  async load(days: { fromDay: string | undefined; toDay: string | undefined }): Promise<Dashboard> {
    const now = this.#now();
    const today = dayInZone(now, this.#timeZone);
    const toDay = days.toDay ?? today;
    const fromDay = days.fromDay ?? addDays(toDay, 1 - DEFAULT_DASHBOARD_DAYS);
    if (fromDay > toDay) {
      throw new InvalidInputError(`must not be after to_day (${toDay})`, { field: 'fromDay' });
    }
    if (daysBetween(fromDay, toDay) > MAX_DASHBOARD_SPAN_DAYS) {
      throw new InvalidInputError(
        `must be at most ${MAX_DASHBOARD_SPAN_DAYS} days after from_day (${fromDay})`,
        {
          field: 'toDay',
        },
      );
    }
    return loadDashboard(this.#db, { fromDay, toDay, today, timeZone: this.#timeZone, now });
  }
}
