import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { USERNAME_PATTERN, USERNAME_RULE } from './auth/create-user.js';
import { passwordProblem } from './auth/passwords.js';
import { isTimeZone } from './schedule/schedule.js';
import type { SmtpConfig } from './alarm/email-alarm.js';

/** The admin's settings, compiled once at startup: every field present, durations in ms. */
export interface AdminConfig {
  /** PostgreSQL to use; undefined starts an embedded server under dataDir. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly grpcHost: string;
  /** 0 picks a free port (tests). */
  readonly grpcPort: number;
  /** Where the web console (pages and AdminService for browsers) listens; undefined disables it. */
  readonly consolePort: number | undefined;
  readonly consoleHost: string;
  /** The console's built files (console/dist). */
  readonly consoleDir: string;
  /** Where Prometheus scrapes /metrics; undefined disables the endpoint. */
  readonly metricsPort: number | undefined;
  readonly metricsHost: string;
  /**
   * Static bearer tokens accepted on AdminService with the admin role (automation,
   * bootstrapping); optional: users log in with passwords or API tokens.
   */
  readonly adminTokens: readonly string[];
  /** How long a session token from Login works. */
  readonly sessionTtlMs: number;
  /** Created at startup when no user exists yet; undefined creates none. */
  readonly initialAdmin: { readonly username: string; readonly password: string } | undefined;
  /** How often executors beat; presence expires after three missed beats. */
  readonly beatIntervalMs: number;
  /** How long an executor has to answer a request before the trigger fails. */
  readonly requestDeadlineMs: number;
  /** How long a new stream has to send Register. */
  readonly registerTimeoutMs: number;
  readonly maxMessageBytes: number;
  /** Concurrent executor streams one group (one token) may hold on this admin. */
  readonly maxStreamsPerGroup: number;
  /** Connect attempts per second per remote host, in bursts of twice as many; 0 disables the limit. */
  readonly connectRatePerSecond: number;
  /** Failed Connect authentications per second per remote host (bursts of twice as many); 0 disables. */
  readonly connectFailedAuthPerSecond: number;
  readonly logLevel: string;
  /** Names this admin process in presence rows and Welcome messages. */
  readonly adminInstanceId: string;
  /** Where peer admins reach this one; undefined derives it from the listening address. */
  readonly advertiseAddress: string | undefined;
  /** IANA zone for jobs that name none. */
  readonly defaultTimeZone: string;
  /** A scheduled fire later than this follows the job's misfire strategy. */
  readonly misfireThresholdMs: number;
  /** Fires held between their claim and their executor's answer before claiming pauses. */
  readonly maxFiresInFlight: number;
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
  /** TLS for the gRPC port and for calls to peer admins; undefined serves plaintext. */
  readonly tls: TlsConfig | undefined;
  /** The largest script source (UTF-8 bytes) a script job may be saved with. */
  readonly scriptMaxBytes: number;
  /**
   * The timeout a script job saved with timeout_seconds 0 gets (applied when it is saved,
   * so the job shows the limit its runs have); 0 leaves such jobs without a timeout.
   */
  readonly scriptDefaultTimeoutSeconds: number;
}

/** PEM contents, read once at startup (a restart picks up renewed files). */
export interface TlsConfig {
  /** This admin's certificate chain: served to clients, and shown to peers under mutual TLS. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** CAs that client certificates must chain to; set means every client must present one (mutual TLS). */
  readonly clientCa: Buffer | undefined;
  /** CAs trusted for peer admins' server certificates; undefined trusts the system roots. */
  readonly ca: Buffer | undefined;
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
  options: { overrides?: Partial<AdminConfig> } = {},
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

  const consoleRaw = env.JOBSTREAM_CONSOLE_PORT;
  const consolePort = consoleRaw === 'off' ? undefined : integer('JOBSTREAM_CONSOLE_PORT', 8788, 0, 65535);

  const adminTokens = (env.JOBSTREAM_ADMIN_TOKEN ?? '')
    .split(',')
    .map(token => token.trim())
    .filter(token => token !== '');
  for (const token of adminTokens) {
    if (token.length < 16) problems.push('JOBSTREAM_ADMIN_TOKEN: each token must be at least 16 characters');
  }

