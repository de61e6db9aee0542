import {
  createChannel,
  createClient,
  Metadata,
  type Channel,
  type ChannelCredentials,
  type Client,
} from 'nice-grpc';
import { AdminApp } from '../../admin/src/app.js';
import { loadConfig, type AdminConfig } from '../../admin/src/config.js';
import { AdminServiceDefinition, LogStatus, type Log } from '@jobstream/proto/admin';
import { peerChannelCredentials } from '../../admin/src/grpc/tls.js';
import { createLogger } from '../../admin/src/logger.js';
import { EVENT_CEILING_MS } from './ceiling.js';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export type AdminClient = Client<typeof AdminServiceDefinition>;

export interface TestAdmin {
  app: AdminApp;
  address: string;
  client: AdminClient;
  stop(): Promise<void>;
}

/** An admin in this process on a free port, against the given database. */
export async function startTestAdmin(
  databaseUrl: string,
  overrides: Partial<AdminConfig> = {},
): Promise<TestAdmin> {
  const config = loadConfig(
    {
      DATABASE_URL: databaseUrl,
      JOBSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      JOBSTREAM_GRPC_PORT: '0',
      JOBSTREAM_METRICS_PORT: 'off',
      JOBSTREAM_CONSOLE_PORT: 'off',
      // Three missed beats close a stream: at 500 ms (as it was) a loaded machine missed
      // them and the admin closed live streams under tests that do not expect it.
      JOBSTREAM_BEAT_INTERVAL_MS: '2000',
      JOBSTREAM_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    },
    { overrides },
  );
  const app = new AdminApp(config, createLogger({ level: config.logLevel }));
  await app.start();
  // Under TLS, trusted like a peer admin (config.tls.ca, and its own certificate under mutual TLS).
  const { client, channel } = adminClient(
    app.grpcAddress,
    TEST_ADMIN_TOKEN,
    peerChannelCredentials(config.tls),
  );
  return {
    app,
    address: app.grpcAddress,
    client,
    async stop() {
      channel.close();
      await app.stop();
    },
  };
}

export function adminClient(
  address: string,
  token = TEST_ADMIN_TOKEN,
  credentials?: ChannelCredentials,
): { client: AdminClient; channel: Channel } {
  const channel = createChannel(address, credentials);
  const client = createClient(AdminServiceDefinition, channel, {
    '*': { metadata: Metadata({ authorization: `Bearer ${token}` }) },
  });
  return { client, channel };
}

/**
 * Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`
 * (a ceiling only a hang reaches: the wait ends as soon as the event happened).
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = EVENT_CEILING_MS, intervalMs = 25, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, intervalMs));
  }
}

/** Waits until a log is no longer RUNNING and returns it. */
export async function finishedLog(
  client: AdminClient,
  logId: string,
  timeoutMs = EVENT_CEILING_MS,
): Promise<Log> {
  return waitFor(
    async () => {
      const { log } = await client.getLog({ id: logId });
      return log && log.status !== LogStatus.LOG_STATUS_RUNNING ? log : undefined;
    },
    { what: `log ${logId} to finish`, timeoutMs },
  );
}
