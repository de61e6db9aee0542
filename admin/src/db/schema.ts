import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type {
  AddressType,
  AlarmStatus,
  BlockStrategy,
  DispatchOutcome,
  GlueType,
  MisfireStrategy,
  RouteStrategy,
  RunOutcome,
  ScheduleType,
  ScriptKind,
  TriggerStatus,
  TriggerType,
  UserRole,
  UserTokenKind,
} from '../domain.js';

/** Kysely table types. Only the repositories in this folder see them. */

type CreatedAt = ColumnType<Date, Date | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | undefined, Date>;
/** pg returns int8 as a string: ids stay strings end to end (proto int64 is a string in ts-proto too). */
type BigId = ColumnType<string, string | number, string | number>;

export interface ExecutorGroupTable {
  id: Generated<string>;
  app_name: string;
  title: string;
  address_type: AddressType;
  addresses: string[];
  access_token_hash: string;
  previous_token_hash: string | null;
  previous_token_expires_at: Date | null;
  script_kinds: ColumnType<ScriptKind[], ScriptKind[] | undefined, ScriptKind[]>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface JobTable {
  id: Generated<string>;
  group_id: BigId;
  description: string;
  author: string;
  alarm_email: string;
  schedule_type: ScheduleType;
  schedule_conf: string;
  time_zone: string;
  misfire_strategy: MisfireStrategy;
  route_strategy: RouteStrategy;
  handler: string;
  param: string;
  block_strategy: BlockStrategy;
  timeout_seconds: number;
  fail_retry_count: number;
  glue_type: GlueType;
  glue_source: string;
  glue_remark: string;
  glue_updated_at: UpdatedAt;
  child_job_ids: ColumnType<string[], (string | number)[], (string | number)[]>;
  fail_retry_delay_ms: Generated<number>;
  trigger_status: Generated<TriggerStatus>;
  last_trigger_at: Date | null;
  next_trigger_at: Date | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface TriggerLogTable {
  id: Generated<string>;
  job_id: BigId;
  group_id: BigId;
  trigger_type: TriggerType;
  executor_instance: string | null;
  executor_session_id: string | null;
  handler: string;
  param: string;
  shard_index: number;
  shard_total: number;
  attempt: Generated<number>;
  retry_of_log_id: BigId | null;
  scheduled_at: Date;
  triggered_at: Date;
  dispatch_outcome: DispatchOutcome;
  trigger_message: Generated<string>;
  started_at: Date | null;
  finished_at: Date | null;
  outcome: RunOutcome | null;
  handle_message: Generated<string>;
  result_received_at: Date | null;
  alarm_status: Generated<AlarmStatus>;
  claimed_by: string | null;
  retry_status: Generated<RetryStatusValue>;
  retry_at: Date | null;
  retry_log_id: BigId | null;
  broadcast_root_id: BigId | null;
  children_triggered_at: Date | null;
  unroutable_since: Date | null;
  /** When the claiming admin took the fire to send it; StopJob leaves taken fires alone. */
  taken_at: Date | null;
  /** The executor process (hostname/pid) the run request went to, while it may be in doubt. */
  executor_process: string | null;
}

/**
 * Fail-retry bookkeeping of a log, read and written only by the repositories: no domain
 * type carries it, so it stays with the schema.
 */
export type RetryStatusValue = 'NONE' | 'WAITING' | 'DONE' | 'NOT_NEEDED';

export interface ExecutorRegistryTable {
  app_name: string;
  instance_name: string;
  session_id: string;
  admin_instance_id: string;
  hostname: string;
  pid: number;
  sdk_name: string;
  sdk_version: string;
  handlers: string[];
  capacity: number;
  labels: ColumnType<Record<string, string>, string, string>;
  connected_at: Date;
  last_beat_at: Date;
  expires_at: Date;
  running_count: number;
  queued_count: number;
  unresponsive_log_ids: ColumnType<string[], (string | number)[] | undefined, (string | number)[]>;
  event_loop_lag_ms: ColumnType<number, number | undefined, number>;
  script_kinds: ColumnType<ScriptKind[], ScriptKind[] | undefined, ScriptKind[]>;
}

export interface LogReportTable {
  day: ColumnType<Date, string, string>;
  running_count: number;
  success_count: number;
  fail_count: number;
  updated_at: UpdatedAt;
}

export interface JobScriptVersionTable {
  id: Generated<string>;
  job_id: BigId;
  glue_type: ScriptKind;
  source: string;
  remark: string;
  author: string;
  created_at: ColumnType<Date, Date | undefined, never>;
  /** Not a foreign key: it keeps naming the restored version after pruning. */
  restored_from_id: BigId | null;
}

export interface AppUserTable {
  id: Generated<string>;
  username: string;
  password_hash: string;
  role: UserRole;
  group_ids: ColumnType<string[], (string | number)[], (string | number)[]>;
  can_edit_scripts: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface UserTokenTable {
  id: Generated<string>;
  user_id: BigId;
  kind: UserTokenKind;
  name: string;
  token_hash: string;
  created_at: CreatedAt;
  expires_at: Date | null;
}

export interface ClusterSecretTable {
  id: ColumnType<number, number | undefined, never>;
  secret: string;
}

export interface AdminLockTable {
  name: string;
  holder: string | null;
  expires_at: Date | null;
}

export interface AdminInstanceTable {
  id: string;
  grpc_address: string;
  started_at: ColumnType<Date, Date | undefined, never>;
  expires_at: Date;
}

export interface Database {
  admin_instance: AdminInstanceTable;
  executor_group: ExecutorGroupTable;
  job: JobTable;
  trigger_log: TriggerLogTable;
  executor_registry: ExecutorRegistryTable;
  log_report: LogReportTable;
  job_script_version: JobScriptVersionTable;
  app_user: AppUserTable;
  user_token: UserTokenTable;
  cluster_secret: ClusterSecretTable;
  admin_lock: AdminLockTable;
}

export type ExecutorGroupRow = Selectable<ExecutorGroupTable>;
export type JobRow = Selectable<JobTable>;
export type NewJobRow = Insertable<JobTable>;
export type JobUpdate = Updateable<JobTable>;
export type TriggerLogRow = Selectable<TriggerLogTable>;
export type NewTriggerLogRow = Insertable<TriggerLogTable>;
export type ExecutorRegistryRow = Selectable<ExecutorRegistryTable>;
export type JobScriptVersionRow = Selectable<JobScriptVersionTable>;
