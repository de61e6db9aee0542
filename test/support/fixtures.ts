import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JobSpec } from '@jobstream/proto/admin';
import { BlockStrategy, RouteStrategy, ScheduleType } from '@jobstream/proto/types';
import { Executor } from '../../executor-sdk/src/index.js';
import { registerFixtureHandlers } from '../fixtures/handlers.js';
import type { JobSpec as StoredJobSpec } from '../../admin/src/domain.js';
import type { AdminClient } from './admin.js';

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `jobstream-${prefix}-`));
}

/** Creates an AUTO executor group; returns its id and access token. */
export async function createGroup(
  client: AdminClient,
  appName: string,
): Promise<{ groupId: string; token: string }> {
  const created = await client.createExecutorGroup({ spec: { appName, title: `${appName} executors` } });
  return { groupId: created.group!.id, token: created.accessToken };
}

export function jobSpec(groupId: string, handler: string, overrides: Partial<JobSpec> = {}): JobSpec {
  return {
    groupId,
    description: `runs ${handler}`,
    author: 'test',
    alarmEmail: '',
    scheduleType: ScheduleType.SCHEDULE_TYPE_NONE,
    scheduleConf: '',
    timeZone: '',
    misfireStrategy: 0,
    routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
    handler,
    param: '',
    blockStrategy: BlockStrategy.BLOCK_STRATEGY_SERIAL_EXECUTION,
    timeoutSeconds: 0,
    failRetryCount: 0,
    glueType: 0,
    glueSource: '',
    glueRemark: '',
    childJobIds: [],
    ...overrides,
  };
}

/**
 * A job as the admin's repository stores it (for tests that write to the database
 * directly): a FIRST-routed, serial BEAN job with no schedule, retries or children.
 */
export function storedJobSpec(groupId: string, overrides: Partial<StoredJobSpec> = {}): StoredJobSpec {
  return {
    groupId,
    description: 'a test job',
    author: 'test',
    alarmEmail: '',
    scheduleType: 'NONE',
    scheduleConf: '',
    timeZone: '',
    misfireStrategy: 'DO_NOTHING',
    routeStrategy: 'FIRST',
    handler: 'work',
    param: '',
    blockStrategy: 'SERIAL_EXECUTION',
    timeoutSeconds: 0,
    failRetryCount: 0,
    failRetryDelayMs: 0,
    glueType: 'BEAN',
    glueSource: '',
    glueRemark: '',
    childJobIds: [],
    ...overrides,
  };
}

export async function createJob(
  client: AdminClient,
  groupId: string,
  handler: string,
  overrides: Partial<JobSpec> = {},
): Promise<string> {
  const { job } = await client.createJob({ spec: jobSpec(groupId, handler, overrides) });
  return job!.id;
}

/** An executor in this process with the fixture handlers, started (welcomed by an admin). */
export async function startFixtureExecutor(options: {
  adminAddresses: string[];
  appName: string;
  accessToken: string;
  instanceName: string;
  onEvent?: (event: Record<string, unknown>) => void;
}): Promise<Executor> {
  const executor = new Executor({
    adminAddresses: options.adminAddresses,
    appName: options.appName,
    accessToken: options.accessToken,
    instanceName: options.instanceName,
    dataDir: await tempDir(options.instanceName),
  });
  registerFixtureHandlers(executor, options.onEvent ?? (() => undefined));
  await executor.start();
  return executor;
}
