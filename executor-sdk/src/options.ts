import os from 'node:os';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { ChannelCredentials, type ChannelOptions } from 'nice-grpc';
import type { Logger } from './logger.js';
import { createJsonLogger } from './logger.js';
import {
  APP_NAME_PATTERN,
  APP_NAME_RULE,
  INSTANCE_NAME_PATTERN,
  INSTANCE_NAME_RULE,
  MAX_CAPACITY,
  MAX_PIPELINE_WINDOW,
} from '@jobstream/proto';

export interface ExecutorOptions {
  /**
   * Admin endpoints as `host:port` (IPv6 as `[addr]:port`), or one comma-separated
   * string. Each (re)connect uses the next one, starting at a random one.
   */
  adminAddresses: readonly string[] | string;
  /** The executor group (XXL-JOB appname) the access token was issued for. */
  appName: string;
  /**
   * The group's access token, sent as `authorization: Bearer <token>`. May be left out
   * when the executor presents a client certificate (`tls.cert`, or one inside
   * `channelCredentials`) to an admin that requires them: the certificate's subject CN
   * then names the app. Given together with a certificate, it must be of the same app.
   */
  accessToken?: string;
  /**
   * This executor's address within its group: unique in the group and stable across
   * restarts (routing and manual executor lists refer to it). Letters, digits, '.', '_',
   * ':', '-'; at most 128. Default: the host name (sanitized), which is right for one
   * executor per host — set it explicitly when a host runs several.
   */
  instanceName?: string;
  /**
   * Where run logs and the result spool live. Must survive restarts (undelivered results
   * are re-sent from here) and must not be shared by two running processes.
   * Default: `./.jobstream-executor/<appName>/<instanceName>` under the working directory.
   */
  dataDir?: string;
  /** Runs executed at once. Default 16, at most 10,000. */
  capacity?: number;
  /**
   * Runs accepted beyond `capacity`, queued in arrival order until a slot frees: the admin
   * sends the next runs while results travel back, so a busy stream does not leave handlers
   * idle. Runs beyond capacity + pipelineWindow wait at the admin. Default 4 × capacity,
   * at least 1,000 and at most 10,000; 0 makes the admin send a run only when one of
   * `capacity` is free.
   */
  pipelineWindow?: number;
  /** Free-form labels sent in Register (informational). */
  labels?: Readonly<Record<string, string>>;
  /** Diagnostics sink (pino-compatible). Default: JSON lines on stderr, level info. */
  logger?: Logger;
  /** How long stop() lets running runs finish before aborting them. Default 10 000 ms. */
  shutdownGracePeriodMs?: number;
  /** How long stop() waits for the admin to acknowledge the last results. Default 2 000 ms. */
  resultFlushTimeoutMs?: number;
  /** Run logs older than this many days are deleted (on start, then daily). 0 keeps them. Default 30. */
  logRetentionDays?: number;
  /**
   * A handler with no run for this long is destroyed (its `destroy` hook runs) and
   * initialized again before its next run. 0 destroys only when the executor stops.
   * Default 90 000 ms (XXL-JOB ends an idle job thread after 30 idle polls of 3 s).
   */
  handlerIdleDestroyMs?: number;
  /** First reconnect backoff cap; doubles per failed attempt. Default 200 ms. */
  reconnectBaseDelayMs?: number;
  /** Largest reconnect backoff. Default 10 000 ms. */
  reconnectMaxDelayMs?: number;
  /** Outgoing messages buffered per stream before request handling waits. Default 256. */
  outboundQueueCapacity?: number;
  /**
   * TLS to the admin; see {@link ExecutorTlsOptions}. Default: plaintext. Exclusive
   * with `channelCredentials`.
   */
  tls?: ExecutorTlsOptions;
  /** Channel credentials, for TLS set up by hand. Default: insecure (plaintext). */
  channelCredentials?: ChannelCredentials;
  /** Extra grpc-js channel options, merged over the keepalive defaults. */
  channelOptions?: ChannelOptions;
  /**
   * Script (GLUE) jobs: the script kinds this executor runs, each in a child process. Off by
   * default: without this option (or with no kinds) the executor runs handlers only and
   * refuses every script run. A script runs arbitrary code as this process's user, with its
   * environment: see {@link ExecutorScriptOptions}.
   */
  scripts?: ExecutorScriptOptions;
}

/** The script kinds an executor can opt into (GlueType without BEAN; PHP is not supported). */
export const SCRIPT_KINDS = ['SHELL', 'PYTHON', 'NODEJS', 'POWERSHELL'] as const;
export type ScriptKind = (typeof SCRIPT_KINDS)[number];

