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
