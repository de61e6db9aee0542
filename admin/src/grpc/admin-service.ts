import { ServerError, Status, type CallContext } from 'nice-grpc';
import {
  countJobsOfGroup,
  deleteGroup,
  findGroupById,
  insertGroup,
  listGroups,
  setGroupTokenHash,
  updateGroup,
} from '../db/groups.repository.js';
import {
  deleteJob,
  findJobById,
  groupIdsOfJobs,
  insertJob,
  listJobs,
  parentJobIds,
  setJobTriggerStatus,
  updateJobSpec,
} from '../db/jobs.repository.js';
import { isUniqueViolation } from '../db/errors.js';
import { findLogById, listLogs } from '../db/logs.repository.js';
import { listPresence } from '../db/registry.repository.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type * as domain from '../domain.js';
import { logStatus } from '../domain.js';
import type { ExecutorDirectory, ExecutorHandle } from '../executors/executor-directory.js';
import { ExecutorRequestError } from '../dispatch/executor-port.js';
import { cancelPendingFires } from '../db/scheduler.repository.js';
import type { QuartzCronCompiler } from '../schedule/cron/index.js';
import { compileSchedule, isTimeZone, ScheduleError } from '../schedule/schedule.js';
import { DEFAULT_DASHBOARD_DAYS, loadDashboard, MAX_DASHBOARD_SPAN_DAYS } from '../housekeeping/dashboard.js';
import { addDays, dayInZone, daysBetween, parseDay } from '../housekeeping/days.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type * as adminPb from '@jobstream/proto/admin';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { RejectReason, rejectReasonToJSON } from '@jobstream/proto/executor';
import { generateToken, hashToken } from '../auth/tokens.js';
import { createAccountMethods, type AccountMethodsOptions } from './account-methods.js';
import {
  type Access,
  type Principal,
  denied,
  mayAccessGroup,
  requireAdmin,
  requireGroupAccess,
  visibleGroupIds,
} from '../auth/access.js';
import { addressTypes, logStatuses, scheduleTypes, triggerStatuses } from './enums.js';
import { checkJobReferences, parseJobSpec } from './job-spec.js';
import { APP_NAME_PATTERN, APP_NAME_RULE, INSTANCE_NAME_PATTERN, durationToMs } from '@jobstream/proto';
import { isInTimestampRange } from './request-sanity.js';
import { executorToProto, groupToProto, jobSpecToProto, jobToProto, logToProto } from './mappers.js';
import {
  applyFieldMask,
  decodePageToken,
  encodePageToken,
  invalid,
  optionalId,
  pageSize,
  requireEnum,
  requireId,
  requirePattern,
  requireText,
  requireInteger,
  truncate,
} from './validation.js';

export interface AdminServiceOptions extends AccountMethodsOptions {
  directory: ExecutorDirectory;
  scheduler: Scheduler;
  /** The scheduler's own (app.ts passes both the same one): one set of caches, not two. */
  cronCompiler: QuartzCronCompiler;
  defaultTimeZone: string;
  dispatcher: Dispatcher;
  requestDeadlineMs: number;
}

const MAX_EXPLICIT_EXECUTORS = 1_000;
const MAX_MANUAL_ADDRESSES = 1_000;
/** Runs one TriggerJobRuns call may ask for: one transaction's worth, well under the message limit. */
const MAX_TRIGGERED_RUNS = 1_000;
const MAX_PREVIOUS_TOKEN_GRACE_MS = 30 * 24 * 3_600_000;

