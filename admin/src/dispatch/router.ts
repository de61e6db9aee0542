import { createHash } from 'node:crypto';
import type { RouteStrategy } from '../domain.js';
import {
  ExecutorRequestError,
  rejectReasonLabel,
  type ExecutorAnswer,
  type ExecutorAsk,
  type ExecutorTarget,
} from './executor-port.js';

/** One run to dispatch: the executor and its shard position. */
export interface RouteTarget {
  session: ExecutorTarget;
  shardIndex: number;
  shardTotal: number;
}

export type RouteDecision = { targets: RouteTarget[]; trace: string } | { targets: []; failure: string };

export interface RouterOptions {
  /** A number in [0, 1), like Math.random; tests pin it to make starts and tie-breaks predictable. */
  random?: () => number;
  /** Milliseconds since the epoch, like Date.now; tests move it to pass the reset period. */
  now?: () => number;
  /** How long per-job routing state (ROUND, LEAST_FREQUENTLY_USED, LEAST_RECENTLY_USED) lives. */
  resetIntervalMs?: number;
}

export interface RouteOptions {
  /** How long FAILOVER and BUSYOVER wait for each executor's answer before trying the next. */
  probeDeadlineMs?: number;
}

/**
 * Jobs that were deleted and executors that left for good would otherwise keep their
 * entries forever, and counts skewed by an outage would keep skewing; a daily reset
 * bounds both.
 */
const DEFAULT_RESET_INTERVAL_MS = 24 * 3600 * 1000;
const DEFAULT_PROBE_DEADLINE_MS = 3_000;
/** Enough points per executor that each one's share of the ring stays close to 1/n. */
const VIRTUAL_NODES_PER_EXECUTOR = 100;
/** Rings are rebuilt only when a group's executor set changes; a few sets per group suffice. */
const RING_CACHE_SIZE = 64;

interface HashRing {
  /** Ascending point positions on the ring. */
  points: Uint32Array;
  /** owners[i] is the instance name that placed points[i]. */
  owners: string[];
}

function hash32(key: string): number {
  return createHash('md5').update(key, 'utf8').digest().readUInt32LE(0);
}

