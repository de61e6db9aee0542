// The jobstream benchmark: `npm run bench -- [--only ...] [--quick]`. See bench/README.md.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { killAllChildren, killAllChildrenSync, repoRoot, runChildrenFromSource } from './lib/children.js';
import type { BenchContext } from './lib/context.js';
import { parseOptions, USAGE, type BenchOptions } from './lib/options.js';
import { dropStaleBenchDatabases, resolveDatabaseServer, type DatabaseServer } from './lib/postgres.js';
import { formatTable, writeJson, type Row, type ScenarioResult } from './lib/report.js';
import { sampleBackgroundLoad } from './lib/stats.js';
import { errorMessage, progress, sleep } from './lib/util.js';
import { runFailover } from './scenarios/failover.js';
import { runApi } from './scenarios/api.js';
import { runLateness } from './scenarios/lateness.js';
import { runScale } from './scenarios/scale.js';
import { runThroughput } from './scenarios/throughput.js';

const RESULTS_DIR = path.join(repoRoot, 'bench', 'results');
/** After SIGINT, cleanup gets this long before the process exits regardless. */
const INTERRUPT_GRACE_MS = 30_000;
/** Busier than this (% of all CPUs) before a scenario, other work would skew its figures. */
const QUIET_PERCENT = 25;

interface Planned {
  scenario: string;
  name: string;
  run: (context: BenchContext) => Promise<ScenarioResult>;
}

function plan(options: BenchOptions): Planned[] {
  const planned: Planned[] = [];
  if (options.only.has('lateness')) {
    for (const rate of options.rates) {
      planned.push({
        scenario: 'lateness',
        name: `lateness@${rate}/s`,
        run: context => runLateness(context, rate),
      });
    }
  }
  if (options.only.has('throughput') || options.only.has('throughput-1')) {
    planned.push({
      scenario: 'throughput',
      name: 'throughput 1 admin',
      run: context => runThroughput(context, 1),
    });
  }
  if (options.only.has('throughput') || options.only.has('throughput-2')) {
    planned.push({
      scenario: 'throughput',
      name: 'throughput 2 admins',
      run: context => runThroughput(context, 2),
    });
  }
  if (options.only.has('api') || options.only.has('api-single')) {
    planned.push({ scenario: 'api', name: 'api TriggerJob', run: context => runApi(context, 'single') });
  }
  if (options.only.has('api') || options.only.has('api-batch')) {
    planned.push({ scenario: 'api', name: 'api TriggerJobRuns', run: context => runApi(context, 'batch') });
  }
  if (options.only.has('api')) {
    // Issue 12 asks for the default capacity and also 1 and 1,000 (full runs only).
    if (!options.quick && options.executorCapacity === undefined) {
      for (const capacity of [1, 1_000]) {
        planned.push({
          scenario: 'api',
          name: `api TriggerJobRuns (capacity ${capacity})`,
          run: context => runApi(context, 'batch', capacity),
        });
      }
    }
  }
  if (options.only.has('failover'))
    planned.push({ scenario: 'failover', name: 'failover', run: runFailover });
  if (options.only.has('scale')) planned.push({ scenario: 'scale', name: 'scale', run: runScale });
  return planned;
}

