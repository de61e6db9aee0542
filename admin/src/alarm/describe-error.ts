import { inspect } from 'node:util';

/**
 * The parts of an error worth logging, as plain strings: nodemailer errors carry SMTP
 * responses and commands, and a secret echoed by a server must not reach the logs.
 */
export function describeError(error: unknown, secrets: readonly string[] = []): Record<string, string> {
  const scrub = (text: string) =>
    secrets.reduce(
      (result, secret) => (secret === '' ? result : result.split(secret).join('[redacted]')),
      text,
    );
  if (!(error instanceof Error)) return { message: scrub(String(error)) };
  const described: Record<string, string> = { name: error.name, message: scrub(error.message) };
  const fields = error as Error & Record<string, unknown>;
  for (const key of ['code', 'responseCode', 'command', 'response'] as const) {
    const value = fields[key];
    if (typeof value === 'string' || typeof value === 'number') described[key] = scrub(String(value));
  }
  if (error.cause !== undefined) {
    described.cause = scrub(error.cause instanceof Error ? error.cause.message : inspect(error.cause));
  }
  return described;
}
