import type {
  AddressTypeValue,
  AlarmStatusValue,
  BlockStrategyValue,
  DispatchOutcomeValue,
  GlueTypeValue,
  MisfireStrategyValue,
  RouteStrategyValue,
  RunOutcomeValue,
  ScheduleTypeValue,
  TriggerStatusValue,
  TriggerTypeValue,
} from './db/schema.js';

/** The admin's domain types: what repositories return and services work with. Ids are decimal strings. */

export type {
  AddressTypeValue as AddressType,
  AlarmStatusValue as AlarmStatus,
  BlockStrategyValue as BlockStrategy,
  DispatchOutcomeValue as DispatchOutcome,
  GlueTypeValue as GlueType,
  MisfireStrategyValue as MisfireStrategy,
  RouteStrategyValue as RouteStrategy,
  RunOutcomeValue as RunOutcome,
  ScheduleTypeValue as ScheduleType,
  TriggerStatusValue as TriggerStatus,
  TriggerTypeValue as TriggerType,
};

export interface ExecutorGroupSpec {
  appName: string;
  title: string;
  addressType: AddressTypeValue;
  addresses: string[];
}

export interface ExecutorGroup extends ExecutorGroupSpec {
  id: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface JobSpec {
  groupId: string;
  description: string;
  author: string;
  alarmEmail: string;
  scheduleType: ScheduleTypeValue;
  scheduleConf: string;
  timeZone: string;
  misfireStrategy: MisfireStrategyValue;
  routeStrategy: RouteStrategyValue;
  handler: string;
  param: string;
  blockStrategy: BlockStrategyValue;
  timeoutSeconds: number;
  failRetryCount: number;
  /** Wait before the first fail retry; each further retry waits twice as long (capped). */
  failRetryDelayMs: number;
  glueType: GlueTypeValue;
  glueSource: string;
  glueRemark: string;
  childJobIds: string[];
}

export interface Job extends JobSpec {
  id: string;
  triggerStatus: TriggerStatusValue;
  lastTriggerAt: Date | null;
  nextTriggerAt: Date | null;
  glueUpdatedAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

export interface TriggerLog {
  id: string;
  jobId: string;
  groupId: string;
  triggerType: TriggerTypeValue;
  executorInstance: string | null;
  executorSessionId: string | null;
  handler: string;
  param: string;
  shardIndex: number;
  shardTotal: number;
  attempt: number;
  retryOfLogId: string | null;
  scheduledAt: Date;
  triggeredAt: Date;
  dispatchOutcome: DispatchOutcomeValue;
  triggerMessage: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  outcome: RunOutcomeValue | null;
  handleMessage: string;
  alarmStatus: AlarmStatusValue;
}

export type LogStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'SKIPPED';

export function logStatus(log: Pick<TriggerLog, 'dispatchOutcome' | 'outcome'>): LogStatus {
  if (log.dispatchOutcome === 'SKIPPED') return 'SKIPPED';
  if (log.outcome === 'SUCCEEDED') return 'SUCCEEDED';
  if (log.outcome !== null || log.dispatchOutcome === 'FAILED') return 'FAILED';
  return 'RUNNING';
}

/** A connected executor as recorded in the shared registry. */
export interface ExecutorPresence {
  appName: string;
  instanceName: string;
  sessionId: string;
  adminInstanceId: string;
  hostname: string;
  pid: number;
  sdkName: string;
  sdkVersion: string;
  handlers: string[];
  capacity: number;
  labels: Record<string, string>;
  connectedAt: Date;
  lastBeatAt: Date;
  runningCount: number;
  queuedCount: number;
  /** Runs whose handler ignores its abort signal, as of the last beat. */
  unresponsiveLogIds: string[];
}

export interface RunResultInput {
  logId: string;
  attempt: number;
  outcome: RunOutcomeValue;
  message: string;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export type UserRole = 'ADMIN' | 'OPERATOR' | 'VIEWER';

/** An operator account. The password hash stays in the repository layer. */
export interface User {
  id: string;
  username: string;
  role: UserRole;
  /** Executor groups an operator or viewer may act on (admins act on all). */
  groupIds: string[];
  createdAt: Date;
  updatedAt: Date;
}

export type UserTokenKind = 'SESSION' | 'API';

/** A session or API token's description; the token itself is never stored. */
export interface UserToken {
  id: string;
  userId: string;
  kind: UserTokenKind;
  name: string;
  createdAt: Date;
  expiresAt: Date | null;
}
