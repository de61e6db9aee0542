import { ServerError, Status } from 'nice-grpc';
import type { AdminServiceImplementation } from '@jobstream/proto/admin';
import { RejectReason, rejectReasonToJSON } from '@jobstream/proto/executor';
import { type Access, type Principal, requireGroupAccess, visibleGroupIds } from '../../auth/access.js';
import type { Authenticator } from '../auth.js';
import type * as domain from '../../domain.js';
import { ExecutorRequestError } from '../../dispatch/executor-port.js';
import type { JobsService } from '../../services/jobs.js';
import type { LogsService } from '../../services/logs.js';
import { logStatuses } from '../../wire/enums.js';
import { logToProto } from '../mappers.js';
import { isInTimestampRange } from '../request-sanity.js';
import {
  decodePageToken,
  encodePageToken,
  invalid,
  optionalId,
  pageSize,
  requireEnum,
  requireId,
} from '../validation.js';
import { requireJob } from './jobs.js';

export interface LogMethodsOptions {
  authenticator: Authenticator;
  logs: LogsService;
  jobs: JobsService;
  /** How long an executor has to answer a log read or a kill. */
  requestDeadlineMs: number;
}

type LogMethods = Pick<AdminServiceImplementation, 'listLogs' | 'getLog' | 'readExecutorLog' | 'killRun'>;

/**
 * AdminService methods for runs: their logs, and the executor requests about a run (its
 * output, a kill), relayed over the executor's stream wherever it is held.
 */
export function createLogMethods(options: LogMethodsOptions): LogMethods {
  const { authenticator, logs, jobs } = options;

  async function requireLog(
    caller: Principal,
    access: Access,
    field: string,
    id: string,
  ): Promise<domain.TriggerLog> {
    const log = await logs.get(requireId(field, id));
    requireGroupAccess(caller, log.groupId, access, `log ${log.id}`);
    return log;
  }

  return {
    async listLogs(request, context) {
      const caller = await authenticator.authenticate(context);
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
      if (jobId !== undefined) await requireJob(jobs, caller, 'read', 'job_id', jobId);
      const page = await logs.list(
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
      const last = page.at(-1);
      return {
        logs: page.map(logToProto),
        nextPageToken:
          page.length === limit && last ? encodePageToken({ t: last.triggeredAt.getTime(), i: last.id }) : '',
      };
    },

    async getLog(request, context) {
      const caller = await authenticator.authenticate(context);
      return { log: logToProto(await requireLog(caller, 'read', 'id', request.id)) };
    },

    async readExecutorLog(request, context) {
      const caller = await authenticator.authenticate(context);
      const log = await requireLog(caller, 'read', 'log_id', request.logId);
      const fromLine = request.fromLine === 0 ? 1 : request.fromLine;
      const maxLines = request.maxLines === 0 ? 200 : request.maxLines;
      if (maxLines > 1000) invalid('max_lines', 'must be from 1 to 1000');
      const executor = await logs.executorOf(log);
      const reply = await executor
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
          `executor ${executor.instanceName} has no log for run ${log.id} (${rejectReasonToJSON(reply.rejectReason)})${
            reply.message ? `: ${reply.message}` : ''
          }`,
        );
      }
      const chunk = reply.logChunk;
      return { fromLine: chunk.fromLine, toLine: chunk.toLine, lines: chunk.lines, end: chunk.end };
    },

    async killRun(request, context) {
      const caller = await authenticator.authenticate(context);
      const log = await requireLog(caller, 'write', 'log_id', request.logId);
      const executor = await logs.executorRunning(log);
      const reply = await executor
        .request(
          { $case: 'killRequest', value: { logId: log.id, reason: 'killed by an operator' } },
          options.requestDeadlineMs,
        )
        .catch(executorFailure);
      if (!reply.accepted) {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `executor ${executor.instanceName} refused the kill (${rejectReasonToJSON(reply.rejectReason)})${
            reply.message ? `: ${reply.message}` : ''
          }`,
        );
      }
      return { message: reply.message || `kill sent to ${executor.instanceName}` };
    },
  };
}

/** An executor that did not answer: DEADLINE_EXCEEDED when it may still act on the request. */
function executorFailure(error: unknown): never {
  if (error instanceof ExecutorRequestError) {
    throw new ServerError(
      error.kind === 'no-answer' ? Status.DEADLINE_EXCEEDED : Status.UNAVAILABLE,
      error.message,
    );
  }
  throw error;
}