/** Turns the unique violation on executor_group.app_name into ALREADY_EXISTS. */
function appNameTaken(spec: domain.ExecutorGroupSpec): (error: unknown) => never {
  return error => {
    if (isUniqueViolation(error)) {
      throw new ServerError(
        Status.ALREADY_EXISTS,
        `spec.app_name: "${spec.appName}" is already used by a group`,
      );
    }
    throw error;
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

function notFound(what: string, id: string): never {
  throw new ServerError(Status.NOT_FOUND, `${what} ${id} does not exist`);
}

function parseGroupSpec(
  field: string,
  spec: adminPb.ExecutorGroupSpec | undefined,
): domain.ExecutorGroupSpec {
  if (!spec) invalid(field, 'is required');
  const addressType = requireEnum(`${field}.address_type`, addressTypes, spec.addressType, 'AUTO');
  if (spec.addresses.length > MAX_MANUAL_ADDRESSES) {
    invalid(`${field}.addresses`, `lists more than ${MAX_MANUAL_ADDRESSES} instances`);
  }
  const addresses = [
    ...new Set(
      spec.addresses.map((name, index) =>
        requirePattern(
          `${field}.addresses[${index}]`,
          name,
          INSTANCE_NAME_PATTERN,
          'an executor instance name',
        ),
      ),
    ),
  ];
  if (addressType === 'MANUAL' && addresses.length === 0) {
    invalid(`${field}.addresses`, 'is required for ADDRESS_TYPE_MANUAL');
  }
  if (addressType === 'AUTO' && addresses.length > 0) {
    invalid(`${field}.addresses`, 'must be empty for ADDRESS_TYPE_AUTO (executors register themselves)');
  }
  return {
    appName: requirePattern(`${field}.app_name`, spec.appName, APP_NAME_PATTERN, APP_NAME_RULE),
    title: requireText(`${field}.title`, spec.title.trim(), { min: 1, max: 64 }),
    addressType,
    addresses,
  };
}

function groupSpecToProto(group: domain.ExecutorGroupSpec): adminPb.ExecutorGroupSpec {
  return {
    appName: group.appName,
    title: group.title,
    addressType: addressTypes.toProto(group.addressType),
    addresses: group.addresses,
  };
}

/**
 * AdminService: the operator API. Every method authenticates the caller first, then
 * checks its role and group grants against every object the call touches.
 */
export function createAdminService(options: AdminServiceOptions): AdminServiceImplementation {
  const { db } = options;

  function authenticate(context: CallContext): Promise<Principal> {
    return options.authenticator.authenticate(context);
  }

  async function requireJob(
    caller: Principal,
    access: Access,
    field: string,
    id: string,
  ): Promise<domain.Job> {
    const job = (await findJobById(db, requireId(field, id))) ?? notFound('job', id);
    requireGroupAccess(caller, job.groupId, access, `job ${job.id}`);
    return job;
  }

  async function requireLog(
    caller: Principal,
    access: Access,
    field: string,
    id: string,
  ): Promise<domain.TriggerLog> {
    const log = (await findLogById(db, requireId(field, id))) ?? notFound('log', id);
    requireGroupAccess(caller, log.groupId, access, `log ${log.id}`);
    return log;
  }

  /** A job spec may only name the caller's groups: its own group and its child jobs'. */
  async function requireSpecAccess(caller: Principal, spec: domain.JobSpec): Promise<void> {
    requireGroupAccess(caller, spec.groupId, 'write', 'spec.group_id');
    if (caller.role === 'ADMIN' || spec.childJobIds.length === 0) return;
    const groups = await groupIdsOfJobs(db, spec.childJobIds);
    spec.childJobIds.forEach((childId, index) => {
      const groupId = groups.get(childId);
      if (groupId !== undefined && !mayAccessGroup(caller, groupId, 'write')) {
        denied(
          `spec.child_job_ids[${index}]: job ${childId} belongs to executor group ${groupId}, which user "${caller.name}" is not granted`,
        );
      }
    });
  }

  /** The executor a log's run was sent to, through whichever admin holds its stream. */
  async function sessionOfLog(log: domain.TriggerLog): Promise<ExecutorHandle> {
    if (log.executorInstance === null) {
      throw new ServerError(Status.FAILED_PRECONDITION, `log ${log.id} was not dispatched to any executor`);
    }
    const group = await findGroupById(db, log.groupId);
    const handle = group && (await options.directory.find(group.appName, log.executorInstance));
    if (!handle) {
      throw new ServerError(
        Status.UNAVAILABLE,
        `executor ${log.executorInstance} of log ${log.id} is not connected to any admin`,
      );
    }
    return handle;
  }

  /** The first fire of a job started now, or FAILED_PRECONDITION when it never fires. */
  function firstFire(job: domain.Job): Date {
    let schedule;
    try {
      schedule = options.scheduler.scheduleOf(job);
    } catch (error) {
      if (error instanceof ScheduleError) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `job ${job.id} has an invalid schedule: ${error.message}`,
        );
      }
      throw error;
    }
    const first = schedule.nextAfter(new Date());
    if (first === null) {
      throw new ServerError(Status.FAILED_PRECONDITION, `job ${job.id}'s schedule never fires again`);
    }
    return first;
  }

  function executorFailure(error: unknown): never {
    if (error instanceof ExecutorRequestError) {
      throw new ServerError(
        error.kind === 'no-answer' ? Status.DEADLINE_EXCEEDED : Status.UNAVAILABLE,
        error.message,
      );
    }
    throw error;
  }

  return {
    ...createAccountMethods(options),

    async createExecutorGroup(request, context) {
      requireAdmin(await authenticate(context), 'create executor groups');
      const spec = parseGroupSpec('spec', request.spec);
      const token = generateToken();
      const group = await insertGroup(db, spec, hashToken(token)).catch(appNameTaken(spec));
      return { group: groupToProto(group), accessToken: token };
    },

    async updateExecutorGroup(request, context) {
      requireAdmin(await authenticate(context), 'change executor groups');
      const id = requireId('id', request.id);
      const current = (await findGroupById(db, id)) ?? notFound('executor group', id);
      const merged = applyFieldMask(
        'update_mask',
        groupSpecToProto(current),
        request.spec ?? groupSpecToProto(current),
        request.updateMask,
      );
      const spec = parseGroupSpec('spec', merged);
      const group =
        (await updateGroup(db, id, spec).catch(appNameTaken(spec))) ?? notFound('executor group', id);
      return { group: groupToProto(group) };
    },

    async deleteExecutorGroup(request, context) {
      requireAdmin(await authenticate(context), 'delete executor groups');
      const id = requireId('id', request.id);
      const jobs = await countJobsOfGroup(db, id);
      if (jobs > 0) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `executor group ${id} still has ${jobs} job(s); delete them first`,
        );
      }
      if (!(await deleteGroup(db, id))) notFound('executor group', id);
      return {};
    },

    async getExecutorGroup(request, context) {
      const caller = await authenticate(context);
      const id = requireId('id', request.id);
      requireGroupAccess(caller, id, 'read', `executor group ${id}`);
      const group = (await findGroupById(db, id)) ?? notFound('executor group', id);
      return { group: groupToProto(group) };
    },

    async listExecutorGroups(request, context) {
      const caller = await authenticate(context);
      const contains = requireText('app_name_contains', request.appNameContains, { max: 64 });
      return { groups: (await listGroups(db, contains, visibleGroupIds(caller))).map(groupToProto) };
    },

    async rotateExecutorGroupToken(request, context) {
      requireAdmin(await authenticate(context), 'rotate executor tokens');
      const id = requireId('id', request.id);
      const graceMs = durationToMs(request.previousTokenGrace);
      if (graceMs < 0 || graceMs > MAX_PREVIOUS_TOKEN_GRACE_MS) {
        invalid('previous_token_grace', 'must be from 0 to 30 days');
      }
      const token = generateToken();
      const previousValidUntil = graceMs > 0 ? new Date(Date.now() + graceMs) : null;
      if (!(await setGroupTokenHash(db, id, hashToken(token), previousValidUntil))) {
        notFound('executor group', id);
      }
      return { accessToken: token };
    },

    async createJob(request, context) {
      const caller = await authenticate(context);
      const spec = parseJobSpec('spec', request.spec, options.cronCompiler);
      await checkJobReferences(db, 'spec', spec, undefined);
      await requireSpecAccess(caller, spec);
      return { job: jobToProto(await insertJob(db, spec)) };
    },

    async updateJob(request, context) {
      const caller = await authenticate(context);
      const current = await requireJob(caller, 'write', 'id', request.id);
      const merged = applyFieldMask(
        'update_mask',
        jobSpecToProto(current),
        request.spec ?? jobSpecToProto(current),
        request.updateMask,
      );
      const spec = parseJobSpec('spec', merged, options.cronCompiler);
      await checkJobReferences(db, 'spec', spec, current.id);
      await requireSpecAccess(caller, spec);
      const glueChanged = spec.glueSource !== current.glueSource || spec.glueType !== current.glueType;
      let job = (await updateJobSpec(db, current.id, spec, glueChanged)) ?? notFound('job', current.id);
      const scheduleChanged =
        spec.scheduleType !== current.scheduleType ||
        spec.scheduleConf !== current.scheduleConf ||
        spec.timeZone !== current.timeZone;
      if (job.triggerStatus === 'RUNNING' && scheduleChanged) {
        // Fires planned on the old schedule are withdrawn; the new one starts from now.
        await cancelPendingFires(db, job.id);
        const next =
          job.scheduleType === 'NONE' ? null : options.scheduler.scheduleOf(job).nextAfter(new Date());
        job =
          (await setJobTriggerStatus(db, job.id, next === null ? 'STOPPED' : 'RUNNING', next)) ??
          notFound('job', job.id);
      }
      return { job: jobToProto(job) };
    },

    async deleteJob(request, context) {
      const caller = await authenticate(context);
      const id = (await requireJob(caller, 'write', 'id', request.id)).id;
      const parents = await parentJobIds(db, id);
      if (parents.length > 0) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `job ${id} is a child of job ${parents.join(', ')}; remove it from their child_job_ids first`,
        );
      }
      if (!(await deleteJob(db, id))) notFound('job', id);
      return {};
    },

    async getJob(request, context) {
      const caller = await authenticate(context);
      return { job: jobToProto(await requireJob(caller, 'read', 'id', request.id)) };
    },

    async listJobs(request, context) {
      const caller = await authenticate(context);
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
      const { jobs, totalCount } = await listJobs(db, filter, { afterId, limit });
      const last = jobs.at(-1);
      return {
        jobs: jobs.map(jobToProto),
        totalCount: String(totalCount),
        nextPageToken: jobs.length === limit && last ? encodePageToken({ a: last.id }) : '',
      };
    },

    async startJob(request, context) {
      const caller = await authenticate(context);
      const job = await requireJob(caller, 'write', 'id', request.id);
      if (job.scheduleType === 'NONE') {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `job ${job.id} has SCHEDULE_TYPE_NONE and fires only when triggered; set a schedule first`,
        );
      }
      if (job.triggerStatus === 'RUNNING') return { job: jobToProto(job) };
      const started =
        (await setJobTriggerStatus(db, job.id, 'RUNNING', firstFire(job))) ?? notFound('job', job.id);
      return { job: jobToProto(started) };
    },

    async stopJob(request, context) {
      const caller = await authenticate(context);
      const job = await requireJob(caller, 'write', 'id', request.id);
      const stopped = (await setJobTriggerStatus(db, job.id, 'STOPPED', null)) ?? notFound('job', job.id);
      // After the status change: a claim that held the job's row lock has committed its
      // fires by now, and they are withdrawn here unless already being sent.
      await cancelPendingFires(db, job.id);
      return { job: jobToProto(stopped) };
    },

    async nextTriggerTimes(request, context) {
      await authenticate(context);
      const type = requireEnum('schedule_type', scheduleTypes, request.scheduleType);
      const timeZone = request.timeZone || options.defaultTimeZone;
      if (!isTimeZone(timeZone)) invalid('time_zone', `"${truncate(timeZone)}" is not an IANA time zone`);
      const count = request.count === 0 ? 5 : requireInteger('count', request.count, 1, 100);
      requireText('schedule_conf', request.scheduleConf, { max: 256 });
      let schedule;
      try {
        schedule = compileSchedule(type, request.scheduleConf.trim(), timeZone, options.cronCompiler);
      } catch (error) {
        if (error instanceof ScheduleError) invalid('schedule_conf', error.message);
        throw error;
      }
      const times: Date[] = [];
      let after = request.from ?? new Date();
      const anchor = after;
      while (times.length < count) {
        const next = schedule.nextAfter(after, anchor);
        if (next === null) break;
        times.push(next);
        after = next;
      }
      return { times, timeZone };
    },

    async triggerJob(request, context) {
      const caller = await authenticate(context);
      const job = await requireJob(caller, 'write', 'job_id', request.jobId);
      const param =
        request.param === undefined ? undefined : requireText('param', request.param, { max: 4096 });
      const executorInstances = requireExecutorInstances(request.executorInstances);
      const logs = await options.dispatcher.trigger(job, {
        triggerType: 'MANUAL',
        ...(param === undefined ? {} : { paramOverride: param }),
        executorInstances,
      });
      return { logIds: logs.map(log => log.id) };
    },

    async triggerJobRuns(request, context) {
      const caller = await authenticate(context);
      const job = await requireJob(caller, 'write', 'job_id', request.jobId);
      if (request.runs.length === 0 || request.runs.length > MAX_TRIGGERED_RUNS) {
        invalid('runs', `must list 1 to ${MAX_TRIGGERED_RUNS} runs, got ${request.runs.length}`);
      }
      const runs = request.runs.map((run, index) =>
        run.param === undefined
          ? {}
          : { paramOverride: requireText(`runs[${index}].param`, run.param, { max: 4096 }) },
      );
      const executorInstances = requireExecutorInstances(request.executorInstances);
      const logs = await options.dispatcher.triggerRuns(job, runs, executorInstances);
      return { runs: logs.map(run => ({ logIds: run.map(log => log.id) })) };
    },

    async listExecutors(request, context) {
      const caller = await authenticate(context);
      const appName =
        request.appName === ''
          ? undefined
          : requirePattern('app_name', request.appName, APP_NAME_PATTERN, APP_NAME_RULE);
      let appNames: string[] | undefined;
      const visible = visibleGroupIds(caller);
      if (visible !== undefined) {
        appNames = (await listGroups(db, '', visible)).map(group => group.appName);
        if (appName !== undefined && !appNames.includes(appName)) {
          denied(`user "${caller.name}" is not granted the executor group of app_name "${appName}"`);
        }
      }
      const executors = await listPresence(db, appName, new Date(), appNames);
      return { executors: executors.map(executorToProto) };
    },

    async listLogs(request, context) {
      const caller = await authenticate(context);
      const limit = pageSize('page_size', request.pageSize);
      const before = decodePageToken('page_token', request.pageToken, value => {
        const token = value as { t?: unknown; i?: unknown } | null;
        if (typeof token?.t !== 'number' || typeof token.i !== 'string') return undefined;
        // A forged time outside Timestamp's range would fail in PostgreSQL (INTERNAL).
        if (!isInTimestampRange(new Date(token.t))) return undefined;
        return { triggeredAt: new Date(token.t), id: requireId('page_token', token.i) };
      });
      if (
        request.triggeredAfter &&
        request.triggeredBefore &&
        request.triggeredAfter >= request.triggeredBefore
      ) {
        invalid('triggered_before', 'must be later than triggered_after');
      }
      const groupId = optionalId('group_id', request.groupId);
      if (groupId !== undefined) requireGroupAccess(caller, groupId, 'read', `executor group ${groupId}`);
      const jobId = optionalId('job_id', request.jobId);
      if (jobId !== undefined) await requireJob(caller, 'read', 'job_id', jobId);
      const logs = await listLogs(
        db,
        {
          groupId,
          groupIds: visibleGroupIds(caller),
          jobId,
          status: request.status === 0 ? undefined : requireEnum('status', logStatuses, request.status),
          triggeredAfter: request.triggeredAfter,
          triggeredBefore: request.triggeredBefore,
        },
        { before, limit },
      );
      const last = logs.at(-1);
      return {
        logs: logs.map(logToProto),
        nextPageToken:
          logs.length === limit && last ? encodePageToken({ t: last.triggeredAt.getTime(), i: last.id }) : '',
      };
    },

    async getLog(request, context) {
      const caller = await authenticate(context);
      return { log: logToProto(await requireLog(caller, 'read', 'id', request.id)) };
    },

    async readExecutorLog(request, context) {
      const caller = await authenticate(context);
      const log = await requireLog(caller, 'read', 'log_id', request.logId);
      const fromLine = request.fromLine === 0 ? 1 : request.fromLine;
      const maxLines = request.maxLines === 0 ? 200 : request.maxLines;
      if (maxLines > 1000) invalid('max_lines', 'must be from 1 to 1000');
      const session = await sessionOfLog(log);
      const reply = await session
        .request(
          { $case: 'logReadRequest', value: { logId: log.id, fromLine, maxLines } },
          options.requestDeadlineMs,
        )
        .catch(executorFailure);
      if (!reply.accepted || !reply.logChunk) {
        const status =
          reply.rejectReason === RejectReason.REJECT_REASON_UNKNOWN_RUN
            ? Status.NOT_FOUND
            : Status.UNAVAILABLE;
        throw new ServerError(
          status,
          `executor ${session.instanceName} has no log for run ${log.id} (${rejectReasonToJSON(reply.rejectReason)})${
            reply.message ? `: ${reply.message}` : ''
          }`,
        );
      }
      const chunk = reply.logChunk;
      return { fromLine: chunk.fromLine, toLine: chunk.toLine, lines: chunk.lines, end: chunk.end };
    },

    async killRun(request, context) {
      const caller = await authenticate(context);
      const log = await requireLog(caller, 'write', 'log_id', request.logId);
      if (logStatus(log) !== 'RUNNING') {
        throw new ServerError(Status.FAILED_PRECONDITION, `log ${log.id} is not running`);
      }
      const session = await sessionOfLog(log);
      const reply = await session
        .request(
          { $case: 'killRequest', value: { logId: log.id, reason: 'killed by an operator' } },
          options.requestDeadlineMs,
        )
        .catch(executorFailure);
      if (!reply.accepted) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `executor ${session.instanceName} refused the kill (${rejectReasonToJSON(reply.rejectReason)})${
            reply.message ? `: ${reply.message}` : ''
          }`,
        );
      }
      return { message: reply.message || `kill sent to ${session.instanceName}` };
    },

    async getDashboard(request, context) {
      // Its totals span every group (XXL-JOB showed them to every user, a known leak).
      requireAdmin(await authenticate(context), 'read the dashboard, which covers every group');
      const timeZone = options.defaultTimeZone;
      const now = new Date();
      const today = dayInZone(now, timeZone);
      const day = (field: string, text: string): string =>
        parseDay(text) ?? invalid(field, `must be a date as YYYY-MM-DD, got "${truncate(text)}"`);
      const toDay = request.toDay === '' ? today : day('to_day', request.toDay);
      const fromDay =
        request.fromDay === ''
          ? addDays(toDay, 1 - DEFAULT_DASHBOARD_DAYS)
          : day('from_day', request.fromDay);
      if (fromDay > toDay) invalid('from_day', `must not be after to_day (${toDay})`);
      if (daysBetween(fromDay, toDay) > MAX_DASHBOARD_SPAN_DAYS) {
        invalid('to_day', `must be at most ${MAX_DASHBOARD_SPAN_DAYS} days after from_day (${fromDay})`);
      }
      const dashboard = await loadDashboard(db, { fromDay, toDay, today, timeZone, now });
      return {
        jobCount: String(dashboard.jobCount),
        runningJobCount: String(dashboard.runningJobCount),
        groupCount: String(dashboard.groupCount),
        executorsOnline: String(dashboard.executorsOnline),
        days: dashboard.days.map(d => ({
          day: d.day,
          runningCount: String(d.runningCount),
          succeededCount: String(d.succeededCount),
          failedCount: String(d.failedCount),
        })),
        runningCount: String(dashboard.runningCount),
        succeededCount: String(dashboard.succeededCount),
        failedCount: String(dashboard.failedCount),
      };
    },
  };
}