/**
 * How script (GLUE) runs are executed. A script runs as `<interpreter> <script file> <param>
 * <shard index> <shard total>` in a fresh working directory, in a process group of its own;
 * its stdout and stderr lines go to the run's log, exit code 0 is success.
 */
export interface ExecutorScriptOptions {
  /** The kinds this executor runs, advertised at Register. Anything else is refused (INVALID). */
  kinds: readonly ScriptKind[];
  /**
   * The interpreter per kind (a path, or a command looked up on PATH). Defaults: SHELL
   * `/bin/sh`, PYTHON `python3`, NODEJS this Node.js (`process.execPath`), POWERSHELL `pwsh`.
   */
  interpreters?: Partial<Record<ScriptKind, string>>;
  /**
   * Where script files are cached (`scripts/`) and runs get their working directories
   * (`runs/`). Default: `<dataDir>/glue`.
   */
  workDir?: string;
  /** After a kill, timeout or stop: how long the script's group has between SIGTERM and SIGKILL. Default 5 000 ms. */
  killGraceMs?: number;
  /** A failed script's message is the last this many lines of its stderr. Default 20. */
  stderrTailLines?: number;
}

export interface ResolvedScriptOptions {
  /** Empty: scripts are off. */
  kinds: ReadonlySet<ScriptKind>;
  interpreters: Readonly<Record<ScriptKind, string>>;
  workDir: string;
  killGraceMs: number;
  stderrTailLines: number;
}

/** PEM contents (text or bytes, not file paths), as node:tls takes them. */
export interface ExecutorTlsOptions {
  /** The CA certificates the admin's certificate must chain to. Default: the system roots. */
  ca?: string | Buffer;
  /**
   * A client certificate chain and its key, both or neither, for an admin that requires
   * client certificates (mutual TLS). Its subject CN must be the appName.
   */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ResolvedOptions {
  adminAddresses: readonly string[];
  appName: string;
  /** Undefined when a client certificate authenticates the executor. */
  accessToken: string | undefined;
  instanceName: string;
  dataDir: string;
  capacity: number;
  pipelineWindow: number;
  labels: Record<string, string>;
  logger: Logger;
  shutdownGracePeriodMs: number;
  resultFlushTimeoutMs: number;
  logRetentionDays: number;
  handlerIdleDestroyMs: number;
  reconnectBaseDelayMs: number;
  reconnectMaxDelayMs: number;
  outboundQueueCapacity: number;
  channelCredentials: ChannelCredentials | undefined;
  channelOptions: ChannelOptions;
  scripts: ResolvedScriptOptions;
}

export const DEFAULT_CAPACITY = 16;
/** The default pipelining window, per unit of capacity (when that is above the minimum). */
export const PIPELINE_WINDOW_PER_CAPACITY = 4;
/**
 * The smallest default pipelining window. The runs in flight must cover the round trip of
 * a result under load (Little's law: 10,000 runs/s over a 100 ms round trip is 1,000 runs),
 * whatever the capacity; a queued run costs a few hundred bytes.
 */
export const MIN_DEFAULT_PIPELINE_WINDOW = 1_000;
export const DEFAULT_SHUTDOWN_GRACE_PERIOD_MS = 10_000;
export const DEFAULT_RESULT_FLUSH_TIMEOUT_MS = 2_000;
export const DEFAULT_LOG_RETENTION_DAYS = 30;
export const DEFAULT_HANDLER_IDLE_DESTROY_MS = 90_000;
export const DEFAULT_SCRIPT_KILL_GRACE_MS = 5_000;
export const DEFAULT_SCRIPT_STDERR_TAIL_LINES = 20;

/** Detects a dead admin (or a silently dropped connection) within ~15 s. */
export const KEEPALIVE_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

const ADDRESS_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;
const KNOWN_KEYS = new Set<string>([
  'adminAddresses',
  'appName',
  'accessToken',
  'instanceName',
  'dataDir',
  'capacity',
  'pipelineWindow',
  'labels',
  'logger',
  'shutdownGracePeriodMs',
  'resultFlushTimeoutMs',
  'logRetentionDays',
  'handlerIdleDestroyMs',
  'reconnectBaseDelayMs',
  'reconnectMaxDelayMs',
  'outboundQueueCapacity',
  'tls',
  'channelCredentials',
  'channelOptions',
  'scripts',
] satisfies (keyof ExecutorOptions)[]);
const KNOWN_SCRIPT_KEYS = new Set<string>([
  'kinds',
  'interpreters',
  'workDir',
  'killGraceMs',
  'stderrTailLines',
] satisfies (keyof ExecutorScriptOptions)[]);

/** The default instance name: the host name with characters the admin rejects replaced. */
export function defaultInstanceName(hostname = os.hostname()): string {
  const cleaned = hostname.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 128);
  return cleaned === '' ? 'executor' : cleaned;
}

