import type { Db } from '../db/database.js';
import {
  dashboardTotals,
  readReport,
  refreshReport,
  type DashboardTotals,
  type DayReportRow,
} from '../db/reports.repository.js';
import { addDays, dayRange } from './days.js';

/** The longest series GetDashboard returns: `to_day` at most this many days after `from_day`. */
export const MAX_DASHBOARD_SPAN_DAYS = 366;
/** Days of the series when `from_day` is not given: a week ending on `to_day`. */
export const DEFAULT_DASHBOARD_DAYS = 7;

/**
 * A report row of today or yesterday older than this is recounted before it is shown.
 * The housekeeper normally keeps them younger (every minute by default), so this only
 * matters when it is failing, slow, or configured to run rarely. It bounds the cost of a
 * dashboard polled by many screens to one recount per minute for the whole cluster,
 * since the rows, and their age, are shared.
 */
const MAX_REPORT_AGE_MS = 60_000;

export interface DashboardDay {
  day: string;
  runningCount: number;
  succeededCount: number;
  failedCount: number;
}

export interface Dashboard extends DashboardTotals {
  days: DashboardDay[];
  runningCount: number;
  succeededCount: number;
  failedCount: number;
}

/**
 * The dashboard for days `fromDay` to `toDay` of `timeZone` (validated by the caller).
 *
 * Days are read from the report rows the housekeepers keep, not counted from the logs:
 * older days' logs may be gone (retention) and counting a year of logs per request would
 * be costly. Today and yesterday, the days still changing, are recounted here first when
 * their rows are missing or stale, so a cluster that just started, or whose housekeeping
 * is failing, still answers with current numbers. Older days are never recounted here:
 * under a retention shorter than the report window their logs may already be deleted,
 * and a recount would overwrite their history with zeros.
 */
export async function loadDashboard(
  db: Db,
  request: { fromDay: string; toDay: string; today: string; timeZone: string; now: Date },
): Promise<Dashboard> {
  const { fromDay, toDay, today } = request;
  const rows = new Map<string, DayReportRow>();
  for (const row of await readReport(db, fromDay, toDay)) rows.set(row.day, row);

  const live = [addDays(today, -1), today].filter(day => day >= fromDay && day <= toDay);
  if (live.some(day => (rows.get(day)?.ageMs ?? Infinity) > MAX_REPORT_AGE_MS)) {
    for (const row of await refreshReport(db, live, request.timeZone)) rows.set(row.day, row);
  }

  const days = dayRange(fromDay, toDay).map(day => {
    const row = rows.get(day);
    return {
      day,
      runningCount: row?.runningCount ?? 0,
      succeededCount: row?.succeededCount ?? 0,
      failedCount: row?.failedCount ?? 0,
    };
  });
  const sum = (count: (day: DashboardDay) => number) => days.reduce((total, day) => total + count(day), 0);
  return {
    ...(await dashboardTotals(db, request.now)),
    days,
    runningCount: sum(day => day.runningCount),
    succeededCount: sum(day => day.succeededCount),
    failedCount: sum(day => day.failedCount),
  };
}
