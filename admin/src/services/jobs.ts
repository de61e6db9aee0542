import type { Db } from '../db/database.js';
import { findGroupById } from '../db/groups.repository.js';
import {
  childJobIdsOf,
  deleteJob,
  existingJobIds,
  findJobsByIds,
  groupIdsOfJobs,
  insertJob,
  listJobs,
  parentJobIds,
  setJobTriggerStatus,
  updateJobSpec,
  type JobFilter,
} from '../db/jobs.repository.js';
import { cancelPendingFires } from '../db/scheduler.repository.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Job, JobSpec, ScheduleType, TriggerLog } from '../domain.js';
import { FailedPreconditionError, InvalidInputError, NotFoundError } from '../domain-errors.js';
import type { QuartzCronCompiler } from '../schedule/cron/index.js';
import { compileSchedule, ScheduleError, type Schedule } from '../schedule/schedule.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { GroupCommit } from '../util/group-commit.js';

export interface JobsServiceDependencies {
  db: Db;
  scheduler: Scheduler;
  dispatcher: Dispatcher;
  /** The scheduler's own (app.ts passes both the same one): one set of caches, not two. */
  cronCompiler: QuartzCronCompiler;
  now: () => Date;
}

/**
 * Refuses, by throwing, a spec its caller may not store. The service calls it once the
 * spec's group and child jobs are known to exist, so a caller learns that a group is
 * missing before being told it is not granted it, and nothing is written before it.
 */
export type AuthorizeSpec = (spec: JobSpec) => Promise<void>;

export interface ManualTrigger {
  /** Replaces the job's parameter for this run. */
  paramOverride?: string;
  /** Route over these executor instances only; empty: the job's route strategy over all. */
  executorInstances: readonly string[];
}

/** Jobs: their specs, whether they fire on schedule, and runs triggered by hand. */
export class JobsService {
  readonly #db: Db;
  readonly #scheduler: Scheduler;
  readonly #dispatcher: Dispatcher;
  readonly #cronCompiler: QuartzCronCompiler;
  readonly #now: () => Date;
  /**
   * Lookups by id made while one is being read go in the next query together: a burst of
   * TriggerJob calls reads its jobs in one statement, not one each. A lookup begun after a
   * write completed still reads after it.
   */
  readonly #lookups: GroupCommit<string, Job | undefined>;

