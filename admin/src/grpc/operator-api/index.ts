import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import type { Authenticator } from '../auth.js';
import type { AccountsService } from '../../services/accounts.js';
import type { DashboardService } from '../../services/dashboard.js';
import type { ExecutorsService } from '../../services/executors.js';
import type { GroupsService } from '../../services/groups.js';
import type { JobsService } from '../../services/jobs.js';
import type { LogsService } from '../../services/logs.js';
import { createAccountMethods } from './accounts.js';
import { createDashboardMethods } from './dashboard.js';
import { createExecutorMethods } from './executors.js';
import { createGroupMethods } from './groups.js';
import { createJobMethods } from './jobs.js';
import { createLogMethods } from './logs.js';
import type { QuartzCronCompiler } from '../../schedule/cron/index.js';
import type { ScriptLimits } from '../job-spec.js';

export interface OperatorApiOptions {
  authenticator: Authenticator;
  accounts: AccountsService;
  dashboard: DashboardService;
  executors: ExecutorsService;
  groups: GroupsService;
  jobs: JobsService;
  logs: LogsService;
  /** Compiles the cron expressions of specs while they are read (the scheduler's own). */
  cronCompiler: QuartzCronCompiler;
  /** The zone of schedules that name none. */
  defaultTimeZone: string;
  /** What the admin's configuration allows of scripts. */
  scriptLimits: ScriptLimits;
  /** How long an executor has to answer a log read or a kill. */
  requestDeadlineMs: number;
}

/**
 * AdminService: the operator API, one file per resource. Every method authenticates the
 * caller first, then checks its role and group grants against every object the call
 * touches, and leaves the work to the application services.
 */
export function createAdminService(options: OperatorApiOptions): AdminServiceImplementation {
  return {
    ...createAccountMethods(options),
    ...createGroupMethods(options),
    ...createJobMethods(options),
    ...createLogMethods(options),
    ...createExecutorMethods(options),
    ...createDashboardMethods(options),
  };
}
