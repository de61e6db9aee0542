import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/package-install.js';

/** The README's "Code map" section, its tables' first cells split into backticked names. */
function codeMapTables(): { rows: string[][] }[] {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = /^## Code map\n([\s\S]*?)^## /m.exec(readme)?.[1];
  if (section === undefined) throw new Error('README.md has no "## Code map" section');
  const tables: { rows: string[][] }[] = [];
  let current: string[][] | undefined;
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) {
      current = undefined;
      continue;
    }
    if (current === undefined) {
      current = [];
      tables.push({ rows: current });
      continue; // the header row
    }
    if (/^\|\s*-/.test(line)) continue;
    const firstCell = line.split('|')[1] ?? '';
    current.push([...firstCell.matchAll(/`([^`]+)`/g)].map(match => match[1]!));
  }
  return tables;
}

const isDirectory = (file: string) => statSync(file).isDirectory();

describe("the README's code map", () => {
  const [packages, admin] = codeMapTables();

  it('names every top-level folder of code, and only folders that exist', () => {
    const listed = packages!.rows.flat();
    for (const name of listed) expect(isDirectory(path.join(repoRoot, name)), name).toBe(true);
    const codeFolders = [
      'proto',
      'executor-sdk',
      'executor-sdk-python',
      'admin',
      'console',
      'migrations',
      'test',
      'bench',
    ];
    expect(listed.map(name => name.replace(/\/$/, '')).sort()).toEqual([...codeFolders].sort());
  });

  it('names every folder and file directly in admin/src, and only ones that exist', () => {
    const adminSrc = path.join(repoRoot, 'admin/src');
    const listed = admin!.rows.flat().map(name => name.replace(/\/$/, ''));
    const onDisk = readdirSync(adminSrc).filter(
      name =>
        // The import-rules test writes short-lived probe files here, maybe while this runs.
        !name.startsWith('import-rule-probe-') &&
        (isDirectory(path.join(adminSrc, name)) || name.endsWith('.ts')),
    );
    expect([...listed].sort()).toEqual([...onDisk].sort());
  });
});
