import { setTimeout as delay } from 'node:timers/promises';
import type { Db } from '../db/database.js';
import { findGroupById } from '../db/groups.repository.js';
import { findJobById } from '../db/jobs.repository.js';
import {
  claimRunInDoubt,
  findLogById,
  insertLogs,
  recordDispatches,
  beginBroadcast,
  markSending,
  recordRunInDoubt,
  type DispatchRecord,
  type NewTriggerLog,
  type SendingMark,
} from '../db/logs.repository.js';
import { GroupCommit } from '../util/group-commit.js';
import { retryOnDeadlock } from '../db/retry.js';
import { scheduleFixDelayAfterRun, type ClaimedFire, type FireToTake } from '../db/scheduler.repository.js';
import type {
  DispatchOutcome,
  ExecutorGroup,
  Job,
  RouteStrategy,
  TriggerLog,
  TriggerType,
} from '../domain.js';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import type { OneAtATime } from '../util/one-at-a-time.js';
import {
  ExecutorRequestError,
  rejectReasonLabel,
  type ExecutorAnswer,
  type ExecutorLookup,
  type ExecutorTarget,
  type RunOrder,
} from './executor-port.js';
import type { HeldAcceptances } from './held-acceptances.js';
import type { RouteTarget, Router } from './router.js';
import { compareIds } from '../util/ids.js';

export interface TriggerRequest {
  triggerType: TriggerType;
  /** Replaces the job's parameter for this trigger. */
  paramOverride?: string;
  /** Route over these instance names only (already validated as names). */
  executorInstances?: readonly string[];
  /** When the schedule wanted the run; defaults to now (manual triggers). */
  scheduledAt?: Date;
  retryOfLogId?: string;
}

export interface DispatcherOptions {
  db: Db;
  /** This admin: the claim its scheduled fires carry while it sends them. */
  adminInstanceId: string;
  directory: ExecutorLookup;
  router: Router;
  logger: Logger;
  metrics: AdminMetrics;
  requestDeadlineMs: number;
  /**
   * Where the acceptances of scheduled fires wait to be stored with their results (see
   * HeldAcceptances); without it each is recorded at once.
   */
  acceptances?: HeldAcceptances;
  /**
   * Shared by the writers of a run's acceptance and of its result (Dispatcher,
   * HeldAcceptances, ResultRecorder): their batches update the same rows, and two batches
   * locking rows in different orders deadlock, which PostgreSQL notices only after
   * deadlock_timeout (1 s by default), stalling both. Without it each writes on its own.
   */
  logRowWrites?: OneAtATime;
}

type LogBase = Omit<NewTriggerLog, 'shardIndex' | 'shardTotal'>;

/**
 * The fields every log of one trigger shares, whatever its shard. (A literal, not a spread
 * of `trigger`: TriggerJobRuns builds one per run, and V8 copies spread properties slowly.)
 */
function baseLog(job: Job, trigger: Omit<LogBase, 'jobId' | 'groupId' | 'handler'>): LogBase {
  return {
    jobId: job.id,
    groupId: job.groupId,
    handler: job.handler,
    triggerType: trigger.triggerType,
    param: trigger.param,
    retryOfLogId: trigger.retryOfLogId,
    scheduledAt: trigger.scheduledAt,
    triggeredAt: trigger.triggeredAt,
  };
}

/**
 * The log of a trigger's first (or only) run as routed: named after its executor when it
 * was routed to exactly one (see NewTriggerLog.sendingTo).
 */
function firstLogOf(base: LogBase, decision: Routed): NewTriggerLog {
  const first = 'failure' in decision ? undefined : decision.targets[0];
  const log: NewTriggerLog = {
    jobId: base.jobId,
    groupId: base.groupId,
    handler: base.handler,
    triggerType: base.triggerType,
    param: base.param,
    retryOfLogId: base.retryOfLogId,
    scheduledAt: base.scheduledAt,
    triggeredAt: base.triggeredAt,
    shardIndex: first?.shardIndex ?? 0,
    shardTotal: first?.shardTotal ?? 1,
  };
  const target = soleTarget(decision);
  if (target) log.sendingTo = sendingTo(target);
  return log;
}

/**
 * `log` as dispatched. Spelled out, not `{ ...log, triggeredAt, ... }`: once per run, and
 * V8 makes an object spread followed by new properties far slower than a literal.
 */
function dispatchedLog(
  log: TriggerLog,
  triggeredAt: Date,
  dispatchOutcome: DispatchOutcome,
  executor: ExecutorTarget,
  triggerMessage: string,
): TriggerLog {
  return {
    id: log.id,
    jobId: log.jobId,
    groupId: log.groupId,
    triggerType: log.triggerType,
    executorInstance: executor.instanceName,
    executorSessionId: executor.sessionId,
    handler: log.handler,
    param: log.param,
    shardIndex: log.shardIndex,
    shardTotal: log.shardTotal,
    attempt: log.attempt,
    retryOfLogId: log.retryOfLogId,
    scheduledAt: log.scheduledAt,
    triggeredAt,
    dispatchOutcome,
    triggerMessage,
    startedAt: log.startedAt,
    finishedAt: log.finishedAt,
    outcome: log.outcome,
    handleMessage: log.handleMessage,
    alarmStatus: log.alarmStatus,
  };
}

