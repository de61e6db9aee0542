import type * as domain from '../domain.js';
import { logStatus } from '../domain.js';
import type * as adminPb from '@jobstream/proto/admin';
import { durationFromMs } from '@jobstream/proto';
import {
  alarmStatuses,
  addressTypes,
  blockStrategies,
  dispatchOutcomes,
  glueTypes,
  logStatuses,
  misfireStrategies,
  routeStrategies,
  runOutcomes,
  scheduleTypes,
  triggerStatuses,
  triggerTypes,
  userRoles,
} from '../wire/enums.js';

/** Domain objects to wire messages. Secrets (token hashes) never reach these types. */

export function groupToProto(group: domain.ExecutorGroup): adminPb.ExecutorGroup {
  return {
    id: group.id,
    appName: group.appName,
    title: group.title,
    addressType: addressTypes.toProto(group.addressType),
    addresses: group.addresses,
    createdAt: group.createdAt,
    updatedAt: group.updatedAt,
    scriptKinds: group.scriptKinds.map(kind => glueTypes.toProto(kind)),
  };
}

export function jobSpecToProto(spec: domain.JobSpec): adminPb.JobSpec {
  return {
    groupId: spec.groupId,
    description: spec.description,
    author: spec.author,
    alarmEmail: spec.alarmEmail,
    scheduleType: scheduleTypes.toProto(spec.scheduleType),
    scheduleConf: spec.scheduleConf,
    timeZone: spec.timeZone,
    misfireStrategy: misfireStrategies.toProto(spec.misfireStrategy),
    routeStrategy: routeStrategies.toProto(spec.routeStrategy),
    handler: spec.handler,
    param: spec.param,
    blockStrategy: blockStrategies.toProto(spec.blockStrategy),
    timeoutSeconds: spec.timeoutSeconds,
    failRetryCount: spec.failRetryCount,
    failRetryDelay: spec.failRetryDelayMs > 0 ? durationFromMs(spec.failRetryDelayMs) : undefined,
    glueType: glueTypes.toProto(spec.glueType),
    glueSource: spec.glueSource,
    glueRemark: spec.glueRemark,
    childJobIds: spec.childJobIds,
  };
}

export function jobToProto(job: domain.Job): adminPb.Job {
  return {
    id: job.id,
    spec: jobSpecToProto(job),
    triggerStatus: triggerStatuses.toProto(job.triggerStatus),
    lastTriggerAt: job.lastTriggerAt ?? undefined,
    nextTriggerAt: job.nextTriggerAt ?? undefined,
    glueUpdatedAt: job.glueUpdatedAt,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
}

export function logToProto(log: domain.TriggerLog): adminPb.Log {
  return {
    id: log.id,
    jobId: log.jobId,
    groupId: log.groupId,
    triggerType: triggerTypes.toProto(log.triggerType),
    status: logStatuses.toProto(logStatus(log)),
    executorInstance: log.executorInstance ?? '',
    handler: log.handler,
    param: log.param,
    shardIndex: log.shardIndex,
    shardTotal: log.shardTotal,
    attempt: log.attempt,
    retryOfLogId: log.retryOfLogId ?? '0',
    scheduledAt: log.scheduledAt,
    triggeredAt: log.triggeredAt,
    dispatchOutcome: dispatchOutcomes.toProto(log.dispatchOutcome),
    triggerMessage: log.triggerMessage,
    startedAt: log.startedAt ?? undefined,
    finishedAt: log.finishedAt ?? undefined,
    outcome: log.outcome === null ? 0 : runOutcomes.toProto(log.outcome),
    handleMessage: log.handleMessage,
    alarmStatus: log.alarmStatus === 'NONE' ? 0 : alarmStatuses.toProto(log.alarmStatus),
  };
}

export function executorToProto(presence: domain.ExecutorPresence): adminPb.Executor {
  return {
    appName: presence.appName,
    instanceName: presence.instanceName,
    hostname: presence.hostname,
    pid: presence.pid,
    sdkName: presence.sdkName,
    sdkVersion: presence.sdkVersion,
    handlers: presence.handlers,
    capacity: presence.capacity,
    labels: presence.labels,
    connectedAt: presence.connectedAt,
    lastBeatAt: presence.lastBeatAt,
    runningCount: presence.runningCount,
    queuedCount: presence.queuedCount,
    sessionId: presence.sessionId,
    adminInstanceId: presence.adminInstanceId,
    unresponsiveLogIds: presence.unresponsiveLogIds,
    eventLoopLagMs: presence.eventLoopLagMs,
    scriptKinds: presence.scriptKinds.map(kind => glueTypes.toProto(kind)),
  };
}

export function userToProto(user: domain.User): adminPb.User {
  return {
    id: user.id,
    username: user.username,
    role: userRoles.toProto(user.role),
    groupIds: user.role === 'ADMIN' ? [] : user.groupIds,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
    canEditScripts: user.canEditScripts,
  };
}

export function apiTokenToProto(token: domain.UserToken): adminPb.ApiToken {
  return {
    id: token.id,
    name: token.name,
    userId: token.userId,
    createdAt: token.createdAt,
    expiresAt: token.expiresAt ?? undefined,
  };
}

export function scriptVersionToProto(version: domain.JobScriptVersion): adminPb.JobScriptVersion {
  return {
    id: version.id,
    jobId: version.jobId,
    glueType: glueTypes.toProto(version.glueType),
    source: version.source,
    remark: version.remark,
    author: version.author,
    createdAt: version.createdAt,
    restoredFromId: version.restoredFromId ?? '0',
  };
}
