import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/package-install.js';

const run = promisify(execFile);
const depcruise = path.join(repoRoot, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

/** Runs the CI check (.dependency-cruiser.cjs) on the given files; returns its violations. */
async function violationsOf(files: readonly string[]): Promise<Violation[]> {
  const { stdout } = await run(
    process.execPath,
    [depcruise, '--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...files],
    { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 },
  ).catch((error: Error & { stdout?: string }) => {
    // The CLI exits non-zero when it finds violations; its report is still on stdout.
    if (error.stdout) return { stdout: error.stdout };
    throw error;
  });
  const report = JSON.parse(stdout) as { summary: { violations: Violation[] } };
  return report.summary.violations;
}

/**
 * Writes a probe file with one import into the tree, checks it, removes it. The probes
 * are the mistakes the code map forbids, so the rules are shown to catch each.
 */
async function violationsOfProbe(folder: string, importLine: string): Promise<Violation[]> {
  const probe = path.join(folder, `import-rule-probe-${randomBytes(4).toString('hex')}.ts`);
  await writeFile(path.join(repoRoot, probe), `${importLine}\nexport const probe = typeof imported;\n`);
  try {
    return await violationsOf([probe]);
  } finally {
    await rm(path.join(repoRoot, probe), { force: true });
  }
}

describe('the import rules of the code map (dependency-cruiser, run in CI)', () => {
  it('hold for the whole tree', async () => {
    const violations = await violationsOf([
      'admin/src',
      'executor-sdk/src',
      'executor-sdk/examples',
      'proto/src',
      'migrations',
    ]);
    expect(violations.map(v => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it.each([
    {
      mistake: 'the SDK importing the generated operator API',
      folder: 'executor-sdk/src',
      importLine: "import * as imported from '@jobstream/proto/admin';",
      rule: 'sdk-only-executor-contract',
    },
    {
      mistake: 'the SDK importing the contract by a relative path',
      folder: 'executor-sdk/src',
      importLine: "import * as imported from '../../proto/src/index.js';",
      rule: 'packages-through-their-names',
    },
    {
      mistake: 'the transport importing the data-access layer',
      folder: 'admin/src/grpc',
      importLine: "import * as imported from '../db/database.js';",
      rule: 'transport-not-data-access',
    },
    {
      mistake: 'the dispatcher importing wire messages',
      folder: 'admin/src/dispatch',
      importLine: "import * as imported from '@jobstream/proto/executor';",
      rule: 'dispatch-speaks-domain',
    },
    {
      mistake: 'domain logic importing the transport',
      folder: 'admin/src/scheduler',
      importLine: "import * as imported from '../grpc/error-boundary.js';",
      rule: 'domain-logic-not-up',
    },
    {
      mistake: 'an application service importing generated wire messages',
      folder: 'admin/src/services',
      importLine: "import * as imported from '@jobstream/proto/admin';",
      rule: 'services-not-transport',
    },
    {
      mistake: 'domain logic raising gRPC statuses itself',
      folder: 'admin/src/scheduler',
      importLine: "import * as imported from 'nice-grpc';",
      rule: 'domain-logic-knows-no-grpc',
    },
    {
      mistake: 'the data-access layer importing domain logic',
      folder: 'admin/src/db',
      importLine: "import * as imported from '../scheduler/scheduler.js';",
      rule: 'data-access-is-below',
    },
    {
      mistake: 'a package importing a devDependency',
      folder: 'admin/src',
      importLine: "import * as imported from 'vitest';",
      rule: 'declared-dependencies-only',
    },
  ])('refuse $mistake', async ({ folder, importLine, rule }) => {
    const violations = await violationsOfProbe(folder, importLine);
    expect(violations.map(v => v.rule.name)).toContain(rule);
  });
});
