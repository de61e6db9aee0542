import { pino, type DestinationStream, type Logger as PinoLogger, type LoggerOptions } from 'pino';

export type Logger = PinoLogger;

/** The one structured logger: JSON lines on stdout, one child per component. */
export function createLogger(
  options: { level: string; name?: string; destination?: DestinationStream } & Pick<LoggerOptions, 'base'>,
): Logger {
  const settings: LoggerOptions = {
    name: options.name ?? 'jobstream-admin',
    level: options.level,
    base: options.base,
    // Secrets must never reach the logs, even when a caller logs a whole object.
    redact: {
      paths: [
        'accessToken',
        'password',
        'token',
        '*.accessToken',
        '*.access_token',
        '*.authorization',
        '*.password',
        '*.token',
        '*.currentPassword',
        '*.newPassword',
      ],
      censor: '[redacted]',
    },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
