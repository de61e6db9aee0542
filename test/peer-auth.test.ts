import pg from 'pg';
import { createChannel, createClient, Metadata, Status, type Channel } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminPeerServiceDefinition } from '@jobstream/proto/peer';
import { startTestAdmin, TEST_ADMIN_TOKEN, type TestAdmin } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

/**
 * AdminPeerService reaches the executors whose streams an admin holds: only the admins of
 * the cluster may call it, with the secret they share in the database.
 */
describe('AdminPeerService accepts only the cluster secret', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let clusterSecret: string;
  const channels: Channel[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ secret: string }>('select secret from cluster_secret');
      clusterSecret = rows[0]!.secret;
    } finally {
      await client.end();
    }
  });

  afterAll(async () => {
    for (const channel of channels) channel.close();
    await admin?.stop();
    await database?.drop();
  });

  function peerClient(token: string) {
    const channel = createChannel(admin.address);
    channels.push(channel);
    return createClient(AdminPeerServiceDefinition, channel, {
      '*': { metadata: Metadata({ authorization: `Bearer ${token}` }) },
    });
  }

  const forwardNothing = (token: string) =>
    peerClient(token).forwardRunRequests({
      appName: 'nobody',
      instanceName: 'nobody-1',
      sessionId: '',
      deadlineMs: 1_000,
      runRequests: [],
    });

  it('refuses another token, even the operators’ admin token', async () => {
    for (const token of ['wrong', TEST_ADMIN_TOKEN, `${clusterSecret}x`, clusterSecret.slice(0, -1)]) {
      await expect(forwardNothing(token)).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    }
  });

  it('lets the cluster secret through to the request itself', async () => {
    // Past authentication, the empty forward is refused for what it is.
    await expect(forwardNothing(clusterSecret)).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('run_requests') as unknown,
    });
  });
});
