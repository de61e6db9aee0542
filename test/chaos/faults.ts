import { sleep } from '@jobstream/proto/concurrency';
import type { CuttableProxy } from './proxy.js';
import type { SoakPostgres, SoakProcess } from './cluster.js';
import type { FaultKind, PlannedFault } from './plan.js';

/** A fault as it happened: when it began and ended (epoch ms), for the checks. */
export interface FaultWindow {
  readonly fault: PlannedFault;
  readonly kind: FaultKind;
  readonly target: string;
  readonly startedAt: number;
  endedAt: number | undefined;
  /** Why it could not be injected (its target was not up), if so. */
  skipped?: string;
}

export interface FaultTargets {
  readonly processes: ReadonlyMap<string, SoakProcess>;
  readonly links: ReadonlyMap<string, CuttableProxy>;
  readonly postgres: SoakPostgres;
  readonly log: (line: string) => void;
}

/**
 * Injects one fault and undoes it after its duration: a killed or terminated process is
 * started again, a stopped one continued, a cut link healed, PostgreSQL started again.
 * `abort` cuts the duration short (the soak is ending); the fault is undone all the same.
 */
export async function injectFault(
  fault: PlannedFault,
  targets: FaultTargets,
  abort: AbortSignal,
): Promise<FaultWindow> {
  const window: FaultWindow = {
    fault,
    kind: fault.kind,
    target: fault.target,
    startedAt: Date.now(),
    endedAt: undefined,
  };
  const { log } = targets;
  if (fault.kind === 'pg-restart') {
    log(`fault #${fault.index}: PostgreSQL stopped for ${fault.durationMs} ms`);
    await targets.postgres.stop();
    await sleep(fault.durationMs, abort);
    await startPostgres(targets);
    window.endedAt = Date.now();
    return window;
  }
  if (fault.kind === 'link-cut') {
    const link = targets.links.get(fault.target)!;
    log(`fault #${fault.index}: link ${fault.target} cut for ${fault.durationMs} ms`);
    link.cut();
    await sleep(fault.durationMs, abort);
    link.heal(fault.heal ?? 'resume');
    window.endedAt = Date.now();
    return window;
  }
  const proc = targets.processes.get(fault.target)!;
  if (!proc.running || proc.stopped) {
    window.skipped = 'target not up';
    window.endedAt = window.startedAt;
    log(`fault #${fault.index}: ${fault.target} is not up; skipped`);
    return window;
  }
  switch (fault.kind) {
    case 'kill-9':
    case 'sigterm': {
      const signal = fault.kind === 'kill-9' ? 'SIGKILL' : 'SIGTERM';
      log(
        `fault #${fault.index}: ${signal} ${fault.target} (pid ${proc.pid}); restart in ${fault.durationMs} ms`,
      );
      proc.signal(signal);
      await proc.exited();
      await sleep(fault.durationMs, abort);
      window.endedAt = Date.now();
      await restart(proc, targets);
      return window;
    }
    case 'sigstop': {
      log(`fault #${fault.index}: SIGSTOP ${fault.target} (pid ${proc.pid}) for ${fault.durationMs} ms`);
      proc.signal('SIGSTOP');
      await sleep(fault.durationMs, abort);
      proc.signal('SIGCONT');
      window.endedAt = Date.now();
      return window;
    }
    case 'cpu-starve': {
      // Runs 10 ms out of every 100: a process on a machine whose CPU others took.
      log(
        `fault #${fault.index}: CPU starvation of ${fault.target} (pid ${proc.pid}) for ${fault.durationMs} ms`,
      );
      const until = Date.now() + fault.durationMs;
      while (Date.now() < until && !abort.aborted && proc.running) {
        proc.signal('SIGSTOP');
        await sleep(90, abort);
        proc.signal('SIGCONT');
        await sleep(10, abort);
      }
      proc.signal('SIGCONT');
      window.endedAt = Date.now();
      return window;
    }
  }
}

async function startPostgres(targets: FaultTargets): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await targets.postgres.start();
      return;
    } catch (error) {
      if (attempt >= 5) throw error;
      targets.log(`PostgreSQL did not start (attempt ${attempt}): ${String(error).split('\n')[0]}`);
      await sleep(1_000);
    }
  }
}

/** Starts a process again until it is ready (an admin cannot start while PostgreSQL is down). */
export async function restart(proc: SoakProcess, targets: Pick<FaultTargets, 'log'>): Promise<void> {
  for (let attempt = 1; attempt <= 30; attempt++) {
    if (await proc.start()) return;
    targets.log(`${proc.name} exited before it was ready (attempt ${attempt}); starting it again`);
    await sleep(1_000);
  }
  throw new Error(`${proc.name} did not come back after 30 attempts`);
}
