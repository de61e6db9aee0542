import { ServerError, Status } from 'nice-grpc';
import type { EnumCodec } from '../wire/enums.js';

/** Request validation: every refusal is INVALID_ARGUMENT with a message that starts with the field's path. */

export function invalid(field: string, problem: string): never {
  throw new ServerError(Status.INVALID_ARGUMENT, `${field}: ${problem}`);
}

const ID = /^[1-9][0-9]{0,18}$/;
const MAX_ID = 9223372036854775807n;

/** A positive int64 id (ts-proto hands int64 over as a decimal string). */
export function requireId(field: string, value: string): string {
  if (!ID.test(value) || BigInt(value) > MAX_ID) invalid(field, `must be a positive id, got "${value}"`);
  return value;
}

/** An optional id: "0" means unset. */
export function optionalId(field: string, value: string): string | undefined {
  return value === '0' || value === '' ? undefined : requireId(field, value);
}

export function requireText(field: string, value: string, options: { min?: number; max: number }): string {
  const min = options.min ?? 0;
  if (value.length < min || value.length > options.max) {
    invalid(
      field,
      min > 0 ? `must be ${min} to ${options.max} characters` : `must be at most ${options.max} characters`,
    );
  }
  return value;
}

export function requirePattern(field: string, value: string, pattern: RegExp, description: string): string {
  if (!pattern.test(value)) invalid(field, `must be ${description}, got "${truncate(value)}"`);
  return value;
}

export function requireInteger(field: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    invalid(field, `must be from ${min} to ${max}, got ${value}`);
  return value;
}

/** A proto enum value: UNSPECIFIED selects the default when there is one; anything unknown is refused. */
export function requireEnum<D extends string, P extends number>(
  field: string,
  codec: EnumCodec<D, P>,
  value: number,
  defaultValue?: D,
): D {
  if (value === 0 && defaultValue !== undefined) return defaultValue;
  const known = codec.toDomain(value);
  if (known === undefined) invalid(field, `must be one of ${codec.protoNames.join(', ')}`);
  return known;
}

export function truncate(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Page sizes: 0 selects the default. */
export function pageSize(field: string, value: number, defaultSize = 50, max = 500): number {
  if (value === 0) return defaultSize;
  return requireInteger(field, value, 1, max);
}

/** Opaque page tokens: base64url JSON, validated by the caller's `parse`. */
export function encodePageToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function decodePageToken<T>(
  field: string,
  token: string,
  parse: (value: unknown) => T | undefined,
): T | undefined {
  if (token === '') return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    invalid(field, 'is not a page token returned by this API');
  }
  const parsed = parse(decoded);
  if (parsed === undefined) invalid(field, 'is not a page token returned by this API');
  return parsed;
}

/**
 * Applies an update mask: the masked fields come from `update`, the rest from
 * `current`. An empty mask replaces every field. Paths may be proto names
 * ("alarm_email") or JSON names ("alarmEmail").
 */
export function applyFieldMask<T extends object>(
  field: string,
  current: T,
  update: T,
  maskPaths: readonly string[] | undefined,
): T {
  if (!maskPaths || maskPaths.length === 0) return update;
  const merged = { ...current };
  for (const path of maskPaths) {
    const key = path.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
    if (!(key in update)) invalid(`${field}.paths`, `unknown field "${truncate(path)}"`);
    (merged as Record<string, unknown>)[key] = (update as Record<string, unknown>)[key];
  }
  return merged;
}
