import { describe, expect, it } from 'vitest';
import { Router, type RouteDecision, type RouterOptions } from '../../admin/src/dispatch/router.js';
import type { RouteStrategy } from '../../admin/src/domain.js';
import {
  ExecutorRequestError,
  type ExecutorAnswer,
  type ExecutorAsk,
  type ExecutorTarget,
} from '../../admin/src/dispatch/executor-port.js';

type Answer = (ask: ExecutorAsk, deadlineMs: number) => Promise<ExecutorAnswer>;

const accept: Answer = () => Promise.resolve({ accepted: true, rejectReason: 'UNSPECIFIED', message: '' });

interface FakeExecutor extends ExecutorTarget {
  readonly asked: { ask: ExecutorAsk; deadlineMs: number }[];
}

function executor(instanceName: string, answer: Answer = accept): FakeExecutor {
  const asked: FakeExecutor['asked'] = [];
  return {
    appName: 'app',
    instanceName,
    sessionId: `session-${instanceName}`,
    process: `host/${instanceName}`,
    scriptKinds: [],
    holdsUntilStartAt: false,
    asked,
    ask(ask, deadlineMs) {
      asked.push({ ask, deadlineMs });
      return answer(ask, deadlineMs);
    },
  };
}

function executors(...names: string[]): FakeExecutor[] {
  return names.map(name => executor(name));
}