/** Checks every option at once and throws one TypeError listing all problems. */
export function resolveOptions(input: ExecutorOptions): ResolvedOptions {
  const problems: string[] = [];
  if (typeof input !== 'object' || input === null) {
    throw new TypeError('invalid executor options: expected an options object');
  }
  const raw = input as unknown as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(key)) problems.push(`unknown option "${key}"`);
  }

  const addresses = parseAddresses(raw.adminAddresses, problems);

  const appName = raw.appName;
  if (typeof appName !== 'string' || !APP_NAME_PATTERN.test(appName)) {
    problems.push(`appName must be ${APP_NAME_RULE}`);
  }
  const accessToken = raw.accessToken;
  const mayPresentCertificate =
    raw.channelCredentials !== undefined ||
    (typeof raw.tls === 'object' && raw.tls !== null && (raw.tls as ExecutorTlsOptions).cert !== undefined);
  // Without a token the admin decides: under mutual TLS it accepts the certificate instead.
  const tokenOptional = accessToken === undefined && mayPresentCertificate;
  if (!tokenOptional && (typeof accessToken !== 'string' || !/^[\x21-\x7e]+$/.test(accessToken))) {
    problems.push(
      'accessToken must be a non-empty string of printable ASCII without spaces' +
        (accessToken === undefined ? ' (or give tls.cert and tls.key for a client certificate)' : ''),
    );
  }

  let instanceName = defaultInstanceName();
  if (raw.instanceName !== undefined) {
    if (typeof raw.instanceName !== 'string' || !INSTANCE_NAME_PATTERN.test(raw.instanceName)) {
      problems.push(`instanceName must be ${INSTANCE_NAME_RULE}`);
    } else {
      instanceName = raw.instanceName;
    }
  }

  let dataDir: string | undefined;
  if (raw.dataDir !== undefined) {
    if (typeof raw.dataDir !== 'string' || raw.dataDir === '')
      problems.push('dataDir must be a non-empty string');
    else dataDir = path.resolve(raw.dataDir);
  }

  const capacity = integer(raw.capacity, 'capacity', 1, MAX_CAPACITY, DEFAULT_CAPACITY, problems);
  const pipelineWindow = integer(
    raw.pipelineWindow,
    'pipelineWindow',
    0,
    MAX_PIPELINE_WINDOW,
    Math.min(
      MAX_PIPELINE_WINDOW,
      Math.max(MIN_DEFAULT_PIPELINE_WINDOW, PIPELINE_WINDOW_PER_CAPACITY * capacity),
    ),
    problems,
  );
  const shutdownGracePeriodMs = integer(
    raw.shutdownGracePeriodMs,
    'shutdownGracePeriodMs',
    0,
    2 ** 31 - 1,
    DEFAULT_SHUTDOWN_GRACE_PERIOD_MS,
    problems,
  );
  const resultFlushTimeoutMs = integer(
    raw.resultFlushTimeoutMs,
    'resultFlushTimeoutMs',
    0,
    2 ** 31 - 1,
    DEFAULT_RESULT_FLUSH_TIMEOUT_MS,
    problems,
  );
  const logRetentionDays = integer(
    raw.logRetentionDays,
    'logRetentionDays',
    0,
    36_500,
    DEFAULT_LOG_RETENTION_DAYS,
    problems,
  );
  const handlerIdleDestroyMs = integer(
    raw.handlerIdleDestroyMs,
    'handlerIdleDestroyMs',
    0,
    2 ** 31 - 1,
    DEFAULT_HANDLER_IDLE_DESTROY_MS,
    problems,
  );
  const reconnectBaseDelayMs = integer(
    raw.reconnectBaseDelayMs,
    'reconnectBaseDelayMs',
    1,
    60_000,
    200,
    problems,
  );
  const reconnectMaxDelayMs = integer(
    raw.reconnectMaxDelayMs,
    'reconnectMaxDelayMs',
    1,
    600_000,
    10_000,
    problems,
  );
  if (reconnectMaxDelayMs < reconnectBaseDelayMs) {
    problems.push('reconnectMaxDelayMs must not be smaller than reconnectBaseDelayMs');
  }
  const outboundQueueCapacity = integer(
    raw.outboundQueueCapacity,
    'outboundQueueCapacity',
    1,
    1_000_000,
    256,
    problems,
  );

  const labels: Record<string, string> = {};
  if (raw.labels !== undefined) {
    if (typeof raw.labels !== 'object' || raw.labels === null || Array.isArray(raw.labels)) {
      problems.push('labels must be an object of string values');
    } else {
      for (const [key, value] of Object.entries(raw.labels)) {
        if (key === '' || typeof value !== 'string')
          problems.push(`labels.${key || '""'} must be a string value with a non-empty key`);
        else labels[key] = value;
      }
    }
  }

  let logger: Logger | undefined;
  if (raw.logger !== undefined) {
    if (isLogger(raw.logger)) logger = raw.logger;
    else problems.push('logger must have debug, info, warn and error methods');
  }

  let channelCredentials: ChannelCredentials | undefined;
  if (raw.channelCredentials !== undefined) {
    if (typeof raw.channelCredentials !== 'object' || raw.channelCredentials === null) {
      problems.push('channelCredentials must be a grpc ChannelCredentials object');
    } else {
      channelCredentials = raw.channelCredentials as ChannelCredentials;
    }
  }
  if (raw.tls !== undefined) {
    if (raw.channelCredentials !== undefined) {
      problems.push('tls and channelCredentials exclude each other: give one of them');
    } else {
      channelCredentials = tlsCredentials(raw.tls, problems);
    }
  }
  let channelOptions: ChannelOptions = {};
  if (raw.channelOptions !== undefined) {
    if (typeof raw.channelOptions !== 'object' || raw.channelOptions === null) {
      problems.push('channelOptions must be an object');
    } else {
      channelOptions = raw.channelOptions;
    }
  }

  const scripts = scriptOptions(raw.scripts, problems);

  if (problems.length > 0) {
    throw new TypeError(`invalid executor options:\n  - ${problems.join('\n  - ')}`);
  }
  const app = appName as string;
  const resolvedDataDir =
    dataDir ?? path.resolve('.jobstream-executor', app, instanceName.replace(/:/g, '_'));
  return {
    adminAddresses: addresses,
    appName: app,
    accessToken: accessToken as string | undefined,
    instanceName,
    dataDir: resolvedDataDir,
    capacity,
    pipelineWindow,
    labels,
    logger: logger ?? createJsonLogger('info'),
    shutdownGracePeriodMs,
    resultFlushTimeoutMs,
    logRetentionDays,
    handlerIdleDestroyMs,
    reconnectBaseDelayMs,
    reconnectMaxDelayMs,
    outboundQueueCapacity,
    channelCredentials,
    channelOptions: { ...KEEPALIVE_CHANNEL_OPTIONS, ...channelOptions },
    scripts: {
      kinds: scripts.kinds,
      interpreters: scripts.interpreters,
      workDir: scripts.workDir ?? path.join(resolvedDataDir, 'glue'),
      killGraceMs: scripts.killGraceMs,
      stderrTailLines: scripts.stderrTailLines,
    },
  };
}

