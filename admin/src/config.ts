import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { isTimeZone } from './schedule/schedule.js';

/** The admin's settings, compiled once at startup: every field present, durations in ms. */
export interface AdminConfig {
  /** PostgreSQL to use; undefined starts an embedded server under dataDir. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly grpcHost: string;
  /** 0 picks a free port (tests). */
  readonly grpcPort: number;
  /** Where Prometheus scrapes /metrics; undefined disables the endpoint. */
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  /** Bearer tokens accepted on AdminService. */
  readonly adminTokens: readonly string[];
  /** How often executors beat; presence expires after three missed beats. */
  readonly beatIntervalMs: number;
  /** How long an executor has to answer a request before the trigger fails. */
  readonly requestDeadlineMs: number;
  /** How long a new stream has to send Register. */
  readonly registerTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly logLevel: string;
  /** Names this admin process in presence rows and Welcome messages. */
  readonly adminInstanceId: string;
  /** Where peer admins reach this one; undefined derives it from the listening address. */
  readonly advertiseAddress: string | undefined;
  /** IANA zone for jobs that name none. */
  readonly defaultTimeZone: string;
  /** A scheduled fire later than this follows the job's misfire strategy. */
  readonly misfireThresholdMs: number;
  /** Lease of this admin in the cluster; peers take over its claimed fires when it lapses. */
  readonly adminLeaseMs: number;
  /** How often failed logs are looked for (retries, alarms) and lost runs are declared. */
  readonly failureMonitorIntervalMs: number;
  /** A run whose executor's stream ended is declared lost after this long unless it reconnects. */
  readonly lostRunGraceMs: number;
  /** Backstop: a run with no result after this long, whose executor is not online, is lost. */
  readonly resultLostAfterMs: number;
  /** Trigger logs older than this many days are deleted; 0 keeps them forever. */
  readonly logRetentionDays: number;
  /** How often the daily log report is refreshed and retention applied. */
  readonly housekeepingIntervalMs: number;
  /** SMTP server for e-mail alarms; undefined disables them. */
  readonly smtp: SmtpConfig | undefined;
  /** URL that receives a JSON POST per failed log; undefined disables the webhook alarm. */
  readonly alarmWebhookUrl: string | undefined;
}

export interface SmtpConfig {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS is used when the server offers it. */
  readonly secure: boolean;
  readonly user: string | undefined;
  readonly password: string | undefined;
  /** The From address of alarm e-mails. */
  readonly from: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Reads the configuration from environment variables (JOBSTREAM_*, DATABASE_URL) and
 * refuses to start on any invalid value, naming each one: a silently corrected value
 * is worse than a failed start.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv,
  options: { requireAdminToken?: boolean; overrides?: Partial<AdminConfig> } = {},
): AdminConfig {
  const problems: string[] = [];

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  };

  const metricsRaw = env.JOBSTREAM_METRICS_PORT;
  const metricsPort = metricsRaw === 'off' ? undefined : integer('JOBSTREAM_METRICS_PORT', 9464, 0, 65535);

  const adminTokens = (env.JOBSTREAM_ADMIN_TOKEN ?? '')
    .split(',')
    .map(token => token.trim())
    .filter(token => token !== '');
  for (const token of adminTokens) {
    if (token.length < 16) problems.push('JOBSTREAM_ADMIN_TOKEN: each token must be at least 16 characters');
  }

  const logLevel = env.JOBSTREAM_LOG_LEVEL ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    problems.push(`JOBSTREAM_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const defaultTimeZone = env.JOBSTREAM_DEFAULT_TIME_ZONE || Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!isTimeZone(defaultTimeZone)) {
    problems.push(`JOBSTREAM_DEFAULT_TIME_ZONE "${defaultTimeZone}" is not an IANA time zone`);
  }

  const smtpHost = env.JOBSTREAM_SMTP_HOST || undefined;
  const smtp: SmtpConfig | undefined = smtpHost
    ? {
        host: smtpHost,
        port: integer('JOBSTREAM_SMTP_PORT', 587, 1, 65535),
        secure: env.JOBSTREAM_SMTP_SECURE === 'true',
        user: env.JOBSTREAM_SMTP_USER || undefined,
        password: env.JOBSTREAM_SMTP_PASSWORD || undefined,
        from: env.JOBSTREAM_SMTP_FROM ?? '',
      }
    : undefined;
  if (smtp && !/^[^\s@<>]+@[^\s@<>]+$/.test(smtp.from.replace(/^.*<(.*)>\s*$/, '$1'))) {
    problems.push('JOBSTREAM_SMTP_FROM must be an e-mail address when JOBSTREAM_SMTP_HOST is set');
  }
  const alarmWebhookUrl = env.JOBSTREAM_ALARM_WEBHOOK_URL || undefined;
  if (alarmWebhookUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(alarmWebhookUrl)) {
    problems.push('JOBSTREAM_ALARM_WEBHOOK_URL must be an http:// or https:// URL');
  }

  const compiled: AdminConfig = {
    databaseUrl: env.DATABASE_URL === '' ? undefined : env.DATABASE_URL,
    dataDir: path.resolve(env.JOBSTREAM_DATA_DIR ?? 'data'),
    grpcHost: env.JOBSTREAM_GRPC_HOST ?? '127.0.0.1',
    grpcPort: integer('JOBSTREAM_GRPC_PORT', 8787, 0, 65535),
    metricsPort,
    metricsHost: env.JOBSTREAM_METRICS_HOST ?? '127.0.0.1',
    adminTokens,
    beatIntervalMs: integer('JOBSTREAM_BEAT_INTERVAL_MS', 3_000, 100, 60_000),
    requestDeadlineMs: integer('JOBSTREAM_REQUEST_DEADLINE_MS', 3_000, 100, 60_000),
    registerTimeoutMs: integer('JOBSTREAM_REGISTER_TIMEOUT_MS', 10_000, 100, 120_000),
    maxMessageBytes: integer('JOBSTREAM_MAX_MESSAGE_BYTES', 4 * 1024 * 1024, 64 * 1024, 64 * 1024 * 1024),
    logLevel,
    adminInstanceId:
      env.JOBSTREAM_ADMIN_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    advertiseAddress: env.JOBSTREAM_ADVERTISE_ADDRESS || undefined,
    defaultTimeZone,
    misfireThresholdMs: integer('JOBSTREAM_MISFIRE_THRESHOLD_MS', 5_000, 100, 3_600_000),
    adminLeaseMs: integer('JOBSTREAM_ADMIN_LEASE_MS', 1_500, 300, 60_000),
    failureMonitorIntervalMs: integer('JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS', 1_000, 50, 60_000),
    lostRunGraceMs: integer('JOBSTREAM_LOST_RUN_GRACE_MS', 30_000, 0, 3_600_000),
    resultLostAfterMs: integer('JOBSTREAM_RESULT_LOST_AFTER_MS', 600_000, 1_000, 7 * 24 * 3_600_000),
    logRetentionDays: integer('JOBSTREAM_LOG_RETENTION_DAYS', 30, 0, 36_500),
    housekeepingIntervalMs: integer('JOBSTREAM_HOUSEKEEPING_INTERVAL_MS', 60_000, 100, 3_600_000),
    smtp,
    alarmWebhookUrl,
  };
  const config: AdminConfig = Object.assign(compiled, options.overrides);
  if (config.adminTokens.length === 0 && options.requireAdminToken !== false) {
    problems.push(
      'JOBSTREAM_ADMIN_TOKEN is required (a long random string; comma-separate several to rotate)',
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
