import fs from 'node:fs/promises';

export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of `values` (ms); undefined when there are none. */
export function distribution(values: readonly number[]): Distribution | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const rank = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    min: round(sorted[0]!),
    p50: round(rank(0.5)),
    p90: round(rank(0.9)),
    p99: round(rank(0.99)),
    p999: round(rank(0.999)),
    max: round(sorted[sorted.length - 1]!),
    mean: round(sum / sorted.length),
  };
}

export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** "1.2/3.4/7.8" for p50/p99/max, at the precision that makes sense for the size. */
export function p50p99max(d: Distribution | undefined): string {
  if (!d) return 'n/a';
  return [d.p50, d.p99, d.max].map(formatMs).join('/');
}

export function formatMs(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 100) return String(Math.round(value));
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(1);
}

/** CPU time (ms) and memory of a Linux process, from /proc. */
export interface ProcSample {
  at: number;
  cpuMs: number;
  rssBytes: number;
  hwmBytes: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

export async function sampleProcess(pid: number): Promise<ProcSample | undefined> {
  try {
    const [stat, status] = await Promise.all([
      fs.readFile(`/proc/${pid}/stat`, 'utf8'),
      fs.readFile(`/proc/${pid}/status`, 'utf8'),
    ]);
    // Fields after the command name (which may contain spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    const ticks = Number(fields[11]) + Number(fields[12]);
    const kb = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return {
      at: Date.now(),
      cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND,
      rssBytes: kb('VmRSS') * 1024,
      hwmBytes: kb('VmHWM') * 1024,
    };
  } catch {
    return undefined;
  }
}

/** Busy share of all CPUs of the machine between two samples of /proc/stat. */
export interface HostCpuSample {
  busy: number;
  total: number;
}

export async function sampleHostCpu(): Promise<HostCpuSample | undefined> {
  try {
    const line = (await fs.readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export function hostBusyPercent(
  before: HostCpuSample | undefined,
  after: HostCpuSample | undefined,
): number | undefined {
  if (!before || !after || after.total === before.total) return undefined;
  return round((100 * (after.busy - before.busy)) / (after.total - before.total), 1);
}

export function mib(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

async function processTicks(): Promise<Map<number, { comm: string; ticks: number }>> {
  const out = new Map<number, { comm: string; ticks: number }>();
  const entries = await fs.readdir('/proc').catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter(entry => /^\d+$/.test(entry))
      .map(async entry => {
        try {
          const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
          const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          out.set(Number(entry), { comm, ticks: Number(fields[11]) + Number(fields[12]) });
        } catch {
          // the process ended meanwhile
        }
      }),
  );
  return out;
}

export interface BackgroundLoad {
  /** Busy share of all CPUs while the harness itself was idle. */
  hostBusyPercent: number | undefined;
  /** The processes that used the most CPU meanwhile (share of one CPU). */
  top: { pid: number; command: string; cpuPercent: number }[];
}

/** What the machine is busy with before a scenario starts (other workloads skew results). */
export async function sampleBackgroundLoad(ms = 1_000): Promise<BackgroundLoad> {
  const [hostBefore, before] = await Promise.all([sampleHostCpu(), processTicks()]);
  await new Promise(resolve => setTimeout(resolve, ms));
  const [hostAfter, after] = await Promise.all([sampleHostCpu(), processTicks()]);
  const top = [...after]
    .map(([pid, { comm, ticks }]) => ({
      pid,
      command: comm,
      cpuPercent: round(
        (((ticks - (before.get(pid)?.ticks ?? ticks)) * 1000) / CLOCK_TICKS_PER_SECOND / ms) * 100,
        0,
      ),
    }))
    .filter(entry => entry.cpuPercent >= 5)
    .sort((a, b) => b.cpuPercent - a.cpuPercent)
    .slice(0, 3);
  return { hostBusyPercent: hostBusyPercent(hostBefore, hostAfter), top };
}

/** CPU use of each process between two samples, as a share of one CPU (%). */
export function cpuPercents(
  before: ReadonlyMap<string, ProcSample>,
  after: ReadonlyMap<string, ProcSample>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, end] of after) {
    const start = before.get(name);
    if (start && end.at > start.at)
      out[name] = round((100 * (end.cpuMs - start.cpuMs)) / (end.at - start.at), 1);
  }
  return out;
}
