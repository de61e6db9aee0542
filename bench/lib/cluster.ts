import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createChannel, createClient, Metadata, type Channel, type Client } from 'nice-grpc';
import { AdminServiceDefinition } from '@jobstream/proto/admin';
import { Child } from './children.js';
import { createBenchDatabase, type BenchDatabase, type DatabaseServer } from './postgres.js';
import { sampleProcess, type ProcSample } from './stats.js';
import { errorMessage, progress, withTimeout } from './util.js';

export type AdminClient = Client<typeof AdminServiceDefinition>;

const ADMIN_START_TIMEOUT_MS = 60_000;
const EXECUTOR_START_TIMEOUT_MS = 60_000;
const DUMP_TIMEOUT_MS = 30_000;

export interface AdminProcess {
  readonly index: number;
  readonly instanceId: string;
  readonly child: Child;
  readonly address: string;
  readonly metricsPort: number | undefined;
  readonly client: AdminClient;
  readonly channel: Channel;
}

export interface ExecutorStats {
  at: number;
  total: number;
  perSecond: number;
  lagMaxMs: number;
  lagP99Ms: number;
}

/** One run as the executor saw it. */
export interface ReceivedRun {
  jobId: number;
  scheduledMs: number;
  latenessMs: number;
  logId: number;
  executor: string;
}

export class ExecutorProcess {
  readonly name: string;
  readonly child: Child;
  latest: ExecutorStats | undefined;
  readonly #history: ExecutorStats[] = [];
  #nextDumpId = 1;

  constructor(name: string, child: Child) {
    this.name = name;
    this.child = child;
    child.onJson(record => {
      if (record.event !== 'stats') return;
      this.latest = record as unknown as ExecutorStats;
      this.#history.push(this.latest);
      if (this.#history.length > 3_600) this.#history.shift();
    });
  }

  /** The worst event-loop delay (ms) the executor reported for [fromMs, toMs]. */
  lagMaxMs(fromMs: number, toMs: number): number | undefined {
    const inWindow = this.#history.filter(stats => stats.at > fromMs && stats.at <= toMs + 1_000);
    return inWindow.length === 0 ? undefined : Math.max(...inWindow.map(stats => stats.lagMaxMs));
  }

  /** The runs this executor received that were scheduled in [fromMs, toMs). */
  async dump(
    fromMs: number,
    toMs: number,
  ): Promise<{ runs: ReceivedRun[]; total: number; withoutScheduledAt: number }> {
    const id = this.#nextDumpId++;
    const answer = this.child.waitForJson(
      'dump',
      record => record.event === 'dump' && record.id === id,
      DUMP_TIMEOUT_MS,
    );
    this.child.send(JSON.stringify({ cmd: 'dump', id, from: fromMs, to: toMs }));
    const record = (await answer) as unknown as {
      base: number;
      job: number[];
      sched: number[];
      late: number[];
      log: number[];
      total: number;
      withoutScheduledAt: number;
    };
    const runs: ReceivedRun[] = record.job.map((jobId, i) => ({
      jobId,
      scheduledMs: record.base + record.sched[i]!,
      latenessMs: record.late[i]!,
      logId: record.log[i]!,
      executor: this.name,
    }));
    return { runs, total: record.total, withoutScheduledAt: record.withoutScheduledAt };
  }

  reset(): void {
    this.child.send(JSON.stringify({ cmd: 'reset' }));
  }
}

export interface ClusterOptions {
  server: DatabaseServer;
  /** Scenario label: database name, log file names. */
  label: string;
  /** Directory for this run's child logs. */
  logDir: string;
  beatIntervalMs?: number;
  /** The executors' capacity; undefined for the SDK's default. */
  executorCapacity?: number;
}

/**
 * The processes and database of one scenario. close() releases everything (children
 * killed, database dropped, temporary directories removed) and is safe to call after a
 * failure at any point.
 */
export class Cluster {
  readonly label: string;
  readonly adminToken = randomBytes(24).toString('hex');
  readonly admins: AdminProcess[] = [];
  readonly executors: ExecutorProcess[] = [];
  db!: BenchDatabase;
  readonly #options: ClusterOptions;
  readonly #tmpDirs: string[] = [];
  #closed = false;

  private constructor(options: ClusterOptions) {
    this.#options = options;
    this.label = options.label;
  }

  static async create(options: ClusterOptions): Promise<Cluster> {
    const cluster = new Cluster(options);
    try {
      cluster.db = await createBenchDatabase(options.server, options.label);
    } catch (error) {
      await cluster.close();
      throw error;
    }
    progress(options.label, `created database ${cluster.db.name}`);
    return cluster;
  }

