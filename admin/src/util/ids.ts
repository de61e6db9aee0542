/**
 * Orders row ids given as decimal strings (bigint ids, no sign, no leading zeros) as
 * numbers. Statements that lock several rows visit them in id order, so two of them never
 * wait for each other's rows in opposite orders.
 */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