function buildRing(instanceNames: readonly string[]): HashRing {
  const entries: { point: number; owner: string }[] = [];
  for (const owner of instanceNames) {
    for (let node = 0; node < VIRTUAL_NODES_PER_EXECUTOR; node += 1) {
      entries.push({ point: hash32(`${owner}#${node}`), owner });
    }
  }
  // Ties between owners are broken by name so a ring never depends on candidate order.
  entries.sort((a, b) => a.point - b.point || (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
  return {
    points: Uint32Array.from(entries, entry => entry.point),
    owners: entries.map(entry => entry.owner),
  };
}

/** The owner of the first point at or after `point`, wrapping around to the first point. */
function ownerAt(ring: HashRing, point: number): string {
  let low = 0;
  let high = ring.points.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (ring.points[middle]! < point) low = middle + 1;
    else high = middle;
  }
  return ring.owners[low === ring.points.length ? 0 : low]!;
}

function describeRefusal(answer: ExecutorAnswer): string {
  const reason = rejectReasonLabel(answer.rejectReason);
  return answer.message ? `refused (${reason}: ${answer.message})` : `refused (${reason})`;
}

/**
 * Picks executors for a trigger among `candidates` (already in a stable order).
 * Per-job state (ROUND positions, usage counts, access order) lives in the router
 * instance, one per admin, as in XXL-JOB: admins of a cluster route independently.
 */
export class Router {
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #resetIntervalMs: number;
  #stateSince: number;
  readonly #roundPosition = new Map<string, number>();
  readonly #useCounts = new Map<string, Map<string, number>>();
  /** Per job, instance names from least to most recently used (a Set keeps insertion order). */
  readonly #accessOrder = new Map<string, Set<string>>();
  readonly #rings = new Map<string, HashRing>();

  constructor(options: RouterOptions = {}) {
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#resetIntervalMs = options.resetIntervalMs ?? DEFAULT_RESET_INTERVAL_MS;
    this.#stateSince = this.#now();
  }

  async route(
    jobId: string,
    strategy: RouteStrategy,
    candidates: readonly ExecutorTarget[],
    options: RouteOptions = {},
  ): Promise<RouteDecision> {
    if (candidates.length === 0) return { targets: [], failure: 'no executor of the group is online' };
    this.#resetIfDue();
    const one = (session: ExecutorTarget, how: string): RouteDecision => ({
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
      case 'CONSISTENT_HASH':
        return one(this.#consistentHash(jobId, candidates), 'CONSISTENT_HASH');
      case 'LEAST_FREQUENTLY_USED':
        return one(this.#leastFrequentlyUsed(jobId, candidates), 'LEAST_FREQUENTLY_USED');
      case 'LEAST_RECENTLY_USED':
        return one(this.#leastRecentlyUsed(jobId, candidates), 'LEAST_RECENTLY_USED');
      case 'FAILOVER':
      case 'BUSYOVER':
        return this.#probe(jobId, strategy, candidates, options.probeDeadlineMs ?? DEFAULT_PROBE_DEADLINE_MS);
      case 'SHARDING_BROADCAST':
        return {
          targets: candidates.map((session, index) => ({
            session,
            shardIndex: index,
            shardTotal: candidates.length,
          })),
          trace: `route SHARDING_BROADCAST: ${candidates.length} shards`,
        };
      default: {
        const unknown: never = strategy;
        return { targets: [], failure: `route strategy ${String(unknown)} is not supported by this admin` };
      }
    }
  }

  #resetIfDue(): void {
    const now = this.#now();
    if (now - this.#stateSince < this.#resetIntervalMs) return;
    this.#stateSince = now;
    this.#roundPosition.clear();
    this.#useCounts.clear();
    this.#accessOrder.clear();
  }

  #consistentHash(jobId: string, candidates: readonly ExecutorTarget[]): ExecutorTarget {
    const names = [...new Set(candidates.map(handle => handle.instanceName))].sort();
    // Instance names cannot contain a newline, so the joined names identify the set.
    const key = names.join('\n');
    let ring = this.#rings.get(key);
    if (ring) {
      this.#rings.delete(key);
    } else {
      ring = buildRing(names);
      if (this.#rings.size >= RING_CACHE_SIZE) this.#rings.delete(this.#rings.keys().next().value!);
    }
    this.#rings.set(key, ring);
    const owner = ownerAt(ring, hash32(jobId));
    return candidates.find(handle => handle.instanceName === owner)!;
  }

  #leastFrequentlyUsed(jobId: string, candidates: readonly ExecutorTarget[]): ExecutorTarget {
    let counts = this.#useCounts.get(jobId);
    if (!counts) {
      counts = new Map();
      this.#useCounts.set(jobId, counts);
    }
    const present = new Set(candidates.map(handle => handle.instanceName));
    for (const name of counts.keys()) if (!present.has(name)) counts.delete(name);
    // A newcomer starts level with the least used executor rather than at zero: from zero
    // it would take every trigger of every job until it caught up. Ties are broken at
    // random, so new jobs (all at zero) and newcomers spread instead of piling onto one.
    const floor = counts.size === 0 ? 0 : Math.min(...counts.values());
    for (const name of present) if (!counts.has(name)) counts.set(name, floor);
    let least = Number.POSITIVE_INFINITY;
    let tied: ExecutorTarget[] = [];
    for (const handle of candidates) {
      const count = counts.get(handle.instanceName)!;
      if (count < least) {
        least = count;
        tied = [handle];
      } else if (count === least) {
        tied.push(handle);
      }
    }
    const chosen = tied[Math.floor(this.#random() * tied.length)]!;
    counts.set(chosen.instanceName, least + 1);
    return chosen;
  }

  #leastRecentlyUsed(jobId: string, candidates: readonly ExecutorTarget[]): ExecutorTarget {
    let order = this.#accessOrder.get(jobId);
    if (!order) {
      order = new Set();
      this.#accessOrder.set(jobId, order);
    }
    const byName = new Map(candidates.map(handle => [handle.instanceName, handle]));
    for (const name of order) if (!byName.has(name)) order.delete(name);
    // Newcomers count as just used, so executors that waited longer go first. A job with
    // no history starts at a random point of the candidate order, as ROUND does, so new
    // jobs do not all begin on the first executor.
    const start = order.size === 0 ? Math.floor(this.#random() * candidates.length) : 0;
    for (let offset = 0; offset < candidates.length; offset += 1) {
      order.add(candidates[(start + offset) % candidates.length]!.instanceName);
    }
    const eldest = order.values().next().value!;
    order.delete(eldest);
    order.add(eldest);
    return byName.get(eldest)!;
  }

  /**
   * Asks the candidates in order, one at a time, and takes the first that accepts:
   * FAILOVER asks whether the executor answers at all, BUSYOVER whether it has nothing
   * of this job running or queued. Every answer goes into the trace.
   */
  async #probe(
    jobId: string,
    strategy: 'FAILOVER' | 'BUSYOVER',
    candidates: readonly ExecutorTarget[],
    deadlineMs: number,
  ): Promise<RouteDecision> {
    const ask: ExecutorAsk = strategy === 'FAILOVER' ? { kind: 'beat' } : { kind: 'idle-beat', jobId };
    const tries: string[] = [];
    for (const handle of candidates) {
      let answer: ExecutorAnswer;
      try {
        answer = await handle.ask(ask, deadlineMs);
      } catch (error) {
        if (!(error instanceof ExecutorRequestError)) throw error;
        tries.push(
          `${handle.instanceName}: ${
            error.kind === 'no-answer' ? `no answer within ${deadlineMs} ms` : 'disconnected'
          }`,
        );
        continue;
      }
      if (answer.accepted) {
        tries.push(`${handle.instanceName}: ok`);
        return {
          targets: [{ session: handle, shardIndex: 0, shardTotal: 1 }],
          trace: `route ${strategy}: ${tries.join('; ')}`,
        };
      }
      tries.push(`${handle.instanceName}: ${describeRefusal(answer)}`);
    }
    const none = strategy === 'FAILOVER' ? 'no executor answered' : 'no executor is idle for this job';
    return { targets: [], failure: `route ${strategy}: ${none} (${tries.join('; ')})` };
  }
}
