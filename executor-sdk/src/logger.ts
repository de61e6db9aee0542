/** The logger the executor writes its own diagnostics to. A pino logger fits as is. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVEL_RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

const noop = (): void => {};

/** A logger that drops everything. */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

/**
 * A minimal logger writing one JSON object per line to stderr (pino-like field names,
 * so the same log pipeline can read both). Errors are flattened because JSON.stringify
 * would print them as `{}`.
 */
export function createJsonLogger(
  level: LogLevel = 'info',
  write: (line: string) => unknown = line => process.stderr.write(line),
): Logger {
  const threshold = LEVEL_RANK[level];
  const make =
    (name: Exclude<LogLevel, 'silent'>) =>
    (obj: object, msg: string): void => {
      if (LEVEL_RANK[name] < threshold) return;
      const record = { level: name, time: new Date().toISOString(), name: 'jobstream-executor', msg, ...obj };
      write(JSON.stringify(record, errorReplacer) + '\n');
    };
  return { debug: make('debug'), info: make('info'), warn: make('warn'), error: make('error') };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { type: value.name, message: value.message, stack: value.stack };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}
