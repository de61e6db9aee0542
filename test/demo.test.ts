import { chmod, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogStatus } from '@jobstream/proto/admin';
import { adminClient, waitFor } from './support/admin.js';
import { tempDir } from './support/fixtures.js';
import { ChildTs } from './support/processes.js';
import { DEBIAN_PYTHON } from './support/python-reflection.js';
import { pythonSdk, pythonSdkPath } from './conformance/sdks.js';

/**
 * What `npm start` does on a fresh machine: no DATABASE_URL, so the admin starts an
 * embedded PostgreSQL, then the demo executor connects and the demo jobs run.
 */
describe('the demo (npm start)', () => {
  const children: ChildTs[] = [];

  afterAll(async () => {
    await Promise.all(children.map(child => child.kill('SIGKILL')));
  });

  it('brings up an admin on embedded PostgreSQL with a demo executor that runs a job', async () => {
    const dataDir = await tempDir('demo');
    // The embedded server runs as the postgres user when the tests run as root.
    await chmod(dataDir, 0o755);
    const demo = new ChildTs('admin/src/cli.ts', ['demo'], {
      DATABASE_URL: '',
      JOBSTREAM_ADMIN_TOKEN: '',
      JOBSTREAM_DATA_DIR: dataDir,
      JOBSTREAM_GRPC_PORT: '0',
      JOBSTREAM_METRICS_PORT: '0',
      JOBSTREAM_CONSOLE_PORT: '0',
      JOBSTREAM_LOG_LEVEL: 'info',
    });
    children.push(demo);
    const started = await demo.waitForJson(record => record.msg === 'admin started');
    await demo.waitForJson(record => record.msg === 'executor registered' && record.app === 'demo');
    expect(demo.lines.join('\n')).toContain('grpcurl -plaintext');
    expect(started.console).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

    // No default password: the first start generates one and prints it once, with a
    // session token for this run that the printed grpcurl commands use.
    const output = await waitFor(() => {
      const text = demo.lines.join('\n');
      return /session token for this run/.test(text) ? text : undefined;
    });
    const password = /password \(generated now, shown only this once\): (\S+)/.exec(output)?.[1];
    const token = /session token for this run \(valid until [^)]+\): (jss_\S+)/.exec(output)?.[1];
    expect(password).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(token).toBeDefined();
    expect(output).toContain(`web console: ${String(started.console)}`);
    expect(output).toContain(`-H 'authorization: Bearer ${token!}'`);
    const anonymous = adminClient(String(started.grpc), 'x');
    try {
      const login = await anonymous.client.login({ username: 'admin', password: password! });
      expect(login.user?.username).toBe('admin');
      await expect(anonymous.client.login({ username: 'admin', password: 'admin123456789' })).rejects.toThrow(
        /UNAUTHENTICATED/,
      );
    } finally {
      anonymous.channel.close();
    }

    const { client, channel } = adminClient(String(started.grpc), token);
    try {
      const { executors } = await client.listExecutors({ appName: 'demo' });
      expect(executors.map(executor => executor.instanceName)).toEqual(['demo-executor-1']);
      const { jobs } = await client.listJobs({ handlerContains: 'hello' });
      const { logIds } = await client.triggerJob({ jobId: jobs[0]!.id, param: 'test' });
      const log = await waitFor(async () => {
        const { log } = await client.getLog({ id: logIds[0]! });
        return log?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : log;
      });
      expect(log).toMatchObject({
        status: LogStatus.LOG_STATUS_SUCCEEDED,
        handleMessage: 'said hello to test',
      });

      // Prometheus can scrape what just happened.
      const metrics = await (await fetch(`http://127.0.0.1:${String(started.metricsPort)}/metrics`)).text();
      expect(metrics).toMatch(/^jobstream_triggers_total\{trigger_type="MANUAL",outcome="ACCEPTED"\} 1$/m);
      expect(metrics).toMatch(/^jobstream_executors_online\{app_name="demo"\} 1$/m);
      expect(metrics).toMatch(/^jobstream_run_results_total\{outcome="SUCCEEDED",applied="new"\} 1$/m);
    } finally {
      channel.close();
    }

    // The Python example executor serves the same demo jobs, with the command the README gives.
    const pythonMissing = pythonSdk.missing();
    if (pythonMissing !== undefined && process.env.CI !== undefined) throw new Error(pythonMissing);
    if (pythonMissing === undefined) {
      const python = new ChildTs(
        'executor-sdk-python/examples/demo_executor.py',
        [],
        {
          JOBSTREAM_ADMIN_ADDRESSES: String(started.grpc),
          JOBSTREAM_APP_NAME: 'demo',
          JOBSTREAM_ACCESS_TOKEN: (await readFile(path.join(dataDir, 'demo-executor-token'), 'utf8')).trim(),
          JOBSTREAM_EXECUTOR_DATA_DIR: await tempDir('demo-python'),
          PYTHONPATH: pythonSdkPath(),
          PYTHONUNBUFFERED: '1',
          PYTHONDONTWRITEBYTECODE: '1',
        },
        { interpreter: [DEBIAN_PYTHON, '-s'] },
      );
      children.push(python);
      const { client, channel } = adminClient(String(started.grpc), token);
      try {
        await waitFor(async () => {
          const { executors } = await client.listExecutors({ appName: 'demo' });
          return executors.some(executor => executor.instanceName === 'demo-python-1') ? true : undefined;
        });
        const { jobs } = await client.listJobs({ handlerContains: 'hello' });
        const { logIds } = await client.triggerJob({
          jobId: jobs[0]!.id,
          param: 'Python',
          executorInstances: ['demo-python-1'],
        });
        const log = await waitFor(async () => {
          const { log } = await client.getLog({ id: logIds[0]! });
          return log?.status === LogStatus.LOG_STATUS_RUNNING ? undefined : log;
        });
        expect(log).toMatchObject({
          status: LogStatus.LOG_STATUS_SUCCEEDED,
          executorInstance: 'demo-python-1',
          handleMessage: 'said hello to Python from Python',
        });
      } finally {
        channel.close();
      }
      await python.kill('SIGTERM');
    }

    // SIGTERM stops the executor, the admin and the embedded database cleanly.
    await demo.kill('SIGTERM');
    expect(await demo.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  });
});
