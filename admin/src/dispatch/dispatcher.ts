import type { Db } from '../db/database.js';
import { findGroupById } from '../db/groups.repository.js';
import { insertLogs, recordDispatch, type NewTriggerLog } from '../db/logs.repository.js';
import type { ExecutorGroup, Job, TriggerLog, TriggerType } from '../domain.js';
import { ExecutorRequestError, type ExecutorSession } from '../executors/executor-session.js';
import type { SessionRegistry } from '../executors/session-registry.js';
import { rejectReasonToJSON } from '../gen/jobstream/v1/executor.js';
import { blockStrategies, glueTypes } from '../grpc/enums.js';
import { durationFromMs } from '../grpc/time.js';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import type { RouteTarget, Router } from './router.js';

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
  sessions: SessionRegistry;
  router: Router;
  logger: Logger;
  metrics: AdminMetrics;
  requestDeadlineMs: number;
}

/**
 * Turns a trigger into runs: records a log row per run before anything is sent (so a
 * crash mid-dispatch leaves a trace), routes, sends RunRequests over the executors'
 * streams and records each executor's answer. A failure to dispatch is recorded in
 * the log, never thrown: the caller always gets log ids.
 */
export class Dispatcher {
  readonly #options: DispatcherOptions;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  async trigger(job: Job, request: TriggerRequest): Promise<TriggerLog[]> {
    const { db, router } = this.#options;
    const group = await findGroupById(db, job.groupId);
    const now = new Date();
    const base: Omit<NewTriggerLog, 'shardIndex' | 'shardTotal'> = {
      jobId: job.id,
      groupId: job.groupId,
      triggerType: request.triggerType,
      handler: job.handler,
      param: request.paramOverride ?? job.param,
      retryOfLogId: request.retryOfLogId ?? null,
      scheduledAt: request.scheduledAt ?? now,
      triggeredAt: now,
    };

    const candidates = group ? this.#candidates(group, request.executorInstances) : [];
    const decision = group
      ? router.route(job.id, job.routeStrategy, candidates)
      : { targets: [] as [], failure: `executor group ${job.groupId} does not exist` };

    if ('failure' in decision) {
      const failure = decision.failure;
      const [log] = await insertLogs(db, [{ ...base, shardIndex: 0, shardTotal: 1 }]);
      const message = `trigger failed: ${failure}`;
      await recordDispatch(db, log!.id, {
        outcome: 'FAILED',
        executorInstance: null,
        executorSessionId: null,
        message,
      });
      this.#options.metrics.triggers.inc({ trigger_type: request.triggerType, outcome: 'FAILED' });
      return [{ ...log!, dispatchOutcome: 'FAILED', triggerMessage: message }];
    }

    const logs = await insertLogs(
      db,
      decision.targets.map(target => ({
        ...base,
        shardIndex: target.shardIndex,
        shardTotal: target.shardTotal,
      })),
    );
    return Promise.all(
      logs.map((log, index) => this.#dispatchRun(job, log, decision.targets[index]!, decision.trace)),
    );
  }

  #candidates(group: ExecutorGroup, explicit: readonly string[] | undefined): ExecutorSession[] {
    let candidates = this.#options.sessions.list(group.appName);
    if (group.addressType === 'MANUAL') {
      const byName = new Map(candidates.map(session => [session.instanceName, session]));
      candidates = group.addresses.flatMap(name => byName.get(name) ?? []);
    }
    if (explicit && explicit.length > 0) {
      const wanted = new Set(explicit);
      candidates = candidates.filter(session => wanted.has(session.instanceName));
    }
    return candidates;
  }

  async #dispatchRun(job: Job, log: TriggerLog, target: RouteTarget, trace: string): Promise<TriggerLog> {
    const { session } = target;
    const started = performance.now();
    this.#options.metrics.triggersInFlight.inc();
    let accepted = false;
    let answer: string;
    try {
      const reply = await session.request(
        {
          $case: 'runRequest',
          value: {
            logId: log.id,
            attempt: log.attempt,
            jobId: job.id,
            handler: job.handler,
            param: log.param,
            timeout: durationFromMs(job.timeoutSeconds * 1000),
            blockStrategy: blockStrategies.toProto(job.blockStrategy),
            shardIndex: target.shardIndex,
            shardTotal: target.shardTotal,
            glueType: glueTypes.toProto(job.glueType),
            glueSource: job.glueType === 'BEAN' ? '' : job.glueSource,
            glueUpdatedAt: job.glueUpdatedAt,
            scheduledAt: log.scheduledAt,
          },
        },
        this.#options.requestDeadlineMs,
      );
      accepted = reply.accepted;
      answer = reply.accepted
        ? `accepted by ${session.instanceName}`
        : `rejected by ${session.instanceName} (${rejectReasonToJSON(reply.rejectReason)})${
            reply.message ? `: ${reply.message}` : ''
          }`;
    } catch (error) {
      if (!(error instanceof ExecutorRequestError)) throw error;
      answer = error.message;
    } finally {
      this.#options.metrics.triggersInFlight.dec();
    }
    this.#options.metrics.dispatchSeconds.observe((performance.now() - started) / 1000);
    const outcome = accepted ? 'ACCEPTED' : 'FAILED';
    this.#options.metrics.triggers.inc({ trigger_type: log.triggerType, outcome });
    const message = `${trace}; ${answer}`;
    await recordDispatch(this.#options.db, log.id, {
      outcome,
      executorInstance: session.instanceName,
      executorSessionId: session.sessionId,
      message,
    });
    return {
      ...log,
      dispatchOutcome: outcome,
      executorInstance: session.instanceName,
      executorSessionId: session.sessionId,
      triggerMessage: message,
    };
  }
}
