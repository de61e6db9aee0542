import {
  BlockStrategy,
  GlueType,
  MisfireStrategy,
  RouteStrategy,
  RunOutcome,
  ScheduleType,
} from '@jobstream/proto/types';
import {
  AddressType,
  AlarmStatus,
  DispatchOutcome,
  LogStatus,
  TriggerStatus,
  TriggerType,
  UserRole,
} from '@jobstream/proto/admin';
import type * as domain from '../domain.js';

/**
 * Maps a proto enum (`RUN_OUTCOME_SUCCEEDED = 1`) to the domain's string values
 * (`'SUCCEEDED'`) by its prefix. UNSPECIFIED and unknown numbers map to undefined,
 * so callers decide between a default and INVALID_ARGUMENT.
 */
export class EnumCodec<D extends string, P extends number> {
  readonly #toDomain = new Map<number, D>();
  readonly #toProto = new Map<D, P>();
  readonly protoNames: readonly string[];

  constructor(values: Readonly<Record<string, P>>, prefix: string, domainValues: readonly D[]) {
    for (const [name, value] of Object.entries(values)) {
      const short = name.slice(prefix.length) as D;
      if (name.startsWith(prefix) && domainValues.includes(short)) {
        this.#toDomain.set(value, short);
        this.#toProto.set(short, value);
      }
    }
    for (const value of domainValues) {
      if (!this.#toProto.has(value)) throw new Error(`enum ${prefix}: no proto value for ${value}`);
    }
    this.protoNames = domainValues.map(value => `${prefix}${value}`);
  }

  toDomain(value: number): D | undefined {
    return this.#toDomain.get(value);
  }

  toProto(value: D): P {
    const proto = this.#toProto.get(value);
    if (proto === undefined) throw new Error(`no proto value for ${value}`);
    return proto;
  }
}

export const addressTypes = new EnumCodec<domain.AddressType, AddressType>(AddressType, 'ADDRESS_TYPE_', [
  'AUTO',
  'MANUAL',
]);
export const scheduleTypes = new EnumCodec<domain.ScheduleType, ScheduleType>(
  ScheduleType,
  'SCHEDULE_TYPE_',
  ['NONE', 'CRON', 'FIX_RATE', 'FIX_DELAY'],
);
export const misfireStrategies = new EnumCodec<domain.MisfireStrategy, MisfireStrategy>(
  MisfireStrategy,
  'MISFIRE_STRATEGY_',
  ['DO_NOTHING', 'FIRE_ONCE_NOW'],
);
export const routeStrategies = new EnumCodec<domain.RouteStrategy, RouteStrategy>(
  RouteStrategy,
  'ROUTE_STRATEGY_',
  [
    'FIRST',
    'LAST',
    'ROUND',
    'RANDOM',
    'CONSISTENT_HASH',
    'LEAST_FREQUENTLY_USED',
    'LEAST_RECENTLY_USED',
    'FAILOVER',
    'BUSYOVER',
    'SHARDING_BROADCAST',
  ],
);
export const blockStrategies = new EnumCodec<domain.BlockStrategy, BlockStrategy>(
  BlockStrategy,
  'BLOCK_STRATEGY_',
  ['SERIAL_EXECUTION', 'DISCARD_LATER', 'COVER_EARLY'],
);
export const glueTypes = new EnumCodec<domain.GlueType, GlueType>(GlueType, 'GLUE_TYPE_', [
  'BEAN',
  'SHELL',
  'PYTHON',
  'NODEJS',
  'PHP',
  'POWERSHELL',
]);
export const triggerStatuses = new EnumCodec<domain.TriggerStatus, TriggerStatus>(
  TriggerStatus,
  'TRIGGER_STATUS_',
  ['STOPPED', 'RUNNING'],
);
export const triggerTypes = new EnumCodec<domain.TriggerType, TriggerType>(TriggerType, 'TRIGGER_TYPE_', [
  'SCHEDULE',
  'MANUAL',
  'RETRY',
  'PARENT',
  'MISFIRE',
]);
export const dispatchOutcomes = new EnumCodec<domain.DispatchOutcome, DispatchOutcome>(
  DispatchOutcome,
  'DISPATCH_OUTCOME_',
  ['PENDING', 'ACCEPTED', 'FAILED', 'SKIPPED'],
);
/** NONE (not failed, or not handled yet) has no proto value: it maps to UNSPECIFIED. */
export const alarmStatuses = new EnumCodec<Exclude<domain.AlarmStatus, 'NONE'>, AlarmStatus>(
  AlarmStatus,
  'ALARM_STATUS_',
  ['LOCKED', 'NOT_NEEDED', 'SENT', 'FAILED'],
);
export const logStatuses = new EnumCodec<domain.LogStatus, LogStatus>(LogStatus, 'LOG_STATUS_', [
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'SKIPPED',
]);
export const runOutcomes = new EnumCodec<domain.RunOutcome, RunOutcome>(RunOutcome, 'RUN_OUTCOME_', [
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'KILLED',
  'COVERED',
  'SHUTDOWN',
  'LOST',
]);
export const userRoles = new EnumCodec<domain.UserRole, UserRole>(UserRole, 'USER_ROLE_', [
  'ADMIN',
  'OPERATOR',
  'VIEWER',
]);
