import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import {
  findScriptVersion,
  listScriptVersions,
  type NewScriptVersion,
} from '../db/job-scripts.repository.js';
import { findGroupById } from '../db/groups.repository.js';
import {
  childJobIdsOf,
  deleteJob,
  existingJobIds,
  findJobsByIds,
  groupIdsOfJobs,
  insertJob,
  insertScriptJob,
  listJobs,
  parentJobIds,
  setJobTriggerStatus,
  updateJobSpec,
  updateScriptJobSpec,
  type JobFilter,
} from '../db/jobs.repository.js';
import { cancelPendingFires } from '../db/scheduler.repository.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import {
  isScriptKind,
  type ExecutorGroup,
  type Job,
  type JobScriptVersion,
  type JobSpec,
  type ScheduleType,
  type ScriptKind,
  type TriggerLog,
} from '../domain.js';
import type { Logger } from '../logger.js';
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
  logger: Logger;
  scripts: ScriptSettings;
  now: () => Date;
}

/** What the admin's configuration says about script jobs. */
export interface ScriptSettings {
  /** The largest source, in UTF-8 bytes (checked again when a version is restored). */
  maxBytes: number;
  /** The timeout a script job saved without one gets; 0: none. */
  defaultTimeoutSeconds: number;
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
  readonly #logger: Logger;
  readonly #scripts: ScriptSettings;
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
    this.#logger = dependencies.logger;
    this.#scripts = dependencies.scripts;
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

  /**
   * A new job. A script job's script is stored as its first version, saved by `by` (a
   * username or the static token's name), and the change is logged.
   */
  async create(spec: JobSpec, authorize: AuthorizeSpec, by: string): Promise<Job> {
    const group = await this.#checkReferences(spec, undefined);
    await authorize(spec);
    const glueType = spec.glueType;
    if (!isScriptKind(glueType)) return insertJob(this.#db, spec);
    const scriptSpec = this.#scriptJobSpec(group, { ...spec, glueType });
    const { job, version } = await insertScriptJob(this.#db, scriptSpec, {
      author: by,
      remark: spec.glueRemark,
      restoredFromId: null,
    });
    this.#logScriptChange(job, version, by);
    return job;
  }

