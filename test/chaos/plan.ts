/** A small seeded PRNG (mulberry32): the same seed gives the same fault schedule. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export type FaultKind = 'kill-9' | 'sigterm' | 'sigstop' | 'cpu-starve' | 'pg-restart' | 'link-cut';
export const FAULT_KINDS: readonly FaultKind[] = [
  'kill-9',
  'sigterm',
  'sigstop',
  'cpu-starve',
  'pg-restart',
  'link-cut',
];

export interface PlannedFault {
  readonly index: number;
  /** Milliseconds after the fault phase began. */
  readonly atMs: number;
  readonly kind: FaultKind;
  /** A process name (admin-1, exec-2), "postgres", or a link "exec-1>admin-2". */
  readonly target: string;
  /** How long the fault lasts: down time before a restart, stop time, cut time. */
  readonly durationMs: number;
  /** For link cuts: whether the held connections are delivered late or die. */
  readonly heal?: 'resume' | 'die';
}

export interface ClusterShape {
  readonly admins: readonly string[];
  readonly executors: readonly string[];
  /** executor -> the admins it connects to. */
  readonly links: readonly string[];
}

const WEIGHTS: Readonly<Record<FaultKind, number>> = {
  'kill-9': 3,
  sigterm: 2,
  sigstop: 2,
  'cpu-starve': 1,
  'pg-restart': 1.2,
  'link-cut': 2,
};

/**
 * The fault schedule, a pure function of the seed, the length of the fault phase and the
 * cluster's shape. Faults start every 4–12 s (a 600 s phase gets about 70) and may
 * overlap, but never on the same target, and never on every admin at once: one admin
 * always schedules (an outage of all admins is the misfire path, covered by the tests).
 */
export function planFaults(seed: number, phaseMs: number, shape: ClusterShape): PlannedFault[] {
  const random = seededRandom(seed);
  const between = (min: number, max: number): number => Math.round(min + random() * (max - min));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const busyUntil = new Map<string, number>();
  const faults: PlannedFault[] = [];
  // Restarts take a few seconds on a loaded machine: a target stays busy that much longer.
  const settleMs = 4_000;
  let at = 6_000;
  while (at < phaseMs - 8_000) {
    const total = FAULT_KINDS.reduce((sum, kind) => sum + WEIGHTS[kind], 0);
    let roll = random() * total;
    const kind = FAULT_KINDS.find(candidate => (roll -= WEIGHTS[candidate]) < 0) ?? 'kill-9';
    const free = (target: string): boolean => (busyUntil.get(target) ?? 0) <= at;
    const adminsImpaired = shape.admins.filter(admin => !free(admin)).length;
    let candidates: readonly string[];
    if (kind === 'pg-restart') candidates = ['postgres'];
    else if (kind === 'link-cut') candidates = shape.links;
    else candidates = [...shape.executors, ...(adminsImpaired < shape.admins.length - 1 ? shape.admins : [])];
    candidates = candidates.filter(free);
    const durationMs =
      kind === 'kill-9' || kind === 'sigterm'
        ? between(500, 4_000)
        : kind === 'sigstop'
          ? between(1_500, 9_000)
          : kind === 'cpu-starve'
            ? between(5_000, 15_000)
            : kind === 'pg-restart'
              ? between(500, 5_000)
              : between(2_000, 20_000);
    const latestEnd = phaseMs - 2_000;
    if (candidates.length > 0) {
      const target = pick(candidates);
      const fault: PlannedFault = {
        index: faults.length + 1,
        atMs: at,
        kind,
        target,
        durationMs: Math.min(durationMs, Math.max(500, latestEnd - at)),
        ...(kind === 'link-cut' ? { heal: random() < 0.5 ? ('resume' as const) : ('die' as const) } : {}),
      };
      faults.push(fault);
      busyUntil.set(target, at + fault.durationMs + settleMs);
    }
    at += between(4_000, 12_000);
  }
  return faults;
}

export function describeFault(fault: PlannedFault): string {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
  const heal = fault.heal ? `, then ${fault.heal}` : '';
  return `#${String(fault.index).padStart(3)} +${seconds(fault.atMs).padStart(6)} ${fault.kind.padEnd(10)} ${fault.target.padEnd(16)} for ${seconds(fault.durationMs)}${heal}`;
}
