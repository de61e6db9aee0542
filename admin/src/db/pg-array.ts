/**
 * PostgreSQL array literals for `unnest` parameters, written here rather than by node-postgres:
 * its generic conversion (a regex escape per element and a local-time formatting of every
 * Date, with padStart per field) was the largest allocator on the hot path, about 15 % of
 * what the admin allocated per scheduled run. Every element is quoted unless it is digits
 * only, so no value, whatever an executor sent, can split into two elements.
 */
export type ArrayElement = string | number | boolean | Date | null | undefined;

const DIGITS = /^-?[0-9]+$/;
const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/** The text form of a one-dimensional array, for a parameter cast to `<type>[]`. */
export function pgArray(values: readonly ArrayElement[]): string {
  let text = '{';
  for (let index = 0; index < values.length; index += 1) {
    if (index > 0) text += ',';
    text += element(values[index]);
  }
  return text + '}';
}

function element(value: ArrayElement): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') {
    if (DIGITS.test(value)) return value;
    return NEEDS_ESCAPE.test(value) ? `"${value.replace(ESCAPED, '\\$&')}"` : `"${value}"`;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`pgArray: ${value} is not a finite number`);
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 't' : 'f';
  // toISOString throws for an invalid Date, as it should: nothing is stored for it.
  return `"${value.toISOString()}"`;
}