/** The connected executors among `names`, in the order of `names`, each once. */
function onlineByName(
  online: readonly ExecutorTarget[],
  names: readonly string[],
): readonly ExecutorTarget[] {
  const byName = new Map(online.map(handle => [handle.instanceName, handle]));
  return [...new Set(names)].flatMap(name => byName.get(name) ?? []);
}

/**
 * A scheduled fire that failed while being routed (the database could not be read), before
 * any run request went out or anything was written for it: sending it again cannot run it
 * twice.
 */
export class FireNotSentError extends Error {
  override readonly name = 'FireNotSentError';
  constructor(logId: string, cause: unknown) {
    super(`fire ${logId} was not sent: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Groups change rarely and every fire needs one: a short cache saves a query per fire. */
/** A scheduled fire routed ahead of its time, which its take marked (see prepareFire). */
export interface PreparedFire {
  target: RouteTarget;
  trace: string;
  mark: NonNullable<FireToTake['mark']>;
}

/**
 * Route strategies decided only at the send: FAILOVER and BUSYOVER ask the executors
 * (their answer is only good then), a broadcast records rows of its own.
 */
const ROUTED_AT_SEND: ReadonlySet<RouteStrategy> = new Set<RouteStrategy>([
  'FAILOVER',
  'BUSYOVER',
  'SHARDING_BROADCAST',
]);

const GROUP_CACHE_MS = 1_000;

/** Where a trigger goes: its targets, or why it cannot go anywhere. */
type Routed = { targets: RouteTarget[]; trace: string } | { failure: string };

/** How often a run request whose stream went away looks for the executor's new stream. */
const RECONNECT_POLL_MS = 100;
/**
 * How long a dispatch outcome waits for others before they are recorded together: after
 * the send, so it delays no fire, only a TriggerJob's answer, by at most this.
 */
const RECORD_LINGER_MS = 2;
/** How soon a run request no executor slot took in time is asked again. */
const NOT_SENT_RETRY_MS = 50;
/** A resend needs at least this much of the request deadline left to be worth it. */
const RESEND_MIN_REMAINING_MS = 200;
/**
 * How long a dispatch waits for the executor's next stream to settle a run in doubt
 * before leaving it to the executor's Register or the lost-run grace period. An executor
 * whose stream ended reconnects within its backoff, well inside this.
 */
const IN_DOUBT_SETTLE_MS = 10_000;
/** The longest wait between two writes of a dispatch record while the database is down. */
const RECORD_RETRY_MAX_DELAY_MS = 5_000;

/**
 * Turns a trigger into runs: records a log row per run before anything is sent (so a
 * crash mid-dispatch leaves a trace), routes, sends RunRequests over the executors'
 * streams (through a peer admin when another admin holds the stream) and records each
 * executor's answer. A failure to dispatch is recorded in the log, never thrown.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;
  /**
   * The lookup itself is cached, not only its result: when an entry expires under a burst,
   * the fires in flight share one query instead of each sending its own.
   */
  readonly #groups = new Map<string, { at: number; group: Promise<ExecutorGroup | undefined> }>();
  /** Dispatch outcomes of concurrent sends are recorded in one statement and one commit. */
  readonly #records: GroupCommit<DispatchRecord & { logId: string }, undefined>;
  /** Marks of concurrent first sends (markSending), one statement per batch. */
  readonly #marks: GroupCommit<SendingMark, boolean>;
  /** Logs of concurrent single-run triggers (TriggerJob), one insert per batch. */
  readonly #inserts: GroupCommit<NewTriggerLog, TriggerLog>;
  readonly #background = new Set<Promise<void>>();
  /** Ends waits for executors to reconnect: runs still in doubt stay recorded as such. */
  readonly #stopping = new AbortController();

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#records = new GroupCommit(
      async records => {
        const write = () => retryOnDeadlock(() => recordDispatches(options.db, records));
        await (options.logRowWrites ? options.logRowWrites.run(write) : write());
        return records.map(() => undefined);
      },
      1_000,
      RECORD_LINGER_MS,
    );
    this.#marks = new GroupCommit(marks => retryOnDeadlock(() => markSending(options.db, marks)));
    this.#inserts = new GroupCommit(async rows => {
      // Ids follow the rows' order: sorted, they pair with the rows whatever order comes back.
      const logs = await insertLogs(options.db, rows);
      return logs.sort((a, b) => compareIds(a.id, b.id));
    });
  }

  /** A trigger from the API (manual, and later parent and retry triggers). */
  async trigger(job: Job, request: TriggerRequest): Promise<TriggerLog[]> {
    const now = new Date();
    const base = baseLog(job, {
      triggerType: request.triggerType,
      param: request.paramOverride ?? job.param,
      retryOfLogId: request.retryOfLogId ?? null,
      scheduledAt: request.scheduledAt ?? now,
      triggeredAt: now,
    });
    const decision = await this.#route(job, request.executorInstances);
    const others = 'failure' in decision ? [] : decision.targets.slice(1);
    const target = soleTarget(decision);
    // Routed to one executor: the row is written naming it (marked), one statement fewer.
    const firstLog = await this.#inserts.add(firstLogOf(base, decision));
    if (target) return this.#dispatchAll(job, [firstLog], decision, null, true);
    // The other shards of a broadcast name the first one's log: it stands for the trigger
    // (its child jobs fire once every shard has succeeded).
    const otherLogs =
      others.length === 0
        ? []
        : await insertLogs(
            this.#options.db,
            others.map(({ shardIndex, shardTotal }) => ({
              ...base,
              shardIndex,
              shardTotal,
              broadcastRootId: firstLog.id,
            })),
          );
    return this.#dispatchAll(job, [firstLog, ...otherLogs], decision, null);
  }

  /**
   * Many manual runs of one job (TriggerJobRuns): each is routed on its own (a ROUND job
   * spreads them), their logs are written in one transaction, then each is dispatched as
   * `trigger` dispatches one. Returns, per run in order, its logs.
   */
  async triggerRuns(
    job: Job,
    runs: readonly { paramOverride?: string }[],
    executorInstances: readonly string[],
  ): Promise<TriggerLog[][]> {
    const now = new Date();
    const decisions: Routed[] = [];
    for (let index = 0; index < runs.length; index += 1) {
      decisions.push(await this.#route(job, executorInstances));
    }
    const shardsOf = (decision: Routed) =>
      'failure' in decision ? [{ shardIndex: 0, shardTotal: 1 }] : decision.targets;
    const bases = runs.map(run =>
      baseLog(job, {
        triggerType: 'MANUAL',
        param: run.paramOverride ?? job.param,
        retryOfLogId: null,
        scheduledAt: now,
        triggeredAt: now,
      }),
    );
    const logsPerRun = await this.#options.db.transaction().execute(async trx => {
      const firsts = await insertLogs(
        trx,
        bases.map((base, index) => firstLogOf(base, decisions[index]!)),
      );
      // Ids follow the rows' order; sorted, they pair with the runs whatever order comes back.
      firsts.sort((a, b) => compareIds(a.id, b.id));
      const otherRows = bases.flatMap((base, index) =>
        shardsOf(decisions[index]!)
          .slice(1)
          .map(({ shardIndex, shardTotal }) => ({
            ...base,
            shardIndex,
            shardTotal,
            broadcastRootId: firsts[index]!.id,
          })),
      );
      // A broadcast over many executors has many shards per run: statements stay under
      // PostgreSQL's bind-parameter limit.
      const others: TriggerLog[] = [];
      for (let start = 0; start < otherRows.length; start += 1_000) {
        others.push(...(await insertLogs(trx, otherRows.slice(start, start + 1_000))));
      }
      others.sort((a, b) => compareIds(a.id, b.id));
      let next = 0;
      return firsts.map((first, index) => {
        const count = shardsOf(decisions[index]!).length - 1;
        next += count;
        return [first, ...others.slice(next - count, next)];
      });
    });
    return Promise.all(
      logsPerRun.map((logs, index) => {
        const decision = decisions[index]!;
        // A run written naming its one executor is sent without a mark of its own.
        return this.#dispatchAll(job, logs, decision, null, soleTarget(decision) !== undefined);
      }),
    );
  }

  /**
   * Dispatches a log recorded elsewhere (a fail retry). A retry of a broadcast shard goes
   * to the executor now at the shard's position (the first one if there are fewer now)
   * and keeps its shard index and total; any other retry is routed afresh.
   */
  async dispatchRecorded(job: Job, log: TriggerLog): Promise<TriggerLog> {
    const decision = await this.#route(job, undefined);
    if ('failure' in decision || log.shardTotal <= 1) {
      const [dispatched] = await this.#dispatchAll(job, [log], decision, null);
      return dispatched!;
    }
    const target = decision.targets[log.shardIndex] ?? decision.targets[0]!;
    return this.#dispatchRun(
      job,
      log,
      { session: target.session, shardIndex: log.shardIndex, shardTotal: log.shardTotal },
      `retry of shard ${log.shardIndex}/${log.shardTotal}: ${target.session.instanceName}`,
      { claimedBy: null },
    );
  }

  /**
   * Routes a scheduled fire ahead of its time, so that its take marks it (takeFires) and
   * its send costs no statement. Only a route that needs neither a probe of the executors
   * (FAILOVER, BUSYOVER: their answer is only good at the send) nor rows of its own (a
   * broadcast) is made ahead; undefined otherwise, and for a route that fails (the fire
   * is routed again at its time, and fails then if it still must).
   */
  async prepareFire(job: Job, fire: ClaimedFire): Promise<PreparedFire | undefined> {
    if (ROUTED_AT_SEND.has(job.routeStrategy)) return undefined;
    let decision: { targets: RouteTarget[]; trace: string } | { failure: string };
    try {
      decision = await this.#route(job, undefined);
    } catch {
      return undefined;
    }
    if ('failure' in decision || decision.targets.length !== 1) return undefined;
    const target = decision.targets[0]!;
    return {
      target,
      trace: decision.trace,
      mark: {
        executorInstance: target.session.instanceName,
        executorSessionId: target.session.sessionId,
        executorProcess: target.session.process,
        triggeredAt: new Date(Math.max(Date.now(), fire.scheduledAt.getTime())),
      },
    };
  }

  /**
   * A scheduled fire whose log row the scheduler already recorded; `prepared` when it was
   * routed ahead and its take marked it (see prepareFire).
   */
  async fire(
    job: Job,
    fire: ClaimedFire,
    prepared?: PreparedFire,
    /** Sent ahead of its time (only when prepared for an executor that holdsUntilStartAt). */
    ahead = false,
  ): Promise<TriggerLog[]> {
    const base = baseLog(job, {
      triggerType: fire.triggerType,
      param: job.param,
      retryOfLogId: null,
      scheduledAt: fire.scheduledAt,
      triggeredAt: new Date(),
    });
    // Spelled out, not `{ ...base, id, ... }`: on this path (every scheduled fire) V8 makes
    // an object spread followed by new properties about 50 times slower than a literal.
    const first: TriggerLog = {
      jobId: base.jobId,
      groupId: base.groupId,
      handler: base.handler,
      triggerType: base.triggerType,
      param: base.param,
      retryOfLogId: null,
      scheduledAt: base.scheduledAt,
      triggeredAt: base.triggeredAt,
      id: fire.logId,
      shardIndex: 0,
      shardTotal: 1,
      attempt: 1,
      executorInstance: null,
      executorSessionId: null,
      dispatchOutcome: 'PENDING',
      triggerMessage: '',
      startedAt: null,
      finishedAt: null,
      outcome: null,
      handleMessage: '',
      alarmStatus: 'NONE',
    };
    const claimedBy = this.#options.adminInstanceId;
    if (prepared) {
      return [
        await this.#dispatchRun(job, first, prepared.target, prepared.trace, {
          claimedBy,
          marked: true,
          startAt: ahead ? fire.scheduledAt : undefined,
        }),
      ];
    }
    let decision: { targets: RouteTarget[]; trace: string } | { failure: string };
    try {
      decision = await this.#route(job, undefined);
    } catch (error) {
      throw new FireNotSentError(fire.logId, error);
    }
    if ('failure' in decision || decision.targets.length === 1)
      return this.#dispatchAll(job, [first], decision, claimedBy);
    // A broadcast: the recorded row is shard 0, the other shards get rows of their own,
    // recorded with the mark that makes the broadcast this admin's to send.
    const [root, ...others] = decision.targets;
    let extra: TriggerLog[] | undefined;
    try {
      extra = await retryOnDeadlock(() =>
        beginBroadcast(
          this.#options.db,
          {
            logId: fire.logId,
            claimedBy,
            executorInstance: root!.session.instanceName,
            executorSessionId: root!.session.sessionId,
            executorProcess: root!.session.process,
            triggeredAt: first.triggeredAt,
          },
          decision.targets.length,
          others.map(target => ({
            ...base,
            shardIndex: target.shardIndex,
            shardTotal: target.shardTotal,
            broadcastRootId: fire.logId,
          })),
        ),
      );
    } catch (error) {
      throw new FireNotSentError(fire.logId, error);
    }
    if (!extra) return [(await findLogById(this.#options.db, fire.logId)) ?? first];
    const logs = [{ ...first, shardTotal: decision.targets.length }, ...extra];
    return Promise.all(
      logs.map((log, index) =>
        this.#dispatchRun(job, log, decision.targets[index]!, decision.trace, {
          claimedBy: index === 0 ? claimedBy : null,
          marked: index === 0,
        }),
      ),
    );
  }

  #group(id: string): Promise<ExecutorGroup | undefined> {
    const cached = this.#groups.get(id);
    if (cached && Date.now() - cached.at < GROUP_CACHE_MS) return cached.group;
    const entry = { at: Date.now(), group: findGroupById(this.#options.db, id) };
    this.#groups.set(id, entry);
    // A failed lookup is not cached: the next fire asks again.
    entry.group.catch(() => {
      if (this.#groups.get(id) === entry) this.#groups.delete(id);
    });
    return entry.group;
  }

  async #route(
    job: Job,
    explicit: readonly string[] | undefined,
  ): Promise<{ targets: RouteTarget[]; trace: string } | { failure: string }> {
    const group = await this.#group(job.groupId);
    if (!group) return { failure: `executor group ${job.groupId} does not exist` };
    // A list of names must find an executor that connected a moment ago; the whole group
    // may be routed over a view a moment older.
    const named = (explicit !== undefined && explicit.length > 0) || group.addressType === 'MANUAL';
    const online = await this.#options.directory.candidates(group.appName, !named);
    // An explicit list replaces the group's list for this trigger (the manual one too),
    // in the order given, but still only reaches executors connected with this group.
    let candidates = online;
    if (explicit && explicit.length > 0) candidates = onlineByName(online, explicit);
    else if (group.addressType === 'MANUAL') candidates = onlineByName(online, group.addresses);
    if (candidates.length === 0 && explicit && explicit.length > 0) {
      return {
        failure: `none of the requested executors (${explicit.join(', ')}) is connected to group ${group.appName}`,
      };
    }
    if (job.glueType !== 'BEAN') {
      const scripts = scriptCandidates(job, group, candidates);
      if ('failure' in scripts) return scripts;
      candidates = scripts.candidates;
    }
    const decision = await this.#options.router.route(job.id, job.routeStrategy, candidates, {
      probeDeadlineMs: this.#options.requestDeadlineMs,
    });
    return 'failure' in decision ? { failure: decision.failure } : decision;
  }

  async #dispatchAll(
    job: Job,
    logs: TriggerLog[],
    decision: { targets: RouteTarget[]; trace: string } | { failure: string },
    claimedBy: string | null,
    /** The logs were written naming their targets (see NewTriggerLog.sendingTo). */
    marked = false,
  ): Promise<TriggerLog[]> {
    if ('failure' in decision) {
      const log = logs[0]!;
      const message = withHistory(log, `trigger failed: ${decision.failure}`);
      const triggeredAt = new Date();
      await this.#record({
        logId: log.id,
        outcome: 'FAILED',
        triggeredAt,
        executorInstance: null,
        executorSessionId: null,
        message,
        claimedBy,
      });
      this.#options.metrics.countTrigger(log.triggerType, 'FAILED');
      return [{ ...log, triggeredAt, dispatchOutcome: 'FAILED', triggerMessage: message }];
    }
    return Promise.all(
      logs.map((log, index) =>
        this.#dispatchRun(job, log, decision.targets[index]!, decision.trace, { claimedBy, marked }),
      ),
    );
  }

  /**
   * The executor's new stream, once it has one, before `deadlineAt`; undefined otherwise.
   * With `sameStreamOk`, its current stream, even the one `gone` names.
   */
  async #reconnected(
    gone: ExecutorTarget,
    deadlineAt: number,
    sameStreamOk = false,
  ): Promise<ExecutorTarget | undefined> {
    // Leave the resent request a moment to be answered.
    while (deadlineAt - Date.now() > RESEND_MIN_REMAINING_MS && !this.#stopping.signal.aborted) {
      const found = await this.#options.directory.find(gone.appName, gone.instanceName);
      if (found && (sameStreamOk || found.sessionId !== gone.sessionId)) return found;
      await delay(RECONNECT_POLL_MS);
    }
    return undefined;
  }

  /**
   * Dispatches runs a registering executor turned out not to have (see settleRunsInDoubt):
   * in the background, tracked so that shutdown waits for them (`settled`).
   */
  dispatchReleased(logIds: readonly string[]): void {
    this.#track(
      Promise.all(
        logIds.map(async logId => {
          const log = await findLogById(this.#options.db, logId);
          const job = log && (await findJobById(this.#options.db, log.jobId));
          if (!log || !job) return;
          const sent = await this.dispatchRecorded(job, log);
          if (sent.dispatchOutcome === 'FAILED') await this.#failedAfterDoubt(sent.id);
        }),
      ).then(() => undefined),
    );
  }

  /**
   * Settles runs in doubt that no settling is under way for (fires a stopped admin was
   * sending, taken over by this one): each is asked again, the same (log, attempt), on
   * its executor's current stream (see #settle). In the background, like dispatchReleased.
   */
  settleInDoubt(logIds: readonly string[]): void {
    this.#track(
      Promise.all(
        logIds.map(async logId => {
          const log = await findLogById(this.#options.db, logId);
          if (!log || log.dispatchOutcome !== 'PENDING' || !log.executorInstance || !log.executorSessionId)
            return;
          const job = await findJobById(this.#options.db, log.jobId);
          const group = job && (await this.#group(job.groupId));
          if (!job || !group) return;
          const inDoubtOn: ExecutorTarget = {
            appName: group.appName,
            instanceName: log.executorInstance,
            sessionId: log.executorSessionId,
            process: '',
            scriptKinds: [],
            holdsUntilStartAt: false,
            ask: () => Promise.reject(new Error('a run in doubt is asked again on a live stream only')),
          };
          const cause = new ExecutorRequestError(
            'no-answer',
            `the admin sending it to ${log.executorInstance} stopped before the answer`,
            { streamMayBeOpen: true },
          );
          await this.#settle(
            log,
            'taken over',
            inDoubtOn,
            runOrder(job, log, log.shardIndex, log.shardTotal),
            cause,
          );
        }),
      ).then(() => undefined),
    );
  }

  /**
   * Stops settling runs in doubt (they stay recorded in doubt, for the executor's next
   * Register or the lost-run grace period) and waits for background work to end.
   */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.all([...this.#background]);
  }

  /**
   * Sends one log's run request to its routed target and records the outcome. Before the
   * request goes out, the log is marked as being sent there (markSending), unless the
   * caller marked it already (`marked`); a log that is no longer this sender's (a peer
   * took the fire over) is not sent, and the log as it stands is returned.
   */
  async #dispatchRun(
    job: Job,
    log: TriggerLog,
    target: RouteTarget,
    trace: string,
    sender: { claimedBy: string | null; marked?: boolean; startAt?: Date | undefined },
  ): Promise<TriggerLog> {
    let handle: ExecutorTarget = target.session;
    // A run sent ahead is triggered when the executor is to start it, not before.
    const { startAt } = sender;
    const triggeredAt = startAt !== undefined && startAt.getTime() > Date.now() ? startAt : new Date();
    const started = performance.now();
    const deadlineAt = Date.now() + this.#options.requestDeadlineMs;
    const run = runOrder(job, log, target.shardIndex, target.shardTotal, startAt);
    if (!sender.marked) {
      let marked: boolean;
      try {
        marked = await this.#marks.add({
          logId: log.id,
          claimedBy: sender.claimedBy,
          executorInstance: handle.instanceName,
          executorSessionId: handle.sessionId,
          executorProcess: handle.process,
          triggeredAt,
        });
      } catch (error) {
        // Nothing went out: a scheduled fire is sent again by the scheduler.
        if (sender.claimedBy !== null) throw new FireNotSentError(log.id, error);
        throw error;
      }
      if (!marked) return (await findLogById(this.#options.db, log.id)) ?? log;
    }
    this.#options.metrics.changeTriggersInFlight(1);
    // An acceptance waits for its result (see HeldAcceptances), here or, for an executor
    // whose stream a peer holds, at that peer: the log names its executor already (its
    // take, its insert or markSending did), which is all a caller reading it meanwhile needs.
    const holdAcceptance = this.#options.acceptances !== undefined;
    let verdict: Verdict;
    try {
      verdict = await this.#send(log, trace, handle, run, deadlineAt, holdAcceptance);
    } finally {
      this.#options.metrics.changeTriggersInFlight(-1);
    }
    this.#options.metrics.dispatchSeconds.observe((performance.now() - started) / 1000);
    if (verdict.kind === 'settled-elsewhere') {
      // The executor's Register (possibly at another admin) or its result decided.
      return (await findLogById(this.#options.db, log.id)) ?? log;
    }
    handle = verdict.handle;
    const message = withHistory(log, `${trace}; ${verdict.answer}`);
    if (verdict.kind === 'in-doubt') {
      this.#options.metrics.countTrigger(log.triggerType, 'IN_DOUBT');
      return dispatchedLog(log, triggeredAt, 'PENDING', handle, message);
    }
    const outcome = verdict.kind === 'accepted' ? 'ACCEPTED' : 'FAILED';
    this.#options.metrics.countTrigger(log.triggerType, outcome);
    const { acceptances } = this.#options;
    // An acceptance waits for its result, to be stored in the same row update; nobody
    // waits for it. A failure is recorded now. (Literals, not spreads: see fire.)
    if (outcome === 'ACCEPTED' && holdAcceptance && acceptances) {
      // Held here, unless the peer holding the executor's stream holds it (with this very
      // message): the result arrives there.
      if (verdict.recordedByPeer !== true) {
        acceptances.hold({
          logId: log.id,
          attempt: log.attempt,
          triggeredAt,
          executorInstance: handle.instanceName,
          executorSessionId: handle.sessionId,
          message,
        });
      }
    } else {
      await this.#record({
        logId: log.id,
        triggeredAt,
        executorInstance: handle.instanceName,
        executorSessionId: handle.sessionId,
        message,
        claimedBy: sender.claimedBy,
        outcome,
      });
    }
    return dispatchedLog(log, triggeredAt, outcome, handle, message);
  }

  /**
   * Sends a run request until its fate is known, or known to be in doubt. A request that
   * certainly did not reach the executor fails (or, when only its stream moved, goes to
   * the new stream). A request that may have reached it and got no answer is in doubt:
   * recording it FAILED could be false (the executor may be running it, and a retry would
   * run it twice), so it is recorded as in doubt and settled in the background (#settle).
   */
  async #send(
    log: TriggerLog,
    trace: string,
    first: ExecutorTarget,
    run: RunOrder,
    deadlineAt: number,
    holdAcceptance: boolean,
  ): Promise<Verdict> {
    let handle = first;
    let note = '';
    for (;;) {
      try {
        const acceptanceMessage = holdAcceptance
          ? withHistory(log, `${trace}; ${describeReply(handle, ACCEPTED, note)}`)
          : undefined;
        await untilStartUnlessHeld(handle, run);
        const reply = await handle.ask(
          { kind: 'run', run, acceptanceMessage },
          this.#options.requestDeadlineMs,
        );
        return {
          kind: reply.accepted ? 'accepted' : 'rejected',
          handle,
          answer: describeReply(handle, reply, note),
          recordedByPeer: reply.accepted && reply.acceptanceRecorded === true,
        };
      } catch (error) {
        if (!(error instanceof ExecutorRequestError)) throw error;
        if (error.mayHaveArrived) {
          const answer = `in doubt: ${error.message} after the run request went out; settled when the executor reconnects${note}`;
          if (
            !(await this.#recordInDoubt(
              log,
              handle,
              handle.sessionId,
              withHistory(log, `${trace}; ${answer}`),
            ))
          ) {
            return { kind: 'settled-elsewhere' };
          }
          this.#track(this.#settle(log, trace, handle, run, error));
          return { kind: 'in-doubt', handle, answer };
        }
        if (error.kind === 'not-sent') {
          // The executor's run slots stayed full (through a peer admin, which waits only
          // as long as a request's deadline; or beyond the bound of runs waiting here).
          // Overload waits: the run is asked again while that stream lives.
          // From the cached view (find() reads the registry afresh; this may run per run).
          const current = (await this.#options.directory.candidates(handle.appName)).find(
            candidate => candidate.instanceName === handle.instanceName,
          );
          if (current?.sessionId === handle.sessionId) {
            handle = current;
            this.#options.metrics.runsSentAgainForSlot.inc();
            await delay(NOT_SENT_RETRY_MS);
            continue;
          }
        }
        if (error.kind === 'not-connected' || error.kind === 'not-sent') {
          // Certainly not received: the executor's new stream may take it. A run that waited
          // for a run slot longer than its deadline still gets a deadline's time to find it.
          const next = await this.#reconnected(
            handle,
            Math.max(deadlineAt, Date.now() + this.#options.requestDeadlineMs),
          );
          if (next) {
            // The mark moves with the request; if it cannot, the log has another fate.
            const from = handle.sessionId;
            if (!(await retryOnDeadlock(() => claimRunInDoubt(this.#options.db, log.id, from, next, true))))
              return { kind: 'settled-elsewhere' };
            note = ` (sent again after its stream moved: ${error.message})`;
            handle = next;
            continue;
          }
        }
        return { kind: 'rejected', handle, answer: `${error.message}${note}` };
      }
    }
  }

  async #recordInDoubt(
    log: TriggerLog,
    handle: ExecutorTarget,
    currentSessionId: string | null,
    message: string,
  ): Promise<boolean> {
    return retryOnDeadlock(() =>
      recordRunInDoubt(this.#options.db, {
        logId: log.id,
        currentSessionId,
        triggeredAt: new Date(),
        executorInstance: handle.instanceName,
        executorSessionId: handle.sessionId,
        executorProcess: handle.process,
        message,
      }),
    );
  }

  /**
   * Settles a run in doubt by asking the executor's next stream: the same (log, attempt)
   * sent again is answered "already accepted" by an executor that has it, and taken fresh
   * by one that does not (it never starts a request read from an ended stream). The
   * executor's Register settles it too; whichever moves the log first wins
   * (claimRunInDoubt), the other leaves it alone. If the executor does not come back in
   * time, the run stays in doubt until a later Register or the lost-run grace period.
   *
   * When the doubt came from a peer admin that did not say what became of the request
   * (it was stalled past the call's timeout), nobody ended the executor's stream and the
   * executor may never reconnect: the same stream is asked again.
   */
  async #settle(
    log: TriggerLog,
    trace: string,
    inDoubtOn: ExecutorTarget,
    run: RunOrder,
    error: ExecutorRequestError,
  ): Promise<void> {
    const until = Date.now() + IN_DOUBT_SETTLE_MS;
    let cause = error.message;
    let from = inDoubtOn;
    let to = await this.#reconnected(from, until, error.streamMayBeOpen);
    if (
      !to ||
      !(await retryOnDeadlock(() => claimRunInDoubt(this.#options.db, log.id, from.sessionId, to!)))
    ) {
      return;
    }
    for (;;) {
      const note =
        to.sessionId === from.sessionId
          ? ` (asked again on the same stream after: ${cause})`
          : ` (sent again on its new stream after: ${cause})`;
      try {
        await untilStartUnlessHeld(to, run);
        const reply = await to.ask({ kind: 'run', run }, this.#options.requestDeadlineMs);
        const outcome = reply.accepted ? 'ACCEPTED' : 'FAILED';
        this.#options.metrics.countTrigger(log.triggerType, outcome);
        await this.#record(
          {
            logId: log.id,
            outcome,
            triggeredAt: new Date(),
            executorInstance: to.instanceName,
            executorSessionId: to.sessionId,
            message: withHistory(log, `${trace}; ${describeReply(to, reply, note)}`),
          },
          reply.accepted ? undefined : () => this.#failedAfterDoubt(log.id),
        );
        return;
      } catch (error) {
        if (!(error instanceof ExecutorRequestError)) throw error;
        const stillInDoubt = error.mayHaveArrived || Date.now() >= until;
        if (!stillInDoubt) continue; // not sent on the new stream yet: try again
        const answer = `in doubt: ${error.message}${note}`;
        if (!(await this.#recordInDoubt(log, to, to.sessionId, withHistory(log, `${trace}; ${answer}`))))
          return;
        if (!error.mayHaveArrived) return;
        from = to;
        // Not at once on the same stream: a peer that failed the call at once would spin.
        if (error.streamMayBeOpen) await delay(RECONNECT_POLL_MS);
        to = await this.#reconnected(from, until, error.streamMayBeOpen);
        if (
          !to ||
          !(await retryOnDeadlock(() => claimRunInDoubt(this.#options.db, log.id, from.sessionId, to!)))
        ) {
          return;
        }
        cause = error.message;
      }
    }
  }

  /**
   * Records what became of a run request (or its route). The executor's answer is a fact
   * the log must end up with: when the database fails as it is written (a restart ends
   * every connection), dropping it would leave the log PENDING with nothing to settle it
   * (a scheduled fire stays claimed by this live admin, no session is named to declare
   * the run lost, and a rejected run sends no result). So it is written again in the
   * background until it lands, then `then` runs; only stopping the admin gives up (a
   * claimed fire is then sent again by a peer, and the executor answers it the same way).
   */
  async #record(record: DispatchRecord & { logId: string }, then?: () => Promise<void>): Promise<void> {
    try {
      await this.#records.add(record);
    } catch (error) {
      this.#options.logger.warn(
        { err: error, logId: record.logId, outcome: record.outcome },
        'recording a dispatch failed; writing it again until the database is back',
      );
      this.#track(this.#recordLater(record, then));
      return;
    }
    await then?.();
  }

  async #recordLater(record: DispatchRecord & { logId: string }, then?: () => Promise<void>): Promise<void> {
    const { signal } = this.#stopping;
    for (let attempt = 1; ; attempt += 1) {
      // Stopping cuts the wait short (rejecting it), and the check below then gives up.
      await delay(Math.min(RECORD_RETRY_MAX_DELAY_MS, 100 * 2 ** attempt), undefined, { signal }).catch(
        () => undefined,
      );
      if (signal.aborted) {
        this.#options.logger.error(
          { logId: record.logId, outcome: record.outcome },
          'stopping with a dispatch not recorded (the database was unreachable)',
        );
        return;
      }
      try {
        await this.#records.add(record);
        break;
      } catch (error) {
        this.#options.logger.warn(
          { err: error, logId: record.logId, attempt },
          'recording a dispatch failed again; retrying',
        );
      }
    }
    await then?.();
  }

  /**
   * A FIX_DELAY job plans its next fire when its scheduled run ends; a fire whose doubt
   * ended in a failed dispatch ends now (the scheduler only sees dispatches it awaited).
   */
  async #failedAfterDoubt(logId: string): Promise<void> {
    await scheduleFixDelayAfterRun(this.#options.db, logId, new Date());
  }

  #track(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) =>
      this.#options.logger.error(
        { err: error },
        'background dispatch failed (runs in doubt, or runs sent again)',
      ),
    );
    this.#background.add(tracked);
    void tracked.finally(() => this.#background.delete(tracked));
  }
}

/** A log sent again (after a doubt) keeps what its trigger message said so far. */
function withHistory(log: TriggerLog, message: string): string {
  return log.triggerMessage === '' ? message : `${log.triggerMessage}; ${message}`;
}

function describeReply(handle: ExecutorTarget, reply: ExecutorAnswer, note: string): string {
  return reply.accepted
    ? `accepted by ${handle.instanceName}${note}`
    : `rejected by ${handle.instanceName} (${rejectReasonLabel(reply.rejectReason)})${
        reply.message ? `: ${reply.message}` : ''
      }${note}`;
}

/**
 * The executors a script run may go to: only those that opted into its kind at Register
 * (the protocol forbids sending them any other), and none when the group no longer allows
 * the kind (its script_kinds changed after the job was saved).
 */
function scriptCandidates(
  job: Job,
  group: ExecutorGroup,
  candidates: readonly ExecutorTarget[],
): { candidates: ExecutorTarget[] } | { failure: string } {
  const kind = job.glueType;
  if (kind === 'BEAN') return { candidates: [...candidates] };
  if (!group.scriptKinds.includes(kind)) {
    return { failure: `executor group ${group.appName} does not allow ${kind} scripts (any more)` };
  }
  const opted = candidates.filter(candidate => candidate.scriptKinds.includes(kind));
  if (opted.length > 0 || candidates.length === 0) return { candidates: opted };
  return {
    failure: `no executor of group ${group.appName} runs ${kind} scripts (none opted in; ${candidates.length} online)`,
  };
}

/** The one executor a decision sends to: none for a failure or a broadcast. */
function soleTarget(decision: Routed): RouteTarget | undefined {
  return 'failure' in decision || decision.targets.length !== 1 ? undefined : decision.targets[0];
}

/** What a log written as being sent to `target` names. */
function sendingTo(target: RouteTarget): NonNullable<NewTriggerLog['sendingTo']> {
  return {
    executorInstance: target.session.instanceName,
    executorSessionId: target.session.sessionId,
    executorProcess: target.session.process,
  };
}

/** The run order for a log, the same every time it is sent (the executor de-duplicates it). */
function runOrder(
  job: Job,
  log: TriggerLog,
  shardIndex: number,
  shardTotal: number,
  startAt?: Date,
): RunOrder {
  return {
    logId: log.id,
    attempt: log.attempt,
    jobId: job.id,
    handler: job.handler,
    param: log.param,
    timeoutMs: job.timeoutSeconds * 1000,
    blockStrategy: job.blockStrategy,
    shardIndex,
    shardTotal,
    glueType: job.glueType,
    glueSource: job.glueType === 'BEAN' ? '' : job.glueSource,
    glueUpdatedAt: job.glueUpdatedAt,
    scheduledAt: log.scheduledAt,
    startAt,
  };
}

/**
 * A run sent ahead of its time may move (its stream ended) to an executor that does not
 * hold requests until their start_at: it goes there at its time, not earlier.
 */
async function untilStartUnlessHeld(handle: ExecutorTarget, run: RunOrder): Promise<void> {
  if (run.startAt === undefined || handle.holdsUntilStartAt) return;
  const wait = run.startAt.getTime() - Date.now();
  if (wait > 0) await delay(wait);
}

/** What became of a run request. */
type Verdict =
  | {
      kind: 'accepted' | 'rejected' | 'in-doubt';
      handle: ExecutorTarget;
      answer: string;
      /** The peer admin holding the executor's stream records the acceptance. */
      recordedByPeer?: boolean;
    }
  | { kind: 'settled-elsewhere' };

/** How an acceptance reads in a trigger message (see describeReply). */
const ACCEPTED: ExecutorAnswer = { accepted: true, rejectReason: 'UNSPECIFIED', message: '' };