function defaultInterpreters(): Record<ScriptKind, string> {
  return { SHELL: '/bin/sh', PYTHON: 'python3', NODEJS: process.execPath, POWERSHELL: 'pwsh' };
}

/** The `scripts` option, with `workDir` left undefined when it defaults to one under dataDir. */
function scriptOptions(
  value: unknown,
  problems: string[],
): Omit<ResolvedScriptOptions, 'workDir'> & { workDir: string | undefined } {
  const interpreters = defaultInterpreters();
  const resolved = {
    kinds: new Set<ScriptKind>(),
    interpreters,
    workDir: undefined as string | undefined,
    killGraceMs: DEFAULT_SCRIPT_KILL_GRACE_MS,
    stderrTailLines: DEFAULT_SCRIPT_STDERR_TAIL_LINES,
  };
  if (value === undefined) return resolved;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push("scripts must be an object such as { kinds: ['SHELL'] }");
    return resolved;
  }
  const raw = value as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_SCRIPT_KEYS.has(key)) problems.push(`unknown option "scripts.${key}"`);
  }
  const known = `one of ${SCRIPT_KINDS.join(', ')}`;
  if (!Array.isArray(raw.kinds)) {
    problems.push(`scripts.kinds must be a list of script kinds (${known})`);
  } else {
    for (const kind of raw.kinds as unknown[]) {
      if (isScriptKind(kind)) resolved.kinds.add(kind);
      else problems.push(`scripts.kinds: ${JSON.stringify(kind)} is not a script kind (${known})`);
    }
  }
  if (resolved.kinds.size > 0 && process.platform === 'win32') {
    problems.push('scripts need a POSIX system: a script runs in a process group of its own');
  }
  if (raw.interpreters !== undefined) {
    if (
      typeof raw.interpreters !== 'object' ||
      raw.interpreters === null ||
      Array.isArray(raw.interpreters)
    ) {
      problems.push('scripts.interpreters must be an object from script kind to interpreter path');
    } else {
      for (const [kind, interpreter] of Object.entries(raw.interpreters)) {
        if (!isScriptKind(kind))
          problems.push(`scripts.interpreters: "${kind}" is not a script kind (${known})`);
        else if (typeof interpreter !== 'string' || interpreter.trim() === '' || interpreter.includes('\0'))
          problems.push(`scripts.interpreters.${kind} must be a non-empty path or command name`);
        else interpreters[kind] = interpreter;
      }
    }
  }
  if (raw.workDir !== undefined) {
    if (typeof raw.workDir !== 'string' || raw.workDir === '')
      problems.push('scripts.workDir must be a non-empty string');
    else resolved.workDir = path.resolve(raw.workDir);
  }
  resolved.killGraceMs = integer(
    raw.killGraceMs,
    'scripts.killGraceMs',
    0,
    2 ** 31 - 1,
    DEFAULT_SCRIPT_KILL_GRACE_MS,
    problems,
  );
  resolved.stderrTailLines = integer(
    raw.stderrTailLines,
    'scripts.stderrTailLines',
    1,
    1_000,
    DEFAULT_SCRIPT_STDERR_TAIL_LINES,
    problems,
  );
  return resolved;
}

