import { createChannel, createClient, Metadata, type Channel, type Client } from 'nice-grpc';
import { AdminServiceDefinition, type JobSpec } from '@jobstream/proto/admin';
import {
  BlockStrategy,
  GlueType,
  MisfireStrategy,
  RouteStrategy,
  ScheduleType,
} from '@jobstream/proto/types';
import type { ChaosParam } from './record.js';

export type AdminClient = Client<typeof AdminServiceDefinition>;

export const ALARM_EMAIL = 'ops@chaos.test';

export function adminClient(address: string, token: string): { client: AdminClient; channel: Channel } {
  const channel = createChannel(address);
  const client = createClient(AdminServiceDefinition, channel, {
    '*': { metadata: Metadata({ authorization: `Bearer ${token}` }), deadline: 5_000 } as object,
  });
  return { client, channel };
}

/** A soak job: what it is called in the report, and how it is set up. */
export interface SoakJob {
  readonly name: string;
  readonly spec: Partial<JobSpec>;
  readonly param: ChaosParam;
  /** Names of jobs (in this list) triggered when this one succeeds. */
  readonly children?: readonly string[];
  /** Period of a CRON or FIX_RATE schedule: planned fires are checked one by one. */
  readonly periodMs?: number;
}

const cron = (expression: string) => ({
  scheduleType: ScheduleType.SCHEDULE_TYPE_CRON,
  scheduleConf: expression,
});
const fixRate = (seconds: number) => ({
  scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
  scheduleConf: String(seconds),
});
const fixDelay = (seconds: number) => ({
  scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_DELAY,
  scheduleConf: String(seconds),
});
const manual = { scheduleType: ScheduleType.SCHEDULE_TYPE_NONE, scheduleConf: '' };
const retry = (count: number, delayMs: number) => ({
  failRetryCount: count,
  failRetryDelay: { seconds: String(Math.floor(delayMs / 1000)), nanos: (delayMs % 1000) * 1_000_000 },
});

/**
 * The soak's mix: every schedule type, every routing strategy the issue names, each block
 * strategy, retries with a delay, child jobs, timeouts, handlers that fail, sleep or
 * ignore their abort signal. Loads stay small: the point is faults, not throughput.
 */
export const SOAK_JOBS: readonly SoakJob[] = [
  {
    name: 'cron-1s',
    spec: { ...cron('* * * * * ?'), routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND },
    param: { mode: 'ok', ms: 200 },
    periodMs: 1_000,
  },
  {
    name: 'cron-broadcast',
    spec: { ...cron('*/2 * * * * ?'), routeStrategy: RouteStrategy.ROUTE_STRATEGY_SHARDING_BROADCAST },
    param: { mode: 'ok', ms: 300 },
    children: ['child-of-broadcast'],
    periodMs: 2_000,
  },
  {
    name: 'rate-failover',
    spec: {
      ...fixRate(1),
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_FAILOVER,
      misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_FIRE_ONCE_NOW,
    },
    param: { mode: 'ok', ms: 100 },
    periodMs: 1_000,
  },
  {
    name: 'rate-busyover',
    spec: { ...fixRate(1), routeStrategy: RouteStrategy.ROUTE_STRATEGY_BUSYOVER },
    param: { mode: 'ok', ms: 1_500 },
    periodMs: 1_000,
  },
  {
    name: 'delay-serial',
    spec: { ...fixDelay(1), routeStrategy: RouteStrategy.ROUTE_STRATEGY_RANDOM },
    param: { mode: 'ok', ms: 400 },
  },
  {
    name: 'cron-discard-later',
    spec: {
      ...cron('* * * * * ?'),
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_CONSISTENT_HASH,
      blockStrategy: BlockStrategy.BLOCK_STRATEGY_DISCARD_LATER,
    },
    param: { mode: 'ok', ms: 1_600 },
    periodMs: 1_000,
  },
  {
    name: 'cron-cover-early',
    spec: {
      ...cron('* * * * * ?'),
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_LEAST_RECENTLY_USED,
      blockStrategy: BlockStrategy.BLOCK_STRATEGY_COVER_EARLY,
    },
    param: { mode: 'ok', ms: 1_600 },
    periodMs: 1_000,
  },
  {
    name: 'rate-fail-retry',
    spec: { ...fixRate(3), routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND, ...retry(2, 500) },
    param: { mode: 'fail', ms: 100 },
    periodMs: 3_000,
  },
  {
    name: 'rate-flaky-parent',
    spec: {
      ...fixRate(2),
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_LEAST_FREQUENTLY_USED,
      ...retry(1, 1_000),
    },
    param: { mode: 'failFirst', ms: 100 },
    children: ['child-of-flaky'],
    periodMs: 2_000,
  },
  {
    name: 'rate-timeout',
    spec: {
      ...fixRate(3),
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_ROUND,
      timeoutSeconds: 1,
      ...retry(1, 500),
    },
    param: { mode: 'ok', ms: 2_500 },
    periodMs: 3_000,
  },
  {
    name: 'rate-stubborn',
    spec: { ...fixRate(4), routeStrategy: RouteStrategy.ROUTE_STRATEGY_LAST, timeoutSeconds: 1 },
    param: { mode: 'stubborn', ms: 2_000 },
    periodMs: 4_000,
  },
  { name: 'child-of-flaky', spec: { ...manual }, param: { mode: 'ok', ms: 50 } },
  {
    name: 'child-of-broadcast',
    spec: { ...manual, routeStrategy: RouteStrategy.ROUTE_STRATEGY_RANDOM },
    param: { mode: 'ok', ms: 50 },
  },
  // Triggered and killed by the operator.
  { name: 'manual-sleep', spec: { ...manual }, param: { mode: 'ok', ms: 4_000 } },
  { name: 'manual-echo', spec: { ...manual, ...retry(1, 200) }, param: { mode: 'ok', ms: 50 } },
];

export function soakJobSpec(groupId: string, job: SoakJob, childIds: readonly string[]): JobSpec {
  return {
    groupId,
    description: `chaos soak: ${job.name}`,
    author: 'chaos',
    alarmEmail: ALARM_EMAIL,
    scheduleType: ScheduleType.SCHEDULE_TYPE_NONE,
    scheduleConf: '',
    timeZone: 'UTC',
    misfireStrategy: MisfireStrategy.MISFIRE_STRATEGY_DO_NOTHING,
    routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
    handler: 'chaos',
    param: JSON.stringify(job.param),
    blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
    timeoutSeconds: 0,
    failRetryCount: 0,
    glueType: GlueType.GLUE_TYPE_BEAN,
    glueSource: '',
    glueRemark: '',
    childJobIds: [...childIds],
    ...job.spec,
  };
}
