import type { RouteStrategy } from '../domain.js';
import type { ExecutorHandle } from '../executors/executor-directory.js';

/** One run to dispatch: the executor and its shard position. */
export interface RouteTarget {
  session: ExecutorHandle;
  shardIndex: number;
  shardTotal: number;
}

export type RouteDecision = { targets: RouteTarget[]; trace: string } | { targets: []; failure: string };

/** Route strategies this build implements; the rest are refused when a job is saved. */
export const SUPPORTED_ROUTE_STRATEGIES: ReadonlySet<RouteStrategy> = new Set<RouteStrategy>([
  'FIRST',
  'LAST',
  'ROUND',
  'RANDOM',
  'SHARDING_BROADCAST',
]);

/**
 * Picks executors for a trigger among `candidates` (already in a stable order).
 * Per-job state (the ROUND position) lives in the router instance, one per admin.
 */
export class Router {
  readonly #roundPosition = new Map<string, number>();
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  route(jobId: string, strategy: RouteStrategy, candidates: readonly ExecutorHandle[]): RouteDecision {
    if (candidates.length === 0) return { targets: [], failure: 'no executor of the group is online' };
    const one = (session: ExecutorHandle, how: string): RouteDecision => ({
      targets: [{ session, shardIndex: 0, shardTotal: 1 }],
      trace: `route ${how}: ${session.instanceName}`,
    });
    switch (strategy) {
      case 'FIRST':
        return one(candidates[0]!, 'FIRST');
      case 'LAST':
        return one(candidates[candidates.length - 1]!, 'LAST');
      case 'RANDOM':
        return one(candidates[Math.floor(this.#random() * candidates.length)]!, 'RANDOM');
      case 'ROUND': {
        // A random start per job keeps many jobs created together from all hitting the first executor.
        const position = this.#roundPosition.get(jobId) ?? Math.floor(this.#random() * candidates.length);
        this.#roundPosition.set(jobId, (position + 1) % Number.MAX_SAFE_INTEGER);
        return one(candidates[position % candidates.length]!, 'ROUND');
      }
      case 'SHARDING_BROADCAST':
        return {
          targets: candidates.map((session, index) => ({
            session,
            shardIndex: index,
            shardTotal: candidates.length,
          })),
          trace: `route SHARDING_BROADCAST: ${candidates.length} shards`,
        };
      default:
        return { targets: [], failure: `route strategy ${strategy} is not supported by this admin` };
    }
  }
}