function isScriptKind(value: unknown): value is ScriptKind {
  return typeof value === 'string' && (SCRIPT_KINDS as readonly string[]).includes(value);
}

function tlsCredentials(value: unknown, problems: string[]): ChannelCredentials | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Buffer.isBuffer(value)) {
    problems.push('tls must be an object with ca, cert and key (each optional)');
    return undefined;
  }
  const raw = value as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(raw)) {
    if (key !== 'ca' && key !== 'cert' && key !== 'key') problems.push(`unknown option "tls.${key}"`);
  }
  const pem = (name: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const item = raw[name];
    if (item === undefined) return undefined;
    if (Buffer.isBuffer(item) && item.length > 0) return item;
    // A path here is the likely mistake: node:tls takes contents, and so does this option.
    if (typeof item === 'string' && item.includes('-----BEGIN ')) return Buffer.from(item, 'utf8');
    problems.push(`tls.${name} must be PEM text (a string or Buffer with the file's contents, not its path)`);
    return undefined;
  };
  const ca = pem('ca');
  const cert = pem('cert');
  const key = pem('key');
  if ((raw.cert === undefined) !== (raw.key === undefined)) {
    problems.push('tls.cert and tls.key must be given together');
  }
  if (problems.length > before) return undefined;
  try {
    // Parses the PEM and checks that the key belongs to the certificate, so a mistake fails
    // here instead of every connection attempt.
    createSecureContext({ ca, cert, key });
  } catch (error) {
    problems.push(`tls: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
  return ChannelCredentials.createSsl(ca ?? null, key ?? null, cert ?? null);
}

function parseAddresses(value: unknown, problems: string[]): string[] {
  let list: unknown[];
  if (typeof value === 'string') list = value.split(',').map(s => s.trim());
  else if (Array.isArray(value)) list = value as unknown[];
  else {
    problems.push('adminAddresses must be a non-empty list of "host:port" strings');
    return [];
  }
  if (list.length === 0) problems.push('adminAddresses must not be empty');
  const out: string[] = [];
  for (const item of list) {
    const match = typeof item === 'string' ? ADDRESS_PATTERN.exec(item) : null;
    const port = match?.[2] === undefined ? NaN : Number(match[2]);
    if (typeof item !== 'string' || match === null || !(port >= 1 && port <= 65_535)) {
      problems.push(`adminAddresses: ${JSON.stringify(item)} is not a "host:port" address`);
    } else {
      out.push(item);
    }
  }
  return out;
}

function integer(
  value: unknown,
  name: string,
  min: number,
  max: number,
  fallback: number,
  problems: string[],
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer from ${min} to ${max}`);
    return fallback;
  }
  return value;
}

function isLogger(value: unknown): value is Logger {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<keyof Logger, unknown>>;
  return (['debug', 'info', 'warn', 'error'] as const).every(m => typeof candidate[m] === 'function');
}
