import type { ServerMiddleware } from 'nice-grpc';
import { refuseMalformedMessages, refuseMalformedRequest } from './malformed-messages.js';
import { invalid } from './validation.js';

/**
 * google.protobuf.Timestamp's documented range (0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999Z in milliseconds). The wire allows any int64 seconds, which
 * decodes to an invalid Date or one that PostgreSQL and Intl cannot handle.
 */
const MIN_TIMESTAMP_MS = -62_135_596_800_000;
const MAX_TIMESTAMP_MS = 253_402_300_799_999;
/** Deeper than any message of the API; a guard, not a limit anyone should meet. */
const MAX_DEPTH = 32;

/**
 * Refuses requests that did not decode (see `tolerantDecoding`), and unary requests
 * holding values that no field of the API may hold, whatever the method: text with NUL
 * characters (PostgreSQL text cannot store them) and timestamps outside Timestamp's
 * range. These are properties of the wire, the storage and the Timestamp type, not of any
 * one field, so they are checked once here and cover methods added later too. Refusals
 * are INVALID_ARGUMENT naming the field, like every other validation. Streams (Connect)
 * validate their messages' fields themselves.
 */
export function requestSanity(): ServerMiddleware {
  return async function* sanity(call, context) {
    if (call.requestStream) return yield* call.next(refuseMalformedMessages(call.request), context);
    const request = refuseMalformedRequest(call.request);
    const problem = findProblem(request, '', 0);
    if (problem !== undefined) invalid(problem.field, problem.message);
    return yield* call.next(request, context);
  };
}

/** A valid Date within Timestamp's documented range. */
export function isInTimestampRange(date: Date): boolean {
  const ms = date.getTime();
  return Number.isFinite(ms) && ms >= MIN_TIMESTAMP_MS && ms <= MAX_TIMESTAMP_MS;
}

interface Problem {
  field: string;
  message: string;
}

function findProblem(value: unknown, field: string, depth: number): Problem | undefined {
  if (typeof value === 'string') {
    return value.includes('\u0000') ? { field, message: 'must not contain NUL characters' } : undefined;
  }
  if (value instanceof Date) {
    return isInTimestampRange(value)
      ? undefined
      : { field, message: 'must be a time from 0001-01-01 to 9999-12-31' };
  }
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || depth > MAX_DEPTH) {
    return undefined;
  }
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const problem = findProblem(value[index], `${field}[${index}]`, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  const record = value as Record<string, unknown>;
  // A ts-proto oneof ({ $case, value }) stands for the field named by $case.
  if (typeof record.$case === 'string' && 'value' in record) {
    return findProblem(record.value, join(field, record.$case), depth + 1);
  }
  for (const [key, item] of Object.entries(record)) {
    // Map fields decode to records too, and their keys are text as well.
    if (key.includes('\u0000')) return { field, message: 'must not contain NUL characters' };
    const problem = findProblem(item, join(field, key), depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** Field paths as the proto names them (`spec.alarm_email`), like every other validation message. */
function join(parent: string, key: string): string {
  const name = key.replace(/[A-Z]/g, letter => `_${letter.toLowerCase()}`);
  return parent === '' ? name : `${parent}.${name}`;
}