/** A small seeded generator, so "random" tie-breaks are the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function chosen(decision: RouteDecision): string {
  if ('failure' in decision) throw new Error(`routing failed: ${decision.failure}`);
  // Plain checks rather than expect(): this runs tens of thousands of times.
  const [target, ...more] = decision.targets;
  if (!target || more.length > 0 || target.shardIndex !== 0 || target.shardTotal !== 1) {
    throw new Error(`expected one unsharded target, got ${decision.targets.length} targets`);
  }
  return target.session.instanceName;
}

async function pick(
  router: Router,
  jobId: string,
  strategy: RouteStrategy,
  candidates: readonly ExecutorTarget[],
): Promise<string> {
  return chosen(await router.route(jobId, strategy, candidates));
}

async function picks(
  router: Router,
  jobId: string,
  strategy: RouteStrategy,
  candidates: readonly ExecutorTarget[],
  times: number,
): Promise<string[]> {
  const names: string[] = [];
  for (let call = 0; call < times; call += 1) names.push(await pick(router, jobId, strategy, candidates));
  return names;
}

function tally(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

const jobIds = Array.from({ length: 2_000 }, (_, index) => String(1_000 + index * 7));

describe('Router', () => {
  const [a, b, c, d, e] = executors('exec-a', 'exec-b', 'exec-c', 'exec-d', 'exec-e') as [
    FakeExecutor,
    FakeExecutor,
    FakeExecutor,
    FakeExecutor,
    FakeExecutor,
  ];

  it.each<[RouteStrategy, string]>([
    ['FIRST', 'exec-a'],
    ['LAST', 'exec-c'],
  ])('%s picks %s every time', async (strategy, expected) => {
    const router = new Router();
    expect(await picks(router, '1', strategy, [a, b, c], 5)).toEqual(Array(5).fill(expected));
  });

  it('RANDOM picks the candidate the random number points at', async () => {
    const values = [0, 0.5, 0.99];
    const router = new Router({ random: () => values.shift()! });
    expect(await picks(router, '1', 'RANDOM', [a, b, c], 3)).toEqual(['exec-a', 'exec-b', 'exec-c']);
  });

  it('fails with a clear message when no executor is online, whatever the strategy', async () => {
    for (const strategy of ['FIRST', 'CONSISTENT_HASH', 'FAILOVER', 'SHARDING_BROADCAST'] as const) {
      expect(await new Router().route('1', strategy, [])).toEqual({
        targets: [],
        failure: 'no executor of the group is online',
      });
    }
  });

  it('SHARDING_BROADCAST targets every candidate with its index and the total', async () => {
    const decision = await new Router().route('1', 'SHARDING_BROADCAST', [a, b, c]);
    if ('failure' in decision) throw new Error(decision.failure);
    expect(decision.targets.map(t => [t.session.instanceName, t.shardIndex, t.shardTotal])).toEqual([
      ['exec-a', 0, 3],
      ['exec-b', 1, 3],
      ['exec-c', 2, 3],
    ]);
  });

  describe('ROUND', () => {
    it('rotates through the candidates per job from a random start', async () => {
      const starts = [0.4, 0];
      const router = new Router({ random: () => starts.shift()! });
      expect(await picks(router, 'job-1', 'ROUND', [a, b, c], 7)).toEqual([
        'exec-b',
        'exec-c',
        'exec-a',
        'exec-b',
        'exec-c',
        'exec-a',
        'exec-b',
      ]);
      // Another job has a position of its own.
      expect(await picks(router, 'job-2', 'ROUND', [a, b, c], 2)).toEqual(['exec-a', 'exec-b']);
    });

    it('spreads the first trigger of many jobs over all executors', async () => {
      const router = new Router({ random: seeded(1) });
      const first = await Promise.all(jobIds.slice(0, 300).map(id => pick(router, id, 'ROUND', [a, b, c])));
      for (const count of tally(first).values()) expect(count).toBeGreaterThan(60);
    });
  });

  describe('CONSISTENT_HASH', () => {
    async function assignments(router: Router, candidates: readonly ExecutorTarget[]) {
      const result = new Map<string, string>();
      for (const id of jobIds) result.set(id, await pick(router, id, 'CONSISTENT_HASH', candidates));
      return result;
    }

    it('keeps each job on its executor while the set is unchanged, whatever the candidate order', async () => {
      const router = new Router();
      const before = await assignments(router, [a, b, c, d]);
      for (let round = 0; round < 5; round += 1) {
        expect(await assignments(router, [a, b, c, d])).toEqual(before);
      }
      expect(await assignments(new Router(), [d, b, a, c])).toEqual(before);
      // Roughly a quarter of the jobs each.
      for (const count of tally([...before.values()]).values()) {
        expect(count / jobIds.length).toBeGreaterThan(0.15);
        expect(count / jobIds.length).toBeLessThan(0.35);
      }
    });

    it('moves about 1/n of the jobs, all to the newcomer, when a 5th executor joins', async () => {
      const router = new Router();
      const before = await assignments(router, [a, b, c, d]);
      const after = await assignments(router, [a, b, c, d, e]);
      const moved = jobIds.filter(id => before.get(id) !== after.get(id));
      expect(moved.length / jobIds.length).toBeGreaterThan(0.1);
      expect(moved.length / jobIds.length).toBeLessThan(0.35);
      for (const id of moved) expect(after.get(id)).toBe('exec-e');
    });

    it('moves about 1/n of the jobs, only those of the leaver, when one of 5 leaves', async () => {
      const router = new Router();
      const before = await assignments(router, [a, b, c, d, e]);
      const after = await assignments(router, [a, b, d, e]);
      const moved = jobIds.filter(id => before.get(id) !== after.get(id));
      expect(moved.length / jobIds.length).toBeGreaterThan(0.1);
      expect(moved.length / jobIds.length).toBeLessThan(0.35);
      for (const id of moved) expect(before.get(id)).toBe('exec-c');
      expect(moved).toEqual(jobIds.filter(id => before.get(id) === 'exec-c'));
    });
  });

  describe('LEAST_FREQUENTLY_USED', () => {
    it('uses every executor equally often for each job', async () => {
      const router = new Router({ random: seeded(2) });
      for (const id of jobIds.slice(0, 50)) {
        const names = await picks(router, id, 'LEAST_FREQUENTLY_USED', [a, b, c], 30);
        expect([...tally(names).values()]).toEqual([10, 10, 10]);
        // Balanced at every step: each group of three calls uses all three executors.
        for (let from = 0; from < names.length; from += 3) {
          expect(new Set(names.slice(from, from + 3)).size).toBe(3);
        }
      }
    });

    it('spreads the first trigger of many jobs instead of starting them all on one executor', async () => {
      const router = new Router({ random: seeded(3) });
      const first = await Promise.all(
        jobIds.slice(0, 300).map(id => pick(router, id, 'LEAST_FREQUENTLY_USED', [a, b, c])),
      );
      for (const count of tally(first).values()) expect(count).toBeGreaterThan(60);
    });

    it('does not pile the jobs onto a newcomer', async () => {
      const router = new Router({ random: seeded(4) });
      const jobs = jobIds.slice(0, 300);
      for (const id of jobs) await picks(router, id, 'LEAST_FREQUENTLY_USED', [a, b, c], 9);
      const next: string[] = [];
      for (const id of jobs) {
        const four = await picks(router, id, 'LEAST_FREQUENTLY_USED', [a, b, c, d], 4);
        expect(new Set(four).size).toBe(4);
        next.push(four[0]!);
      }
      const share = (tally(next).get('exec-d') ?? 0) / jobs.length;
      expect(share).toBeGreaterThan(0.1);
      expect(share).toBeLessThan(0.45);
    });

    it('forgets an executor that left: it rejoins level with the others', async () => {
      const router = new Router({ random: seeded(5) });
      await picks(router, 'job', 'LEAST_FREQUENTLY_USED', [a, b, c], 30);
      expect(new Set(await picks(router, 'job', 'LEAST_FREQUENTLY_USED', [a, b], 20))).toEqual(
        new Set(['exec-a', 'exec-b']),
      );
      // Had its count of 10 been kept, c would now take the next ten calls.
      const rejoined = await picks(router, 'job', 'LEAST_FREQUENTLY_USED', [a, b, c], 6);
      expect(tally(rejoined).get('exec-c')).toBe(2);
    });
  });

  describe('LEAST_RECENTLY_USED', () => {
    it('cycles strictly through the executors, per job', async () => {
      const router = new Router({ random: seeded(6) });
      for (const id of jobIds.slice(0, 50)) {
        const names = await picks(router, id, 'LEAST_RECENTLY_USED', [a, b, c], 12);
        expect(new Set(names.slice(0, 3)).size).toBe(3);
        for (let index = 3; index < names.length; index += 1) expect(names[index]).toBe(names[index - 3]);
      }
    });

    it('starts new jobs at a random executor and goes on in candidate order', async () => {
      const router = new Router({ random: () => 0.7 });
      expect(await picks(router, 'job', 'LEAST_RECENTLY_USED', [a, b, c], 4)).toEqual([
        'exec-c',
        'exec-a',
        'exec-b',
        'exec-c',
      ]);
    });

    it('appends newcomers as most recently used and forgets executors that left', async () => {
      const router = new Router({ random: () => 0 });
      expect(await picks(router, 'job', 'LEAST_RECENTLY_USED', [a, b, c], 3)).toEqual([
        'exec-a',
        'exec-b',
        'exec-c',
      ]);
      expect(await picks(router, 'job', 'LEAST_RECENTLY_USED', [a, b, c, d], 5)).toEqual([
        'exec-a',
        'exec-b',
        'exec-c',
        'exec-d',
        'exec-a',
      ]);
      // b leaves while it is the least recently used, then comes back as a newcomer.
      expect(await picks(router, 'job', 'LEAST_RECENTLY_USED', [a, c, d], 2)).toEqual(['exec-c', 'exec-d']);
      expect(await picks(router, 'job', 'LEAST_RECENTLY_USED', [a, b, c, d], 4)).toEqual([
        'exec-a',
        'exec-c',
        'exec-d',
        'exec-b',
      ]);
    });
  });

  describe('periodic reset', () => {
    const DAY_MS = 24 * 3600 * 1000;

    function clockedRouter(options: RouterOptions = {}) {
      let now = 1_000_000;
      const router = new Router({ random: () => 0, now: () => now, ...options });
      return {
        router,
        advance: (ms: number) => {
          now += ms;
        },
      };
    }

    it.each<RouteStrategy>(['ROUND', 'LEAST_FREQUENTLY_USED', 'LEAST_RECENTLY_USED'])(
      '%s forgets its per-job state once a day',
      async strategy => {
        const { router, advance } = clockedRouter();
        expect(await picks(router, 'job', strategy, [a, b, c], 2)).toEqual(['exec-a', 'exec-b']);
        advance(DAY_MS - 1);
        expect(await pick(router, 'job', strategy, [a, b, c])).toBe('exec-c');
        advance(1);
        // A fresh start: the pinned random start points at the first executor again.
        expect(await picks(router, 'job', strategy, [a, b, c], 2)).toEqual(['exec-a', 'exec-b']);
      },
    );

    it('takes its period from the options', async () => {
      const { router, advance } = clockedRouter({ resetIntervalMs: 1_000 });
      expect(await pick(router, 'job', 'ROUND', [a, b])).toBe('exec-a');
      advance(1_000);
      expect(await pick(router, 'job', 'ROUND', [a, b])).toBe('exec-a');
    });
  });

  describe('FAILOVER and BUSYOVER', () => {
    const silent = (name: string) =>
      executor(name, (_, deadlineMs) =>
        Promise.reject(
          new ExecutorRequestError('no-answer', `executor ${name} did not answer within ${deadlineMs} ms`),
        ),
      );
    const gone = (name: string) =>
      executor(name, () =>
        Promise.reject(new ExecutorRequestError('session-closed', `executor ${name} disconnected`)),
      );
    const busy = (name: string) =>
      executor(name, () =>
        Promise.resolve({
          accepted: false,
          rejectReason: 'BUSY',
          message: 'job 7 has a run running or queued on this executor',
        }),
      );

    it('FAILOVER beats the candidates in order and takes the first that answers', async () => {
      const [first, second, third, fourth] = [silent('x-1'), gone('x-2'), executor('x-3'), executor('x-4')];
      const decision = await new Router().route('7', 'FAILOVER', [first, second, third, fourth], {
        probeDeadlineMs: 50,
      });
      expect(chosen(decision)).toBe('x-3');
      expect(decision).toMatchObject({
        trace: 'route FAILOVER: x-1: no answer within 50 ms; x-2: disconnected; x-3: ok',
      });
      for (const asked of [first, second, third]) {
        expect(asked.asked).toEqual([{ ask: { kind: 'beat' }, deadlineMs: 50 }]);
      }
      expect(fourth.asked).toEqual([]);
    });

    it('FAILOVER fails with the trace of every try when nobody answers', async () => {
      const decision = await new Router().route('7', 'FAILOVER', [silent('x-1'), gone('x-2')], {
        probeDeadlineMs: 50,
      });
      expect(decision).toEqual({
        targets: [],
        failure: 'route FAILOVER: no executor answered (x-1: no answer within 50 ms; x-2: disconnected)',
      });
    });

    it('BUSYOVER asks about this job and takes the first idle executor', async () => {
      const [first, second] = [busy('x-1'), executor('x-2')];
      const decision = await new Router().route('7', 'BUSYOVER', [first, second], { probeDeadlineMs: 50 });
      expect(chosen(decision)).toBe('x-2');
      expect(first.asked).toEqual([{ ask: { kind: 'idle-beat', jobId: '7' }, deadlineMs: 50 }]);
      expect(decision).toMatchObject({
        trace:
          'route BUSYOVER: x-1: refused (REJECT_REASON_BUSY: job 7 has a run running or queued on this executor); x-2: ok',
      });
    });

    it('BUSYOVER fails when every executor is busy or unreachable', async () => {
      const decision = await new Router().route('7', 'BUSYOVER', [busy('x-1'), silent('x-2')], {
        probeDeadlineMs: 50,
      });
      expect(decision).toMatchObject({ targets: [] });
      expect('failure' in decision && decision.failure).toMatch(
        /^route BUSYOVER: no executor is idle for this job \(x-1: refused \(REJECT_REASON_BUSY.*\); x-2: no answer within 50 ms\)$/,
      );
    });

    it('lets errors other than an executor failing to answer through', async () => {
      const broken = executor('x-1', () => Promise.reject(new TypeError('a bug')));
      await expect(new Router().route('7', 'FAILOVER', [broken, executor('x-2')])).rejects.toThrow('a bug');
    });
  });
});