  constructor(dependencies: JobsServiceDependencies) {
    this.#db = dependencies.db;
    this.#scheduler = dependencies.scheduler;
    this.#dispatcher = dependencies.dispatcher;
    this.#cronCompiler = dependencies.cronCompiler;
    this.#now = dependencies.now;
    this.#lookups = new GroupCommit(async ids => {
      const byId = new Map((await findJobsByIds(this.#db, [...new Set(ids)])).map(job => [job.id, job]));
      return ids.map(id => byId.get(id));
    });
  }

  async get(id: string): Promise<Job> {
    return (await this.#lookups.add(id)) ?? jobNotFound(id);
  }

  /** One page in id order, after `afterId`; the count is of every match. */
  list(
    filter: JobFilter,
    page: { afterId: string | undefined; limit: number },
  ): Promise<{ jobs: Job[]; totalCount: number }> {
    return listJobs(this.#db, filter, page);
  }

  /** The group of each of `jobIds` that exists, for checking what a caller may name. */
  groupIdsOfJobs(jobIds: readonly string[]): Promise<Map<string, string>> {
    return groupIdsOfJobs(this.#db, jobIds);
  }

  async create(spec: JobSpec, authorize: AuthorizeSpec): Promise<Job> {
    await this.#checkReferences(spec, undefined);
    await authorize(spec);
    return insertJob(this.#db, spec);
  }

  /** Replaces the spec of `current`; a running job's new schedule starts from now. */
  async update(current: Job, spec: JobSpec, authorize: AuthorizeSpec): Promise<Job> {
    await this.#checkReferences(spec, current.id);
    await authorize(spec);
    const glueChanged = spec.glueSource !== current.glueSource || spec.glueType !== current.glueType;
    let job = (await updateJobSpec(this.#db, current.id, spec, glueChanged)) ?? jobNotFound(current.id);
    const scheduleChanged =
      spec.scheduleType !== current.scheduleType ||
      spec.scheduleConf !== current.scheduleConf ||
      spec.timeZone !== current.timeZone;
    if (job.triggerStatus === 'RUNNING' && scheduleChanged) {
      // Fires planned on the old schedule are withdrawn; the new one starts from now.
      await cancelPendingFires(this.#db, job.id);
      const next =
        job.scheduleType === 'NONE' ? null : this.#scheduler.scheduleOf(job).nextAfter(this.#now());
      job =
        (await setJobTriggerStatus(this.#db, job.id, next === null ? 'STOPPED' : 'RUNNING', next)) ??
        jobNotFound(job.id);
    }
    return job;
  }

  /** Only a job no other job lists as a child: the parent would trigger a job that is gone. */
  async delete(id: string): Promise<void> {
    const parents = await parentJobIds(this.#db, id);
    if (parents.length > 0) {
      throw new FailedPreconditionError(
        `job ${id} is a child of job ${parents.join(', ')}; remove it from their child_job_ids first`,
      );
    }
    if (!(await deleteJob(this.#db, id))) jobNotFound(id);
  }

  /** Lets the job fire on its schedule, from its next fire after now. */
  async start(job: Job): Promise<Job> {
    if (job.scheduleType === 'NONE') {
      throw new FailedPreconditionError(
        `job ${job.id} has SCHEDULE_TYPE_NONE and fires only when triggered; set a schedule first`,
      );
    }
    if (job.triggerStatus === 'RUNNING') return job;
    return (
      (await setJobTriggerStatus(this.#db, job.id, 'RUNNING', this.#firstFire(job))) ?? jobNotFound(job.id)
    );
  }

  async stop(job: Job): Promise<Job> {
    const stopped = (await setJobTriggerStatus(this.#db, job.id, 'STOPPED', null)) ?? jobNotFound(job.id);
    // After the status change: a claim that held the job's row lock has committed its
    // fires by now, and they are withdrawn here unless already being sent.
    await cancelPendingFires(this.#db, job.id);
    return stopped;
  }

  /** One manual run (one log per shard of a broadcast), dispatched now. */
  trigger(job: Job, trigger: ManualTrigger): Promise<TriggerLog[]> {
    return this.#dispatcher.trigger(job, {
      triggerType: 'MANUAL',
      ...(trigger.paramOverride === undefined ? {} : { paramOverride: trigger.paramOverride }),
      executorInstances: trigger.executorInstances,
    });
  }

  /** Several manual runs at once, each with its own parameter; the logs of each run, in order. */
  triggerRuns(
    job: Job,
    runs: readonly { paramOverride?: string }[],
    executorInstances: readonly string[],
  ): Promise<TriggerLog[][]> {
    return this.#dispatcher.triggerRuns(job, runs, executorInstances);
  }

  /**
   * The next `count` times a schedule fires after `from` (default: now), fewer when it
   * ends. For trying a schedule out before a job gets it: nothing is stored.
   */
  upcomingFireTimes(
    schedule: { scheduleType: ScheduleType; scheduleConf: string; timeZone: string },
    from: Date | undefined,
    count: number,
  ): Date[] {
    let compiled: Schedule;
    try {
      compiled = compileSchedule(
        schedule.scheduleType,
        schedule.scheduleConf,
        schedule.timeZone,
        this.#cronCompiler,
      );
    } catch (error) {
      if (error instanceof ScheduleError) {
        throw new InvalidInputError(error.message, { field: 'scheduleConf', cause: error });
      }
      throw error;
    }
    const times: Date[] = [];
    let after = from ?? this.#now();
    const anchor = after;
    while (times.length < count) {
      const next = compiled.nextAfter(after, anchor);
      if (next === null) break;
      times.push(next);
      after = next;
    }
    return times;
  }

  /** The first fire of a job started now; a schedule that never fires cannot be started. */
  #firstFire(job: Job): Date {
    let schedule: Schedule;
    try {
      schedule = this.#scheduler.scheduleOf(job);
    } catch (error) {
      if (error instanceof ScheduleError) {
        throw new FailedPreconditionError(`job ${job.id} has an invalid schedule: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
    const first = schedule.nextAfter(this.#now());
    if (first === null) {
      throw new FailedPreconditionError(`job ${job.id}'s schedule never fires again`);
    }
    return first;
  }

  /**
   * What a spec refers to must exist: its group and its child jobs. The child graph must
   * also stay acyclic once this job (`jobId`, undefined when new) has these children.
   */
  async #checkReferences(spec: JobSpec, jobId: string | undefined): Promise<void> {
    if (!(await findGroupById(this.#db, spec.groupId))) {
      throw new NotFoundError(`executor group ${spec.groupId} does not exist`, { field: 'groupId' });
    }
    if (spec.childJobIds.length === 0) return;
    if (jobId !== undefined && spec.childJobIds.includes(jobId)) {
      throw new InvalidInputError('a job cannot be its own child', { field: 'childJobIds' });
    }
    const existing = await existingJobIds(this.#db, spec.childJobIds);
    const missing = spec.childJobIds.filter(id => !existing.has(id));
    if (missing.length > 0) {
      throw new NotFoundError(`job ${missing.join(', ')} does not exist`, { field: 'childJobIds' });
    }
    if (jobId === undefined) return; // a new job has no parents yet, so it cannot close a cycle
    // Walk down from the new children; reaching this job again means a cycle.
    const seen = new Set<string>();
    let frontier = [...spec.childJobIds];
    while (frontier.length > 0) {
      const children = await childJobIdsOf(this.#db, frontier);
      const next: string[] = [];
      for (const ids of children.values()) {
        for (const id of ids) {
          if (id === jobId) {
            throw new InvalidInputError('would create a cycle of child jobs', { field: 'childJobIds' });
          }
          if (!seen.has(id)) {
            seen.add(id);
            next.push(id);
          }
        }
      }
      frontier = next;
    }
  }
}

function jobNotFound(id: string): never {
  throw new NotFoundError(`job ${id} does not exist`);
}