  const initialUsername = env.JOBSTREAM_INITIAL_ADMIN_USERNAME || undefined;
  const initialPasswordFile = env.JOBSTREAM_INITIAL_ADMIN_PASSWORD_FILE || undefined;
  let initialAdmin: AdminConfig['initialAdmin'];
  if (initialUsername !== undefined || initialPasswordFile !== undefined) {
    // A file, not a variable: environment variables leak into process listings and crash reports.
    let password = '';
    try {
      password = readFileSync(initialPasswordFile ?? '', 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      problems.push(
        `JOBSTREAM_INITIAL_ADMIN_PASSWORD_FILE: cannot read "${initialPasswordFile ?? ''}" (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      );
    }
    if (initialUsername === undefined || !USERNAME_PATTERN.test(initialUsername)) {
      problems.push(`JOBSTREAM_INITIAL_ADMIN_USERNAME must be ${USERNAME_RULE}`);
    }
    const problem = password === '' ? undefined : passwordProblem(password);
    if (problem) problems.push(`JOBSTREAM_INITIAL_ADMIN_PASSWORD_FILE: the password ${problem}`);
    if (initialUsername !== undefined && password !== '')
      initialAdmin = { username: initialUsername, password };
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
  const tls = readTlsConfig(env, problems);

  const compiled: AdminConfig = {
    databaseUrl: env.DATABASE_URL === '' ? undefined : env.DATABASE_URL,
    dataDir: path.resolve(env.JOBSTREAM_DATA_DIR ?? 'data'),
    grpcHost: env.JOBSTREAM_GRPC_HOST ?? '127.0.0.1',
    grpcPort: integer('JOBSTREAM_GRPC_PORT', 8787, 0, 65535),
    consolePort,
    consoleHost: env.JOBSTREAM_CONSOLE_HOST ?? env.JOBSTREAM_GRPC_HOST ?? '127.0.0.1',
    // Beside admin/ in the repository, from the sources (admin/src) and the build (admin/dist) alike.
    consoleDir: path.resolve(
      env.JOBSTREAM_CONSOLE_DIR || fileURLToPath(new URL('../../console/dist', import.meta.url)),
    ),
    metricsPort,
    metricsHost: env.JOBSTREAM_METRICS_HOST ?? '127.0.0.1',
    adminTokens,
    sessionTtlMs: integer('JOBSTREAM_SESSION_TTL_MINUTES', 12 * 60, 1, 30 * 24 * 60) * 60_000,
    initialAdmin,
    beatIntervalMs: integer('JOBSTREAM_BEAT_INTERVAL_MS', 3_000, 100, 60_000),
    requestDeadlineMs: integer('JOBSTREAM_REQUEST_DEADLINE_MS', 3_000, 100, 60_000),
    registerTimeoutMs: integer('JOBSTREAM_REGISTER_TIMEOUT_MS', 10_000, 100, 120_000),
    // At least 2 MiB: a log-read reply carries up to 1 MiB of lines (MAX_LOG_READ_BYTES) plus framing.
    maxMessageBytes: integer(
      'JOBSTREAM_MAX_MESSAGE_BYTES',
      4 * 1024 * 1024,
      2 * 1024 * 1024,
      64 * 1024 * 1024,
    ),
    maxStreamsPerGroup: integer('JOBSTREAM_MAX_STREAMS_PER_GROUP', 1_000, 1, 1_000_000),
    connectRatePerSecond: integer('JOBSTREAM_CONNECT_RATE_PER_SECOND', 20, 0, 1_000_000),
    connectFailedAuthPerSecond: integer('JOBSTREAM_CONNECT_FAILED_AUTH_PER_SECOND', 5, 0, 1_000_000),
    logLevel,
    adminInstanceId:
      env.JOBSTREAM_ADMIN_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    advertiseAddress: env.JOBSTREAM_ADVERTISE_ADDRESS || undefined,
    defaultTimeZone,
    misfireThresholdMs: integer('JOBSTREAM_MISFIRE_THRESHOLD_MS', 5_000, 100, 3_600_000),
    maxFiresInFlight: integer('JOBSTREAM_MAX_FIRES_IN_FLIGHT', 10_000, 1, 1_000_000),
    adminLeaseMs: integer('JOBSTREAM_ADMIN_LEASE_MS', 1_500, 300, 60_000),
    failureMonitorIntervalMs: integer('JOBSTREAM_FAILURE_MONITOR_INTERVAL_MS', 1_000, 50, 60_000),
    lostRunGraceMs: integer('JOBSTREAM_LOST_RUN_GRACE_MS', 30_000, 0, 3_600_000),
    resultLostAfterMs: integer('JOBSTREAM_RESULT_LOST_AFTER_MS', 600_000, 1_000, 7 * 24 * 3_600_000),
    logRetentionDays: integer('JOBSTREAM_LOG_RETENTION_DAYS', 30, 0, 36_500),
    housekeepingIntervalMs: integer('JOBSTREAM_HOUSEKEEPING_INTERVAL_MS', 60_000, 100, 3_600_000),
    smtp,
    alarmWebhookUrl,
    tls,
    // At most 1 MiB: a run request carries the source, and must stay well under the message limit.
    scriptMaxBytes: integer('JOBSTREAM_SCRIPT_MAX_BYTES', 64 * 1024, 1, 1024 * 1024),
    scriptDefaultTimeoutSeconds: integer('JOBSTREAM_SCRIPT_DEFAULT_TIMEOUT_SECONDS', 3_600, 0, 7 * 24 * 3600),
  };
  const config: AdminConfig = Object.assign(compiled, options.overrides);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * JOBSTREAM_TLS_CERT and _KEY turn TLS on; _CLIENT_CA adds mutual TLS; _CA is what peer
 * admins' certificates are checked against. The files are read and parsed here, so a
 * wrong path or a key that does not belong to the certificate stops the start, naming
 * the variable, instead of failing every handshake later.
 */
function readTlsConfig(env: NodeJS.ProcessEnv, problems: string[]): TlsConfig | undefined {
  const isSet = (name: string): boolean => (env[name] ?? '') !== '';
  const certSet = isSet('JOBSTREAM_TLS_CERT');
  const keySet = isSet('JOBSTREAM_TLS_KEY');
  if (certSet !== keySet) {
    const [given, missing] = certSet
      ? ['JOBSTREAM_TLS_CERT', 'JOBSTREAM_TLS_KEY']
      : ['JOBSTREAM_TLS_KEY', 'JOBSTREAM_TLS_CERT'];
    problems.push(`${missing} is required when ${given} is set (TLS needs a certificate and its key)`);
  }
  if (!certSet && !keySet) {
    for (const name of ['JOBSTREAM_TLS_CLIENT_CA', 'JOBSTREAM_TLS_CA']) {
      if (isSet(name))
        problems.push(`${name} applies only with TLS on: set JOBSTREAM_TLS_CERT and JOBSTREAM_TLS_KEY too`);
    }
    return undefined;
  }

  const read = (name: string): Buffer | undefined => {
    const file = env[name];
    if (file === undefined || file === '') return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      problems.push(`${name}: cannot read "${file}" (${reason})`);
      return undefined;
    }
  };
  const certificate = (name: string, pem: Buffer | undefined): X509Certificate | undefined => {
    if (pem === undefined) return undefined;
    try {
      return new X509Certificate(pem);
    } catch {
      problems.push(`${name}: "${env[name]}" holds no PEM certificate`);
      return undefined;
    }
  };

  const cert = read('JOBSTREAM_TLS_CERT');
  const key = read('JOBSTREAM_TLS_KEY');
  const clientCa = read('JOBSTREAM_TLS_CLIENT_CA');
  const ca = read('JOBSTREAM_TLS_CA');
  const serverCertificate = certificate('JOBSTREAM_TLS_CERT', cert);
  certificate('JOBSTREAM_TLS_CLIENT_CA', clientCa);
  certificate('JOBSTREAM_TLS_CA', ca);
  let privateKey: KeyObject | undefined;
  if (key !== undefined) {
    try {
      privateKey = createPrivateKey(key);
    } catch {
      problems.push(`JOBSTREAM_TLS_KEY: "${env.JOBSTREAM_TLS_KEY}" holds no unencrypted PEM private key`);
    }
  }
  if (serverCertificate && privateKey && !serverCertificate.checkPrivateKey(privateKey)) {
    problems.push('JOBSTREAM_TLS_KEY is not the private key of the certificate in JOBSTREAM_TLS_CERT');
  }
  if (cert === undefined || key === undefined) return undefined;
  return { cert, key, clientCa, ca };
}