async function main(): Promise<number> {
  let options: BenchOptions | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${errorMessage(error)}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const logDir = path.join(RESULTS_DIR, `${stamp}-logs`);
  await fs.mkdir(logDir, { recursive: true });

  const interrupt = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupts += 1;
    if (interrupts > 1) {
      killAllChildrenSync();
      process.exit(130);
    }
    progress('bench', `${signal}: stopping; cleaning up (again to exit at once)`);
    interrupt.abort();
    void killAllChildren();
    setTimeout(() => {
      killAllChildrenSync();
      process.exit(130);
    }, INTERRUPT_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllChildrenSync);

  if (options.fromSource) runChildrenFromSource();
  else await buildWorkspaces();

  const results: ScenarioResult[] = [];
  let server: DatabaseServer | undefined;
  let fatal: string | undefined;
  try {
    server = await resolveDatabaseServer();
    progress('bench', `database server: ${server.description}`);
    await dropStaleBenchDatabases(server);
    const context: BenchContext = { options, server, logDir, signal: interrupt.signal };
    for (const planned of plan(options)) {
      if (interrupt.signal.aborted) break;
      let background = await sampleBackgroundLoad();
      const quietBy = Date.now() + options.waitQuietMs;
      while (
        (background.hostBusyPercent ?? 0) > QUIET_PERCENT &&
        Date.now() < quietBy &&
        !interrupt.signal.aborted
      ) {
        progress(planned.name, 'waiting for the machine to calm down', {
          'busy %': background.hostBusyPercent ?? NaN,
          top: background.top.map(p => `${p.command}:${p.cpuPercent}%`).join(',') || '-',
        });
        await sleep(2_000, interrupt.signal);
        background = await sampleBackgroundLoad();
      }
      const busy = background.hostBusyPercent ?? 0;
      progress(planned.name, 'starting', {
        'machine busy before start %': busy,
        top: background.top.map(p => `${p.command}:${p.cpuPercent}%`).join(',') || '-',
      });
      if (busy > 25)
        progress(planned.name, 'WARNING: the machine is busy with other work; figures will be skewed');
      const started = Date.now();
      try {
        const result = await planned.run(context);
        result.details.durationSeconds = (Date.now() - started) / 1000;
        result.details.backgroundLoad = background;
        results.push(result);
      } catch (error) {
        const message = interrupt.signal.aborted ? 'interrupted' : errorMessage(error);
        progress(planned.name, `FAILED: ${message}`);
        results.push({
          scenario: planned.scenario,
          name: planned.name,
          rows: [{ scenario: planned.name, metric: 'error', value: firstLine(message), goal: '', ok: false }],
          details: { durationSeconds: (Date.now() - started) / 1000, backgroundLoad: background },
          error: message,
        });
      }
    }
  } catch (error) {
    fatal = errorMessage(error);
    progress('bench', `FAILED: ${fatal}`);
  } finally {
    await killAllChildren();
    await server
      ?.stop()
      .catch((error: unknown) => progress('bench', `stopping PostgreSQL: ${errorMessage(error)}`));
  }

  const rows: Row[] = results.flatMap(result => result.rows);
  const file = await writeJson(RESULTS_DIR, stamp, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    interrupted: interrupt.signal.aborted,
    fatal,
    options: { ...options, only: [...options.only] },
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
    },
    databaseServer: server?.description,
    table: rows,
    scenarios: results,
  });
  if (rows.length > 0) process.stdout.write(`${formatTable(rows)}\n`);
  progress(
    'bench',
    `results written to ${path.relative(process.cwd(), file)}; logs in ${path.relative(process.cwd(), logDir)}`,
  );
  if (fatal !== undefined || interrupt.signal.aborted) return fatal !== undefined ? 1 : 130;
  const broken = rows.filter(row => row.correctness === true && row.ok === false);
  for (const row of broken)
    progress('bench', `PROMISE BROKEN: ${row.scenario}: ${row.metric} = ${row.value}`);
  return results.some(result => result.error !== undefined) || broken.length > 0 ? 1 : 0;
}

function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

process.exit(await main());

/**
 * Builds what the children run: the admin and the executor SDK as a deployment runs them
 * (compiled JavaScript), not through a TypeScript loader.
 */
async function buildWorkspaces(): Promise<void> {
  progress('bench', 'building proto, admin and executor SDK (--from-source skips this)');
  const workspaces = ['@jobstream/proto', '@jobstream/admin', '@jobstream/executor'];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('npm', ['run', 'build', ...workspaces.flatMap(name => ['-w', name])], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`npm run build exited with ${code}`);
}
