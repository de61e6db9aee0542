export { Executor } from './executor.js';
export type { ExecutorState } from './executor.js';
export type { ExecutorOptions, ExecutorScriptOptions, ExecutorTlsOptions, ScriptKind } from './options.js';
export {
  DEFAULT_CAPACITY,
  DEFAULT_SCRIPT_KILL_GRACE_MS,
  DEFAULT_SCRIPT_STDERR_TAIL_LINES,
  SCRIPT_KINDS,
  DEFAULT_LOG_RETENTION_DAYS,
  DEFAULT_RESULT_FLUSH_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_PERIOD_MS,
  KEEPALIVE_CHANNEL_OPTIONS,
  defaultInstanceName,
} from './options.js';
export { RunAbortedError, isRunAbortedError } from './handler.js';
export type { CancelReason, Handler, HandlerContext, HandlerHooks, HandlerResult } from './handler.js';
export { createJsonLogger, silentLogger } from './logger.js';
export type { LogLevel, Logger } from './logger.js';
export { ExecutorConnectError, ExecutorStoppedError } from './connection.js';
export { MAX_LOG_READ_BYTES, MAX_LOG_READ_LINES } from './run-log.js';
export { SDK_NAME, SDK_VERSION } from './version.js';
export { PROTOCOL_VERSION } from '@jobstream/proto';
