/** Enum values as the API names them, without their type prefix: "ROUTE_STRATEGY_FIRST" → "FIRST". */
export function enumLabel(name: string, prefix: string): string {
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

/** Select options for a ts-proto enum object (`as const`), leaving out UNSPECIFIED. */
export function enumOptions(
  values: Record<string, number>,
  prefix: string,
): { value: string; label: string }[] {
  return Object.entries(values)
    .filter(([name, value]) => value !== 0 && name !== 'UNRECOGNIZED')
    .map(([name, value]) => ({ value: String(value), label: enumLabel(name, prefix).replaceAll('_', ' ') }));
}

export function formatTime(date: Date | undefined, timeZone?: string): string {
  if (date === undefined) return '—';
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    ...(timeZone === undefined ? {} : { timeZone, timeZoneName: 'short' }),
  });
}

export function formatDuration(from: Date | undefined, to: Date | undefined): string {
  if (from === undefined || to === undefined) return '—';
  const ms = to.getTime() - from.getTime();
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