  /**
   * Replaces the spec of `current`; a running job's new schedule starts from now. A
   * changed script (source or kind) is stored as a new version saved by `by`; a script
   * job's remark belongs to its version, so it changes only with the script.
   */
  async update(current: Job, spec: JobSpec, authorize: AuthorizeSpec, by: string): Promise<Job> {
    const group = await this.#checkReferences(spec, current.id);
    await authorize(spec);
    const glueChanged = spec.glueSource !== current.glueSource || spec.glueType !== current.glueType;
    const glueType = spec.glueType;
    let job: Job;
    if (isScriptKind(glueType)) {
      const scriptSpec = this.#scriptJobSpec(group, {
        ...spec,
        glueType,
        glueRemark: glueChanged ? spec.glueRemark : current.glueRemark,
      });
      if (glueChanged) {
        const saved =
          (await updateScriptJobSpec(this.#db, current.id, scriptSpec, {
            author: by,
            remark: scriptSpec.glueRemark,
            restoredFromId: null,
          })) ?? jobNotFound(current.id);
        this.#logScriptChange(saved.job, saved.version, by);
        job = saved.job;
      } else {
        job = (await updateJobSpec(this.#db, current.id, scriptSpec, false)) ?? jobNotFound(current.id);
      }
    } else {
      job = (await updateJobSpec(this.#db, current.id, spec, glueChanged)) ?? jobNotFound(current.id);
      if (isScriptKind(current.glueType)) {
        this.#logger.info(
          { by, jobId: job.id, from: current.glueType, glueType: 'BEAN' },
          'job script removed: the job runs a handler now',
        );
      }
    }
    return this.#rescheduled(current, job);
  }

  /** The job's stored script versions, newest first. */
  listScriptVersions(job: Job, includeSource: boolean): Promise<JobScriptVersion[]> {
    return listScriptVersions(this.#db, job.id, { includeSource });
  }

  async getScriptVersion(job: Job, versionId: string): Promise<JobScriptVersion> {
    return (await findScriptVersion(this.#db, job.id, versionId)) ?? versionNotFound(job.id, versionId);
  }

  /**
   * Makes a stored version the job's script again, saved as a new version by `by` that
   * names the one restored. The job's group must still allow the version's kind.
   */
  async restoreScriptVersion(
    job: Job,
    versionId: string,
    remark: string,
    by: string,
  ): Promise<{ job: Job; version: JobScriptVersion }> {
    const restored = await this.getScriptVersion(job, versionId);
    const group = (await findGroupById(this.#db, job.groupId)) ?? groupNotFound(job.groupId);
    const bytes = Buffer.byteLength(restored.source, 'utf8');
    if (bytes > this.#scripts.maxBytes) {
      throw new FailedPreconditionError(
        `version ${versionId} is ${bytes} bytes, more than this admin's script limit of ${this.#scripts.maxBytes} bytes`,
      );
    }
    const version: NewScriptVersion = {
      author: by,
      remark: remark === '' ? `restored from version ${versionId}` : remark,
      restoredFromId: versionId,
    };
    const spec = this.#scriptJobSpec(group, {
      ...jobSpecOf(job),
      glueType: restored.glueType,
      glueSource: restored.source,
      glueRemark: version.remark,
      // A handler job restored to a script runs the script, not its handler.
      handler: '',
    });
    const saved = (await updateScriptJobSpec(this.#db, job.id, spec, version)) ?? jobNotFound(job.id);
    this.#logScriptChange(saved.job, saved.version, by);
    return saved;
  }

  /**
   * A script job's spec as it is stored: its group must allow its kind, and one saved
   * without a timeout gets the configured default (at save, so the job shows the limit
   * its runs have, and every admin of a cluster sends the same one).
   */
  #scriptJobSpec<S extends JobSpec & { glueType: ScriptKind }>(group: ExecutorGroup, spec: S): S {
    if (!group.scriptKinds.includes(spec.glueType)) {
      const allowed =
        group.scriptKinds.length === 0
          ? 'scripts are disabled for it'
          : `it allows ${group.scriptKinds.join(', ')}`;
      throw new FailedPreconditionError(
        `executor group ${group.appName} does not allow GLUE_TYPE_${spec.glueType} scripts (${allowed}; an admin sets its script_kinds)`,
        { field: 'glueType' },
      );
    }
    if (spec.timeoutSeconds === 0 && this.#scripts.defaultTimeoutSeconds > 0) {
      return { ...spec, timeoutSeconds: this.#scripts.defaultTimeoutSeconds };
    }
    return spec;
  }

  /** Every script change is attributed and logged: who, which job and version, and what (by hash). */
  #logScriptChange(job: Job, version: JobScriptVersion, by: string): void {
    this.#logger.info(
      {
        by,
        jobId: job.id,
        versionId: version.id,
        glueType: version.glueType,
        sourceBytes: Buffer.byteLength(version.source, 'utf8'),
        sourceSha256: createHash('sha256').update(version.source, 'utf8').digest('hex'),
        ...(version.restoredFromId === null ? {} : { restoredFromId: version.restoredFromId }),
      },
      'job script saved',
    );
  }

  /** After a spec change: a running job's changed schedule starts from now. */
  async #rescheduled(current: Job, saved: Job): Promise<Job> {
    let job = saved;
    const scheduleChanged =
      saved.scheduleType !== current.scheduleType ||
      saved.scheduleConf !== current.scheduleConf ||
      saved.timeZone !== current.timeZone;
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
  async #checkReferences(spec: JobSpec, jobId: string | undefined): Promise<ExecutorGroup> {
    const group = await findGroupById(this.#db, spec.groupId);
    if (!group) {
      throw new NotFoundError(`executor group ${spec.groupId} does not exist`, { field: 'groupId' });
    }
    if (spec.childJobIds.length === 0) return group;
    if (jobId !== undefined && spec.childJobIds.includes(jobId)) {
      throw new InvalidInputError('a job cannot be its own child', { field: 'childJobIds' });
    }
    const existing = await existingJobIds(this.#db, spec.childJobIds);
    const missing = spec.childJobIds.filter(id => !existing.has(id));
    if (missing.length > 0) {
      throw new NotFoundError(`job ${missing.join(', ')} does not exist`, { field: 'childJobIds' });
    }
    if (jobId === undefined) return group; // a new job has no parents yet, so it cannot close a cycle
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
    return group;
  }
}

function jobNotFound(id: string): never {
  throw new NotFoundError(`job ${id} does not exist`);
}

function groupNotFound(id: string): never {
  throw new NotFoundError(`executor group ${id} does not exist`);
}

function versionNotFound(jobId: string, versionId: string): never {
  throw new NotFoundError(`job ${jobId} has no script version ${versionId}`);
}

/** The operator-set fields of a job. */
function jobSpecOf(job: Job): JobSpec {
  const {
    id: _id,
    triggerStatus: _triggerStatus,
    lastTriggerAt: _lastTriggerAt,
    nextTriggerAt: _nextTriggerAt,
    glueUpdatedAt: _glueUpdatedAt,
    createdAt: _createdAt,
    updatedAt: _updatedAt,
    ...spec
  } = job;
  return spec;
}
