import { INSTANCE_NAME_PATTERN } from '@jobstream/proto';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import {
  type Access,
  type Principal,
  denied,
  mayAccessGroup,
  requireGroupAccess,
  requireScriptPermission,
  visibleGroupIds,
} from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import type * as domain from '../../domain.js';
import { isScriptKind } from '../../domain.js';
import { isTimeZone } from '../../schedule/schedule.js';
import type { AuthorizeSpec, JobsService } from '../../services/jobs.js';
import { inField } from '../domain-status.js';
import { scheduleTypes, triggerStatuses } from '../../wire/enums.js';
import type { QuartzCronCompiler } from '../../schedule/cron/index.js';
import { parseJobSpec, type ScriptLimits } from '../job-spec.js';
import { jobSpecToProto, jobToProto, scriptVersionToProto } from '../mappers.js';
import {
  applyFieldMask,
  decodePageToken,
  encodePageToken,
  invalid,
  optionalId,
  pageSize,
  requireEnum,
  requireId,
  requireInteger,
  requirePattern,
  requireText,
  truncate,
} from '../validation.js';

export interface JobMethodsOptions {
  authenticator: Authenticator;
  jobs: JobsService;
  /** Compiles the cron expressions of specs while they are read (the scheduler's own). */
  cronCompiler: QuartzCronCompiler;
  /** The zone of schedules that name none. */
  defaultTimeZone: string;
  /** What the admin's configuration allows of scripts. */
  scriptLimits: ScriptLimits;
}

type JobMethods = Pick<
  AdminServiceImplementation,
  | 'createJob'
  | 'updateJob'
  | 'deleteJob'
  | 'getJob'
  | 'listJobs'
  | 'startJob'
  | 'stopJob'
  | 'nextTriggerTimes'
  | 'triggerJob'
  | 'triggerJobRuns'
  | 'listJobScriptVersions'
  | 'getJobScriptVersion'
  | 'restoreJobScriptVersion'
>;

const MAX_EXPLICIT_EXECUTORS = 1_000;
/** Runs one TriggerJobRuns call may ask for: one transaction's worth, well under the message limit. */
const MAX_TRIGGERED_RUNS = 1_000;

/** The job `id` names, when it exists and the caller may `access` its group. */
export async function requireJob(
  jobs: JobsService,
  caller: Principal,
  access: Access,
  field: string,
  id: string,
): Promise<domain.Job> {
  const job = await jobs.get(requireId(field, id));
  requireGroupAccess(caller, job.groupId, access, `job ${job.id}`);
  return job;
}

