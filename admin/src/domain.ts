/**
 * The admin's domain types: what repositories return and services work with. Ids are
 * decimal strings. This module is the bottom layer: it imports nothing from the admin,
 * so the database schema and the wire mappers both build on it.
 */

export type AddressType = 'AUTO' | 'MANUAL';
export type ScheduleType = 'NONE' | 'CRON' | 'FIX_RATE' | 'FIX_DELAY';
export type MisfireStrategy = 'DO_NOTHING' | 'FIRE_ONCE_NOW';
export type RouteStrategy =
  | 'FIRST'
  | 'LAST'
  | 'ROUND'
  | 'RANDOM'
  | 'CONSISTENT_HASH'
  | 'LEAST_FREQUENTLY_USED'
  | 'LEAST_RECENTLY_USED'
  | 'FAILOVER'
  | 'BUSYOVER'
  | 'SHARDING_BROADCAST';
export type BlockStrategy = 'SERIAL_EXECUTION' | 'DISCARD_LATER' | 'COVER_EARLY';
export type GlueType = 'BEAN' | 'SHELL' | 'PYTHON' | 'NODEJS' | 'PHP' | 'POWERSHELL';
/** The glue types that are scripts (every kind but a registered handler). */
export type ScriptKind = Exclude<GlueType, 'BEAN'>;
/**
 * The script kinds a job may be saved with, a group may allow and an executor may run.
 * PHP stays in the protocol's enumeration, but no executor SDK runs it.
 */
export const SCRIPT_KINDS: readonly ScriptKind[] = ['SHELL', 'PYTHON', 'NODEJS', 'POWERSHELL'];

export function isScriptKind(type: GlueType): type is ScriptKind {
  return type !== 'BEAN';
}
export type TriggerStatus = 'STOPPED' | 'RUNNING';
export type TriggerType = 'SCHEDULE' | 'MANUAL' | 'RETRY' | 'PARENT' | 'MISFIRE';
export type DispatchOutcome = 'PENDING' | 'ACCEPTED' | 'FAILED' | 'SKIPPED';
export type RunOutcome = 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'KILLED' | 'COVERED' | 'SHUTDOWN' | 'LOST';
export type AlarmStatus = 'NONE' | 'LOCKED' | 'NOT_NEEDED' | 'SENT' | 'FAILED';
export type UserRole = 'ADMIN' | 'OPERATOR' | 'VIEWER';
export type UserTokenKind = 'SESSION' | 'API';

export interface ExecutorGroupSpec {
  appName: string;
  title: string;
  addressType: AddressType;
  addresses: string[];
  /** The script kinds its jobs may use; empty (the default) disables scripts for the group. */
  scriptKinds: ScriptKind[];
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
  scheduleType: ScheduleType;
  scheduleConf: string;
  timeZone: string;
  misfireStrategy: MisfireStrategy;
  routeStrategy: RouteStrategy;
  handler: string;
  param: string;
  blockStrategy: BlockStrategy;
  timeoutSeconds: number;
  failRetryCount: number;
  /** Wait before the first fail retry; each further retry waits twice as long (capped). */
  failRetryDelayMs: number;
  glueType: GlueType;
  glueSource: string;
  glueRemark: string;
  childJobIds: string[];
}

export interface Job extends JobSpec {
  id: string;
  triggerStatus: TriggerStatus;
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
  triggerType: TriggerType;
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
  dispatchOutcome: DispatchOutcome;
  triggerMessage: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  outcome: RunOutcome | null;
  handleMessage: string;
  alarmStatus: AlarmStatus;
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
  /** The executor's event-loop lag (its scheduling delay), as of the last beat. */
  eventLoopLagMs: number;
  /** The script kinds it opted into running at Register; empty: handler (BEAN) jobs only. */
  scriptKinds: ScriptKind[];
}

export interface RunResultInput {
  logId: string;
  attempt: number;
  outcome: RunOutcome;
  message: string;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** An operator account. The password hash stays in the repository layer. */
export interface User {
  id: string;
  username: string;
  role: UserRole;
  /** Executor groups an operator or viewer may act on (admins act on all). */
  groupIds: string[];
  /** May create and change job scripts in the groups it may operate; granted by an admin. */
  canEditScripts: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** One saved state of a script job's script. */
export interface JobScriptVersion {
  id: string;
  jobId: string;
  glueType: ScriptKind;
  source: string;
  remark: string;
  /** Who saved it: a username, or the static token's name. */
  author: string;
  createdAt: Date;
  /** Set on a version made by restoring another one. */
  restoredFromId: string | null;
}

/** A session or API token's description; the token itself is never stored. */
export interface UserToken {
  id: string;
  userId: string;
  kind: UserTokenKind;
  name: string;
  createdAt: Date;
  expiresAt: Date | null;
}
