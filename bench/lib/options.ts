export const SCENARIOS = [
  'lateness',
  'throughput',
  'throughput-1',
  'throughput-2',
  'api',
  'api-single',
  'api-batch',
  'failover',
  'scale',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  quick: boolean;
  only: ReadonlySet<ScenarioName>;
  /** Lateness: fires per second to measure at (N jobs firing every second). */
  rates: readonly number[];
  /** Up to this many jobs are created through the API; more are inserted with SQL. */
  apiJobLimit: number;
  /** After the first fire, before the measured window. */
  warmupMs: number;
  /** The measured window (lateness, throughput). */
  windowMs: number;
  /** After the window, for late runs and results to arrive before counting. */
  settleMs: number;
  /** Jobs firing every second in the throughput scenario (the offered load). */
  throughputJobs: number;
  /** Jobs firing every second in the failover scenario. */
  failoverJobs: number;
  /** Failover: observed before the kill, and after it. */
  failoverBeforeMs: number;
  failoverAfterMs: number;
  /** Scale: enabled jobs, warm-up after they are inserted, measured window. */
  scaleJobs: number;
  scaleWarmupMs: number;
  scaleWindowMs: number;
  /** Before each scenario, wait up to this long for other work on the machine to calm down. */
  waitQuietMs: number;
  /** The executors' capacity; undefined for the SDK's default, which is what users get. */
  executorCapacity: number | undefined;
  /** Run the admin and the SDK from their TypeScript sources (tsx) instead of their build. */
  fromSource: boolean;
}

export const USAGE = `usage: npm run bench -- [--only lateness,throughput,api,failover,scale] [--quick] [options]

  --from-source          run the admin and the executor SDK from their TypeScript sources through tsx
                         (default: build them first and run the build, as a deployment does)
  --only LIST            scenarios to run (default: all); throughput-1 and throughput-2 are throughput with one admin or two only; api-single and api-batch are TriggerJob and TriggerJobRuns (SDK default capacity) alone
  --quick                short windows and a smaller scale (a smoke run)
  --capacity N           executors' capacity (default: the SDK's default, as users get it)
  --rates LIST           lateness: fires per second (default 100,1000,5000)
  --window SECONDS       measured window of lateness and throughput (default 10, quick 4)
  --warmup SECONDS       warm-up before each window (default 5, quick 3)
  --throughput-jobs N    jobs firing every second in the throughput scenario (default 16000, 6000 with --quick)
  --failover-jobs N      jobs firing every second in the failover scenario (default 200)
  --scale-jobs N         enabled jobs in the scale scenario (default 100000, quick 20000)
  --scale-window SECONDS measured window of the scale scenario (default 30, quick 10)
  --wait-quiet SECONDS   before each scenario, wait up to this long while other processes keep more
                         than a quarter of the machine busy (default 20, quick 0)
  --api-jobs N           up to N jobs are created through the API, more are inserted with SQL (default 200)

Database server: BENCH_DATABASE_URL, else TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432
when it answers, else an embedded PostgreSQL. Each scenario creates and drops a database of its own.
Progress goes to stderr; the table to stdout; everything to bench/results/<timestamp>.json, with the
child processes' logs in bench/results/<timestamp>-logs/.`;

export function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  const quick = argv.includes('--quick');
  const value = (name: string): string | undefined => {
    const inline = argv.find(arg => arg.startsWith(`${name}=`));
    if (inline) return inline.slice(name.length + 1);
    const index = argv.indexOf(name);
    if (index < 0) return undefined;
    const next = argv[index + 1];
    if (next === undefined || next.startsWith('--')) throw new Error(`${name} needs a value`);
    return next;
  };
  const known = new Set([
    '--quick',
    '--from-source',
    '--help',
    '-h',
    '--only',
    '--rates',
    '--window',
    '--warmup',
    '--throughput-jobs',
    '--failover-jobs',
    '--scale-jobs',
    '--scale-window',
    '--api-jobs',
    '--wait-quiet',
    '--capacity',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.split('=')[0]!;
    if (!arg.startsWith('-')) {
      const previous = argv[i - 1];
      if (
        previous !== undefined &&
        known.has(previous) &&
        previous !== '--quick' &&
        previous !== '--from-source'
      )
        continue;
      throw new Error(`unexpected argument "${arg}"`);
    }
    if (!known.has(name)) throw new Error(`unknown option "${arg}"`);
  }
  if (argv.includes('--help') || argv.includes('-h')) return 'help';

  const integer = (name: string, fallback: number, min: number): number => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const parsed = Number(raw);
    if (!Number.isInteger(parsed) || parsed < min)
      throw new Error(`${name} must be an integer ≥ ${min}, got "${raw}"`);
    return parsed;
  };

  const onlyRaw = value('--only');
  const only = new Set<ScenarioName>();
  for (const name of onlyRaw
    ?.split(',')
    .map(s => s.trim())
    .filter(Boolean) ?? SCENARIOS) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      throw new Error(`--only: unknown scenario "${name}" (known: ${SCENARIOS.join(', ')})`);
    }
    only.add(name as ScenarioName);
  }

  const rates = (value('--rates') ?? '100,1000,5000').split(',').map(raw => {
    const rate = Number(raw);
    if (!Number.isInteger(rate) || rate < 1) throw new Error(`--rates: "${raw}" is not a positive integer`);
    return rate;
  });

  return {
    quick,
    only,
    rates,
    apiJobLimit: integer('--api-jobs', 200, 0),
    waitQuietMs: integer('--wait-quiet', quick ? 0 : 20, 0) * 1000,
    warmupMs: integer('--warmup', quick ? 3 : 5, 1) * 1000,
    windowMs: integer('--window', quick ? 4 : 10, 1) * 1000,
    settleMs: 2_000,
    throughputJobs: integer('--throughput-jobs', quick ? 6_000 : 16_000, 1),
    failoverJobs: integer('--failover-jobs', quick ? 100 : 200, 1),
    failoverBeforeMs: (quick ? 4 : 6) * 1000,
    failoverAfterMs: (quick ? 8 : 10) * 1000,
    scaleJobs: integer('--scale-jobs', quick ? 20_000 : 100_000, 1),
    scaleWarmupMs: (quick ? 5 : 15) * 1000,
    scaleWindowMs: integer('--scale-window', quick ? 10 : 30, 1) * 1000,
    executorCapacity: value('--capacity') === undefined ? undefined : integer('--capacity', 16, 1),
    fromSource: argv.includes('--from-source'),
  };
}
