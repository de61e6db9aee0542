import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServiceDefinition } from '@jobstream/proto/admin';
import { ExecutorServiceDefinition } from '@jobstream/proto/executor';
import { startTestAdmin, TEST_ADMIN_TOKEN, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import {
  pythonGrpcAvailable,
  reflectCall,
  reflectDescribe,
  reflectList,
} from './support/python-reflection.js';

/**
 * grpcurl-style use from reflection alone, checked with an independent client: Python's
 * grpcio (C core), which resolves descriptors and their imports as strictly as grpcurl.
 */
describe.skipIf(!pythonGrpcAvailable())('reflection with an independent gRPC client', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  const headers = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it.each(['v1', 'v1alpha'] as const)('lists the services over reflection %s', async reflection => {
    const services = await reflectList(admin.address, { reflection });
    expect(services).toEqual(
      expect.arrayContaining([
        'jobstream.v1.AdminService',
        'jobstream.v1.ExecutorService',
        'grpc.health.v1.Health',
      ]),
    );
  });

  it('describes every AdminService method, resolving imported files by their real names', async () => {
    const description = await reflectDescribe(admin.address, 'jobstream.v1.AdminService');
    for (const method of Object.values(AdminServiceDefinition.methods)) {
      expect(description).toContain(`rpc ${method.name}(`);
    }
    const executor = await reflectDescribe(admin.address, 'jobstream.v1.ExecutorService');
    expect(executor).toContain(`rpc ${ExecutorServiceDefinition.methods.connect.name}(`);
  });

  it('calls methods whose messages use well-known types (Timestamp, FieldMask)', async () => {
    const created = await reflectCall(
      admin.address,
      'jobstream.v1.AdminService/CreateExecutorGroup',
      { spec: { appName: 'from-python', title: 'Created over reflection' } },
      { headers },
    );
    expect(created).toMatchObject({
      responses: [
        {
          group: { appName: 'from-python', createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown },
        },
      ],
    });
    const groupId = (created as { responses: [{ group: { id: string } }] }).responses[0].group.id;

    const updated = await reflectCall(
      admin.address,
      'jobstream.v1.AdminService/UpdateExecutorGroup',
      { id: groupId, spec: { title: 'Renamed over reflection' }, updateMask: 'title' },
      { headers },
    );
    expect(updated).toMatchObject({
      responses: [{ group: { appName: 'from-python', title: 'Renamed over reflection' } }],
    });

    const logs = await reflectCall(
      admin.address,
      'jobstream.v1.AdminService/ListLogs',
      { triggeredAfter: '2020-01-01T00:00:00Z', pageSize: 10 },
      { headers },
    );
    expect(logs).toEqual({ responses: [{}] });
  });

  it('reports the gRPC status of a refused call', async () => {
    const refused = await reflectCall(admin.address, 'jobstream.v1.AdminService/ListJobs', {});
    expect(refused).toMatchObject({ error: 'UNAUTHENTICATED' });
    const invalid = await reflectCall(
      admin.address,
      'jobstream.v1.AdminService/GetJob',
      { id: '0' },
      { headers },
    );
    expect(invalid).toMatchObject({
      error: 'INVALID_ARGUMENT',
      details: expect.stringContaining('id') as unknown,
    });
  });
});