/** AdminService methods for jobs: their specs, schedules and manual triggers. */
export function createJobMethods(options: JobMethodsOptions): JobMethods {
  const { authenticator, jobs } = options;

  /** A job spec may only name the caller's groups: its own group and its child jobs'. */
  function specAccessOf(caller: Principal): AuthorizeSpec {
    return async spec => {
      requireGroupAccess(caller, spec.groupId, 'write', 'spec.group_id');
      if (caller.role === 'ADMIN' || spec.childJobIds.length === 0) return;
      const groups = await jobs.groupIdsOfJobs(spec.childJobIds);
      spec.childJobIds.forEach((childId, index) => {
        const groupId = groups.get(childId);
        if (groupId !== undefined && !mayAccessGroup(caller, groupId, 'write')) {
          denied(
            `spec.child_job_ids[${index}]: job ${childId} belongs to executor group ${groupId}, which user "${caller.name}" is not granted`,
          );
        }
      });
    };
  }

  return {
    async createJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const spec = parseJobSpec('spec', request.spec, options.cronCompiler, options.scriptLimits);
      if (isScriptKind(spec.glueType)) {
        requireScriptPermission(caller, `create a script job (spec.glue_type GLUE_TYPE_${spec.glueType})`);
      }
      const job = await jobs.create(spec, specAccessOf(caller), caller.name).catch(inField('spec'));
      return { job: jobToProto(job) };
    },

    async updateJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const current = await requireJob(jobs, caller, 'write', 'id', request.id);
      const merged = applyFieldMask(
        'update_mask',
        jobSpecToProto(current),
        request.spec ?? jobSpecToProto(current),
        request.updateMask,
      );
      const spec = parseJobSpec('spec', merged, options.cronCompiler, options.scriptLimits);
      // Changing a script, or a job into a script job or back, is script editing.
      const scriptChanged = spec.glueType !== current.glueType || spec.glueSource !== current.glueSource;
      if (scriptChanged && (isScriptKind(spec.glueType) || isScriptKind(current.glueType))) {
        requireScriptPermission(
          caller,
          `change the script of job ${current.id} (spec.glue_type, spec.glue_source)`,
        );
      }
      const job = await jobs.update(current, spec, specAccessOf(caller), caller.name).catch(inField('spec'));
      return { job: jobToProto(job) };
    },

    async listJobScriptVersions(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'read', 'job_id', request.jobId);
      const versions = await jobs.listScriptVersions(job, request.includeSource);
      return { versions: versions.map(scriptVersionToProto) };
    },

    async getJobScriptVersion(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'read', 'job_id', request.jobId);
      const version = await jobs.getScriptVersion(job, requireId('version_id', request.versionId));
      return { version: scriptVersionToProto(version) };
    },

    async restoreJobScriptVersion(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'job_id', request.jobId);
      const versionId = requireId('version_id', request.versionId);
      const remark = requireText('remark', request.remark, { max: 128 });
      requireScriptPermission(caller, `restore a script version of job ${job.id}`);
      const restored = await jobs.restoreScriptVersion(job, versionId, remark, caller.name);
      return { job: jobToProto(restored.job), version: scriptVersionToProto(restored.version) };
    },

    async deleteJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'id', request.id);
      await jobs.delete(job.id);
      return {};
    },

    async getJob(request, context) {
      const caller = await authenticator.authenticate(context);
      return { job: jobToProto(await requireJob(jobs, caller, 'read', 'id', request.id)) };
    },

    async listJobs(request, context) {
      const caller = await authenticator.authenticate(context);
      const limit = pageSize('page_size', request.pageSize);
      const afterId = decodePageToken('page_token', request.pageToken, value =>
        typeof value === 'object' && value !== null && typeof (value as { a?: unknown }).a === 'string'
          ? requireId('page_token', (value as { a: string }).a)
          : undefined,
      );
      const groupId = optionalId('group_id', request.groupId);
      if (groupId !== undefined) requireGroupAccess(caller, groupId, 'read', `executor group ${groupId}`);
      const filter = {
        groupId,
        groupIds: visibleGroupIds(caller),
        triggerStatus:
          request.triggerStatus === 0
            ? undefined
            : requireEnum('trigger_status', triggerStatuses, request.triggerStatus),
        descriptionContains: requireText('description_contains', request.descriptionContains, { max: 255 }),
        handlerContains: requireText('handler_contains', request.handlerContains, { max: 255 }),
        authorContains: requireText('author_contains', request.authorContains, { max: 64 }),
      };
      const { jobs: page, totalCount } = await jobs.list(filter, { afterId, limit });
      const last = page.at(-1);
      return {
        jobs: page.map(jobToProto),
        totalCount: String(totalCount),
        nextPageToken: page.length === limit && last ? encodePageToken({ a: last.id }) : '',
      };
    },

    async startJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'id', request.id);
      return { job: jobToProto(await jobs.start(job)) };
    },

    async stopJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'id', request.id);
      return { job: jobToProto(await jobs.stop(job)) };
    },

    async nextTriggerTimes(request, context) {
      await authenticator.authenticate(context);
      const scheduleType = requireEnum('schedule_type', scheduleTypes, request.scheduleType);
      const timeZone = request.timeZone || options.defaultTimeZone;
      if (!isTimeZone(timeZone)) invalid('time_zone', `"${truncate(timeZone)}" is not an IANA time zone`);
      const count = request.count === 0 ? 5 : requireInteger('count', request.count, 1, 100);
      requireText('schedule_conf', request.scheduleConf, { max: 256 });
      const times = jobs.upcomingFireTimes(
        { scheduleType, scheduleConf: request.scheduleConf.trim(), timeZone },
        request.from,
        count,
      );
      return { times, timeZone };
    },

    async triggerJob(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'job_id', request.jobId);
      const param =
        request.param === undefined ? undefined : requireText('param', request.param, { max: 4096 });
      const executorInstances = requireExecutorInstances(request.executorInstances);
      const logs = await jobs.trigger(job, {
        ...(param === undefined ? {} : { paramOverride: param }),
        executorInstances,
      });
      return { logIds: logs.map(log => log.id) };
    },

    async triggerJobRuns(request, context) {
      const caller = await authenticator.authenticate(context);
      const job = await requireJob(jobs, caller, 'write', 'job_id', request.jobId);
      if (request.runs.length === 0 || request.runs.length > MAX_TRIGGERED_RUNS) {
        invalid('runs', `must list 1 to ${MAX_TRIGGERED_RUNS} runs, got ${request.runs.length}`);
      }
      const runs = request.runs.map((run, index) =>
        run.param === undefined
          ? {}
          : { paramOverride: requireText(`runs[${index}].param`, run.param, { max: 4096 }) },
      );
      const executorInstances = requireExecutorInstances(request.executorInstances);
      const logs = await jobs.triggerRuns(job, runs, executorInstances);
      return { runs: logs.map(run => ({ logIds: run.map(log => log.id) })) };
    },
  };
}

/** TriggerJob's and TriggerJobRuns' executor_instances, checked. */
function requireExecutorInstances(names: readonly string[]): string[] {
  if (names.length > MAX_EXPLICIT_EXECUTORS) {
    invalid('executor_instances', `lists more than ${MAX_EXPLICIT_EXECUTORS} instances`);
  }
  return names.map((name, index) =>
    requirePattern(`executor_instances[${index}]`, name, INSTANCE_NAME_PATTERN, 'an executor instance name'),
  );
}