  async tmpDir(prefix: string): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `jobstream-bench-${prefix}-`));
    this.#tmpDirs.push(dir);
    return dir;
  }

  logFile(name: string): string {
    return path.join(this.#options.logDir, `${this.label.replace(/[^A-Za-z0-9@.-]/g, '_')}-${name}.log`);
  }

  /** Starts `jobstream-admin serve` on a free port and waits for "admin started". */
  async startAdmin(): Promise<AdminProcess> {
    const index = this.admins.length + 1;
    const instanceId = `bench-admin-${index}-${randomBytes(3).toString('hex')}`;
    const child = new Child({
      name: `admin-${index}`,
      script: 'admin/src/cli.ts',
      built: 'admin/dist/admin/src/cli.js',
      nodeArgs: adminNodeFlags(),
      args: ['serve'],
      logFile: this.logFile(`admin-${index}`),
      env: {
        DATABASE_URL: this.db.url,
        JOBSTREAM_ADMIN_TOKEN: this.adminToken,
        JOBSTREAM_GRPC_HOST: '127.0.0.1',
        JOBSTREAM_GRPC_PORT: '0',
        JOBSTREAM_METRICS_HOST: '127.0.0.1',
        JOBSTREAM_METRICS_PORT: '0',
        JOBSTREAM_CONSOLE_PORT: 'off',
        ...(this.#options.beatIntervalMs
          ? { JOBSTREAM_BEAT_INTERVAL_MS: String(this.#options.beatIntervalMs) }
          : {}),
        JOBSTREAM_LOG_LEVEL: process.env.BENCH_ADMIN_LOG_LEVEL ?? 'info',
        JOBSTREAM_ADMIN_INSTANCE_ID: instanceId,
        JOBSTREAM_DATA_DIR: await this.tmpDir(`admin-${index}`),
      },
    });
    try {
      const started = await child.waitForJson(
        '"admin started" log line',
        record => record.msg === 'admin started',
        ADMIN_START_TIMEOUT_MS,
      );
      const address = String(started.grpc);
      const metricsPort = typeof started.metricsPort === 'number' ? started.metricsPort : undefined;
      const channel = createChannel(address);
      const client = createClient(AdminServiceDefinition, channel, {
        '*': { metadata: Metadata({ authorization: `Bearer ${this.adminToken}` }) },
      });
      const admin: AdminProcess = { index, instanceId, child, address, metricsPort, client, channel };
      this.admins.push(admin);
      progress(this.label, `admin-${index} started`, { pid: child.pid, grpc: address });
      return admin;
    } catch (error) {
      await child.stop('SIGKILL');
      throw error;
    }
  }

  /** Creates an AUTO executor group through the API; returns its id and access token. */
  async createGroup(appName: string): Promise<{ groupId: string; token: string }> {
    const created = await withTimeout(
      this.admins[0]!.client.createExecutorGroup({ spec: { appName, title: `${appName} (bench)` } }),
      10_000,
      'CreateExecutorGroup',
    );
    return { groupId: created.group!.id, token: created.accessToken };
  }

  /** Starts executor processes in parallel and waits until each is welcomed. */
  async startExecutors(
    count: number,
    group: { appName: string; token: string },
    addressesFor: (index: number) => string[],
    capacity = this.#options.executorCapacity,
  ): Promise<ExecutorProcess[]> {
    const first = this.executors.length + 1;
    const started = await Promise.allSettled(
      Array.from({ length: count }, async (_, offset) => {
        const index = first + offset;
        const name = `executor-${index}`;
        const child = new Child({
          name,
          script: 'bench/executor-process.ts',
          logFile: this.logFile(name),
          stdin: true,
          skipLogging: line => line.startsWith('{"event":"dump"') || line.startsWith('{"event":"stats"'),
          env: {
            BENCH_ADMIN_ADDRESSES: addressesFor(index - 1).join(','),
            BENCH_APP_NAME: group.appName,
            BENCH_ACCESS_TOKEN: group.token,
            BENCH_INSTANCE_NAME: name,
            BENCH_DATA_DIR: await this.tmpDir(name),
            ...(capacity === undefined ? {} : { BENCH_CAPACITY: String(capacity) }),
          },
        });
        const executor = new ExecutorProcess(name, child);
        this.executors.push(executor);
        await child.waitForJson('"ready"', record => record.event === 'ready', EXECUTOR_START_TIMEOUT_MS);
        return executor;
      }),
    );
    const failure = started.find(result => result.status === 'rejected');
    if (failure) throw failure.reason;
    progress(this.label, `${count} executor(s) ready`);
    return started.map(result => (result as PromiseFulfilledResult<ExecutorProcess>).value);
  }

  /** Reads one admin's Prometheus metrics (undefined when unreachable). */
  async scrapeMetrics(admin: AdminProcess): Promise<string | undefined> {
    if (admin.metricsPort === undefined || !admin.child.alive) return undefined;
    try {
      const response = await fetch(`http://127.0.0.1:${admin.metricsPort}/metrics`, {
        signal: AbortSignal.timeout(5_000),
      });
      return response.ok ? await response.text() : undefined;
    } catch {
      return undefined;
    }
  }

  /** CPU time and memory of every admin and executor process, by name. */
  async sampleProcesses(): Promise<Map<string, ProcSample>> {
    const children = [
      ...this.admins.map(admin => admin.child),
      ...this.executors.map(executor => executor.child),
    ];
    const samples = await Promise.all(children.map(child => sampleProcess(child.pid)));
    const out = new Map<string, ProcSample>();
    children.forEach((child, i) => {
      const sample = samples[i];
      if (sample) out.set(child.name, sample);
    });
    return out;
  }

  /** Warnings and errors the children logged so far, by child and message. */
  logWarnings(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const child of [...this.admins.map(admin => admin.child), ...this.executors.map(e => e.child)]) {
      if (child.warnings.size > 0) out[child.name] = Object.fromEntries(child.warnings);
    }
    return out;
  }

  /** Children that exited without being asked to (an admin crash, say). */
  crashes(): string[] {
    return [...this.admins.map(admin => admin.child), ...this.executors.map(executor => executor.child)]
      .filter(child => child.crashed)
      .map(child => {
        const how = `code ${child.process.exitCode}, signal ${child.process.signalCode}`;
        const reason = child.crashReason();
        return `${child.name} crashed (${how})${reason ? `: ${reason}` : ''}; last output:\n${child.tail()}`;
      });
  }

  /** Throws when a child crashed, naming it with its last output. */
  assertHealthy(): void {
    const crashes = this.crashes();
    if (crashes.length > 0) throw new Error(crashes.join('\n'));
  }

  /** `error`, explained by the crash of a child when one crashed (the usual root cause). */
  explain(error: unknown): Error {
    const crashes = this.crashes();
    if (crashes.length === 0) return error instanceof Error ? error : new Error(String(error));
    return new Error(`${crashes.join('\n')}\n(then: ${errorMessage(error)})`, { cause: error });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const problems: string[] = [];
    // Executors first (their admins would otherwise see runs lost), then admins gracefully.
    // A profiled executor writes its profile only when it exits on its own.
    const executorSignal = process.env['BENCH_CPU_PROFILE_DIR'] ? 'SIGTERM' : 'SIGKILL';
    await Promise.all(this.executors.map(executor => executor.child.stop(executorSignal)));
    await Promise.all(
      this.admins.map(async admin => {
        admin.channel.close();
        // A profiled admin must exit on its own to write its profile, loaded or not.
        await admin.child.stop('SIGTERM', process.env['BENCH_CPU_PROFILE_DIR'] ? 60_000 : 5_000);
      }),
    );
    if (this.db && process.env.BENCH_KEEP_DATABASES === '1') {
      await this.db.pool.end().catch(() => undefined);
      progress(this.label, `kept database ${this.db.name} (BENCH_KEEP_DATABASES=1)`);
    } else if (this.db) {
      await this.db
        .drop()
        .catch((error: unknown) => problems.push(`drop ${this.db.name}: ${errorMessage(error)}`));
    }
    for (const dir of this.#tmpDirs)
      await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    const warnings = this.logWarnings();
    for (const [name, messages] of Object.entries(warnings)) {
      const list = Object.entries(messages)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([message, count]) => `${count}× ${message}`);
      progress(this.label, `${name} logged warnings/errors: ${list.join(' | ')}`);
    }
    if (problems.length > 0) progress(this.label, `cleanup problems: ${problems.join('; ')}`);
    else progress(this.label, 'cleaned up (processes stopped, database dropped)');
  }
}

/**
 * The node flags the admin's launcher (admin/bin/jobstream-admin.js, the `jobstream-admin`
 * command) runs it with, read from its first line: the bench runs the admin as a deployment
 * does.
 */
function adminNodeFlags(): string[] {
  const launcher = readFileSync(new URL('../../admin/bin/jobstream-admin.js', import.meta.url), 'utf8');
  const match = /^#!\/usr\/bin\/env -S node(.*)$/m.exec(launcher.split('\n', 1)[0] ?? '');
  return match ? match[1]!.trim().split(/\s+/).filter(Boolean) : [];
}
