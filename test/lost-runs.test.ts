import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Log } from '@jobstream/proto/admin';
import { AlarmStatus, DispatchOutcome, TriggerType } from '@jobstream/proto/admin';
import { RouteStrategy, RunOutcome } from '@jobstream/proto/types';
import { startTestAdmin, waitFor, type TestAdmin } from './support/admin.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';
import { startExecutorProcess, type ChildTs } from './support/processes.js';

interface ReceivedMail {
  to: string[];
  raw: string;
}

// Acceptance: an executor process killed mid-run. Its run is failed as lost after the
// grace period, retried on another executor, and alarmed once although two admins watch.
describe('lost runs (executor processes killed with SIGKILL)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let smtp: SMTPServer;
  const mails: ReceivedMail[] = [];
  const admins: TestAdmin[] = [];
  const executors: ChildTs[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, callback) {
        let raw = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (raw += chunk));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map(recipient => recipient.address), raw });
          callback();
        });
      },
    });
    await new Promise<void>(resolve => smtp.listen(0, '127.0.0.1', resolve));
    const smtpPort = (smtp.server.address() as AddressInfo).port;
    for (let i = 0; i < 2; i++) {
      admins.push(
        await startTestAdmin(database.url, {
          failureMonitorIntervalMs: 100,
          lostRunGraceMs: 1_000,
          smtp: {
            host: '127.0.0.1',
            port: smtpPort,
            secure: false,
            user: undefined,
            password: undefined,
            from: 'jobstream@example.test',
          },
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(executors.map(executor => executor.kill()));
    await Promise.all(admins.map(admin => admin.stop()));
    await new Promise<void>(resolve => smtp?.close(() => resolve()));
    await database?.drop();
  });

  it('fails the run as lost after the grace period, retries it on another executor and alarms once', async () => {
    const [adminA, adminB] = admins as [TestAdmin, TestAdmin];
    const client = adminA.client;
    const { groupId, token } = await createGroup(client, 'fragile');
    // One executor on each admin: the run's executor and the retry's are held by different admins.
    for (const [name, admin] of [
      ['fragile-a', adminA],
      ['fragile-b', adminB],
    ] as const) {
      executors.push(
        await startExecutorProcess({
          adminAddresses: [admin.address],
          appName: 'fragile',
          accessToken: token,
          instanceName: name,
          dataDir: await tempDir(name),
        }),
      );
    }
    await waitFor(
      async () =>
        (await client.listExecutors({ appName: 'fragile' })).executors.length === 2 ? true : undefined,
      { what: 'both executors online' },
    );
    const jobId = await createJob(client, groupId, 'sleep', {
      routeStrategy: RouteStrategy.ROUTE_STRATEGY_FIRST,
      failRetryCount: 1,
      alarmEmail: 'ops@example.test, oncall@example.test',
    });

    const [logId] = (await client.triggerJob({ jobId, param: '60000' })).logIds;
    const victim = executors[0]!;
    await victim.waitForJson(record => record.event === 'run-started' && record.logId === logId);
    const killedAt = Date.now();
    await victim.kill('SIGKILL');

    const lost = await waitFor(
      async () => {
        const { log } = await client.getLog({ id: logId! });
        return log?.outcome === RunOutcome.RUN_OUTCOME_LOST ? log : undefined;
      },
      { what: 'the run to be declared lost' },
    );
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(1_000);
    expect(lost.executorInstance).toBe('fragile-a');
    expect(lost.handleMessage).toMatch(/lost: executor fragile-a went away/);

    const retry = await waitFor(
      async () => {
        const { logs } = await client.listLogs({ jobId });
        return logs.find(
          (log: Log) =>
            log.retryOfLogId === logId &&
            log.dispatchOutcome !== 0 &&
            log.dispatchOutcome !== DispatchOutcome.DISPATCH_OUTCOME_PENDING,
        );
      },
      { what: 'the retry to be dispatched' },
    );
    expect(retry).toMatchObject({
      triggerType: TriggerType.TRIGGER_TYPE_RETRY,
      attempt: 2,
      param: '60000',
      executorInstance: 'fragile-b',
      dispatchOutcome: DispatchOutcome.DISPATCH_OUTCOME_ACCEPTED,
    });
    await executors[1]!.waitForJson(record => record.event === 'run-started' && record.logId === retry.id);

    await waitFor(
      async () =>
        (await client.getLog({ id: logId! })).log?.alarmStatus === AlarmStatus.ALARM_STATUS_SENT
          ? true
          : undefined,
      { what: 'the alarm of the lost run to be sent' },
    );
    // Both admins' monitors keep running: still exactly one e-mail for this log.
    await new Promise(resolve => setTimeout(resolve, 1_000));
    const alarmsForLog = mails.filter(
      mail => mail.raw.includes(`log ${logId}`) || mail.raw.includes(`Log ${logId}`),
    );
    expect(alarmsForLog).toHaveLength(1);
    expect(alarmsForLog[0]!.to.sort()).toEqual(['oncall@example.test', 'ops@example.test']);
    expect(alarmsForLog[0]!.raw).toContain(`Subject: jobstream alarm`);
  });
});
