import type { QuartzCronCompiler } from '../schedule/cron/index.js';
import { compileSchedule, isTimeZone, ScheduleError } from '../schedule/schedule.js';
import type * as domain from '../domain.js';
import { SCRIPT_KINDS } from '../domain.js';
import type * as adminPb from '@jobstream/proto/admin';
import {
  blockStrategies,
  glueTypes,
  misfireStrategies,
  routeStrategies,
  scheduleTypes,
} from '../wire/enums.js';
import { invalid, requireEnum, requireId, requireInteger, requireText } from './validation.js';

const EMAIL = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;
const MAX_CHILD_JOBS = 100;

/** What the admin's configuration allows of scripts. */
export interface ScriptLimits {
  /** The largest source, in UTF-8 bytes. */
  maxBytes: number;
}

/**
 * Reads a wire JobSpec into a domain spec, refusing any invalid field. Only the checks
 * that need no database: whether its group and child jobs exist is the JobsService's.
 */
export function parseJobSpec(
  field: string,
  spec: adminPb.JobSpec | undefined,
  cronCompiler: QuartzCronCompiler,
  scriptLimits: ScriptLimits,
): domain.JobSpec {
  if (!spec) invalid(field, 'is required');
  const f = (name: string) => `${field}.${name}`;
  const scheduleType = requireEnum(f('schedule_type'), scheduleTypes, spec.scheduleType, 'NONE');
  const routeStrategy = requireEnum(f('route_strategy'), routeStrategies, spec.routeStrategy, 'FIRST');
  const glueType = requireEnum(f('glue_type'), glueTypes, spec.glueType, 'BEAN');
  if (glueType !== 'BEAN' && !SCRIPT_KINDS.includes(glueType)) {
    invalid(
      f('glue_type'),
      `GLUE_TYPE_${glueType} is not supported (no executor SDK runs it); use GLUE_TYPE_BEAN or one of ${SCRIPT_KINDS.map(kind => `GLUE_TYPE_${kind}`).join(', ')}`,
    );
  }
  const isScript = glueType !== 'BEAN';

  const parsed: domain.JobSpec = {
    groupId: requireId(f('group_id'), spec.groupId),
    description: requireText(f('description'), spec.description.trim(), { min: 1, max: 255 }),
    author: requireText(f('author'), spec.author, { max: 64 }),
    alarmEmail: parseAlarmEmail(f('alarm_email'), spec.alarmEmail),
    scheduleType,
    scheduleConf: parseScheduleConf(
      f('schedule_conf'),
      scheduleType,
      spec.scheduleConf.trim(),
      parseTimeZone(f('time_zone'), spec.timeZone),
      cronCompiler,
    ),
    timeZone: parseTimeZone(f('time_zone'), spec.timeZone),
    misfireStrategy: requireEnum(
      f('misfire_strategy'),
      misfireStrategies,
      spec.misfireStrategy,
      'DO_NOTHING',
    ),
    routeStrategy,
    handler: parseHandler(f('handler'), spec.handler.trim(), glueType),
    param: requireText(f('param'), spec.param, { max: 4096 }),
    blockStrategy: requireEnum(f('block_strategy'), blockStrategies, spec.blockStrategy, 'SERIAL_EXECUTION'),
    timeoutSeconds: requireInteger(f('timeout_seconds'), spec.timeoutSeconds, 0, 7 * 24 * 3600),
    failRetryCount: requireInteger(f('fail_retry_count'), spec.failRetryCount, 0, 100),
    failRetryDelayMs: parseRetryDelay(f('fail_retry_delay'), spec.failRetryDelay),
    glueType,
    glueSource: isScript
      ? parseScriptSource(f('glue_source'), spec.glueSource, glueType, scriptLimits)
      : parseBeanSource(f('glue_source'), spec.glueSource),
    glueRemark: requireText(f('glue_remark'), spec.glueRemark, { max: 128 }),
    childJobIds: parseChildJobIds(f('child_job_ids'), spec.childJobIds),
  };
  return parsed;
}

const MAX_RETRY_DELAY_MS = 24 * 3600 * 1000;

/** A handler job (BEAN) names its handler; a script job runs its source and names none. */
function parseHandler(field: string, handler: string, glueType: domain.GlueType): string {
  if (glueType === 'BEAN') return requireText(field, handler, { min: 1, max: 255 });
  if (handler !== '')
    invalid(field, `must be empty for a script job (GLUE_TYPE_${glueType}): it runs glue_source`);
  return handler;
}

function parseBeanSource(field: string, source: string): string {
  if (source !== '') invalid(field, 'must be empty for a handler job (GLUE_TYPE_BEAN)');
  return source;
}

function parseScriptSource(
  field: string,
  source: string,
  glueType: domain.GlueType,
  limits: ScriptLimits,
): string {
  if (source.trim() === '') invalid(field, `is required for a script job (GLUE_TYPE_${glueType})`);
  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > limits.maxBytes) {
    invalid(
      field,
      `is ${bytes} bytes, more than this admin's limit of ${limits.maxBytes} bytes (JOBSTREAM_SCRIPT_MAX_BYTES)`,
    );
  }
  return source;
}

function parseRetryDelay(field: string, value: adminPb.JobSpec['failRetryDelay']): number {
  if (value === undefined) return 0;
  const seconds = Number(value.seconds);
  if (!Number.isFinite(seconds) || seconds < 0 || value.nanos < 0 || value.nanos > 999_999_999) {
    invalid(field, 'must be a non-negative duration');
  }
  const ms = seconds * 1000 + Math.floor(value.nanos / 1_000_000);
  if (ms > MAX_RETRY_DELAY_MS) invalid(field, 'must be at most one day (86400s)');
  return ms;
}

function parseAlarmEmail(field: string, value: string): string {
  requireText(field, value, { max: 1024 });
  const addresses = value
    .split(',')
    .map(address => address.trim())
    .filter(address => address !== '');
  for (const address of addresses) {
    if (!EMAIL.test(address)) invalid(field, `"${address.slice(0, 64)}" is not an e-mail address`);
  }
  return addresses.join(',');
}

function parseScheduleConf(
  field: string,
  type: domain.ScheduleType,
  conf: string,
  timeZone: string,
  cronCompiler: QuartzCronCompiler,
): string {
  if (type === 'NONE') {
    if (conf !== '') invalid(field, 'must be empty for SCHEDULE_TYPE_NONE');
    return '';
  }
  if (conf.length > 256) invalid(field, 'must be at most 256 characters');
  const normalised = type === 'CRON' ? conf.split(/\s+/).join(' ') : conf;
  try {
    // The zone does not change whether an expression is valid; the job's zone (or UTC
    // when it uses the admin's default) only keeps the check self-contained.
    compileSchedule(type, normalised, timeZone || 'UTC', cronCompiler);
  } catch (error) {
    if (error instanceof ScheduleError) invalid(field, error.message);
    throw error;
  }
  return normalised;
}

function parseTimeZone(field: string, value: string): string {
  if (value !== '' && !isTimeZone(value)) invalid(field, `"${value.slice(0, 64)}" is not an IANA time zone`);
  return value;
}

function parseChildJobIds(field: string, ids: readonly string[]): string[] {
  if (ids.length > MAX_CHILD_JOBS) invalid(field, `lists more than ${MAX_CHILD_JOBS} jobs`);
  const unique = [...new Set(ids.map((id, index) => requireId(`${field}[${index}]`, id)))];
  return unique;
}
