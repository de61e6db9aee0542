import type { BenchOptions } from './options.js';
import type { DatabaseServer } from './postgres.js';

/** What every scenario gets from the runner. */
export interface BenchContext {
  options: BenchOptions;
  server: DatabaseServer;
  /** Where child processes write their logs. */
  logDir: string;
  /** Aborted on SIGINT: waits end early and the scenario unwinds through its cleanup. */
  signal: AbortSignal;
}

export function throwIfAborted(context: BenchContext): void {
  if (context.signal.aborted) throw new Error('interrupted');
}
