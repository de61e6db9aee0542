import { pino, type Logger as PinoLogger, type LoggerOptions } from 'pino';

export type Logger = PinoLogger;

/** The one structured logger: JSON lines on stdout, one child per component. */
export function createLogger(
  options: { level: string; name?: string } & Pick<LoggerOptions, 'base'>,
): Logger {
  return pino({
    name: options.name ?? 'jobstream-admin',
    level: options.level,
    base: options.base,
    // Secrets must never reach the logs, even when a caller logs a whole object.
    redact: {
      paths: ['*.accessToken', '*.access_token', '*.authorization', '*.password'],
      censor: '[redacted]',
    },
  });
}
