import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { requireAdmin } from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import { parseDay } from '../../housekeeping/days.js';
import type { DashboardService } from '../../services/dashboard.js';
import { invalid, truncate } from '../validation.js';

export interface DashboardMethodsOptions {
  authenticator: Authenticator;
  dashboard: DashboardService;
}

type DashboardMethods = Pick<AdminServiceImplementation, 'getDashboard'>;

/** AdminService's dashboard: totals and runs per day over the whole cluster. */
export function createDashboardMethods(options: DashboardMethodsOptions): DashboardMethods {
  const { authenticator, dashboard } = options;

  return {
    async getDashboard(request, context) {
      // Its totals span every group (XXL-JOB showed them to every user, a known leak).
      requireAdmin(await authenticator.authenticate(context), 'read the dashboard, which covers every group');
      const day = (field: string, text: string): string | undefined =>
        text === ''
          ? undefined
          : (parseDay(text) ?? invalid(field, `must be a date as YYYY-MM-DD, got "${truncate(text)}"`));
      const toDay = day('to_day', request.toDay);
      const fromDay = day('from_day', request.fromDay);
      const loaded = await dashboard.load({ fromDay, toDay });
      return {
        jobCount: String(loaded.jobCount),
        runningJobCount: String(loaded.runningJobCount),
        groupCount: String(loaded.groupCount),
        executorsOnline: String(loaded.executorsOnline),
        days: loaded.days.map(d => ({
          day: d.day,
          runningCount: String(d.runningCount),
          succeededCount: String(d.succeededCount),
          failedCount: String(d.failedCount),
        })),
        runningCount: String(loaded.runningCount),
        succeededCount: String(loaded.succeededCount),
        failedCount: String(loaded.failedCount),
      };
    },
  };
}
