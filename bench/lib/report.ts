import fs from 'node:fs/promises';
import path from 'node:path';

export interface Row {
  scenario: string;
  metric: string;
  value: string;
  goal: string;
  /** true: goal met; false: goal missed; undefined: informational or not measured. */
  ok?: boolean;
  /**
   * A promise rather than a speed goal (no fire failed, lost or doubled): when it is not
   * kept the bench exits non-zero, in CI's quick run too.
   */
  correctness?: boolean;
}

export interface ScenarioResult {
  /** The scenario group (lateness, throughput, failover, scale). */
  scenario: string;
  /** The configuration measured (lateness@1000/s, ...). */
  name: string;
  rows: Row[];
  details: Record<string, unknown>;
  error?: string;
}

/** The final table, one line per metric, aligned in columns. */
export function formatTable(rows: readonly Row[]): string {
  const header: Row = { scenario: 'scenario', metric: 'metric', value: 'value', goal: 'goal' };
  const status = (row: Row): string =>
    row === header ? '' : row.ok === true ? 'ok' : row.ok === false ? 'MISSED' : '';
  const all = [header, ...rows];
  const width = (pick: (row: Row) => string): number => Math.max(...all.map(row => pick(row).length));
  const widths = [
    width(row => row.scenario),
    width(row => row.metric),
    width(row => row.value),
    width(row => row.goal),
  ];
  return all
    .map(row =>
      [row.scenario, row.metric, row.value, row.goal]
        .map((cell, i) => cell.padEnd(widths[i]! + 2))
        .join('')
        .concat(status(row))
        .trimEnd(),
    )
    .join('\n');
}

export async function writeJson(dir: string, stamp: string, content: unknown): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${stamp}.json`);
  await fs.writeFile(file, `${JSON.stringify(content, null, 2)}\n`);
  return file;
}
