import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  [key: string]: unknown;
}

interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

export interface PackedWorkspace {
  /** The package name, e.g. @jobstream/executor. */
  name: string;
  /** The workspace folder in this repository, e.g. executor-sdk. */
  folder: string;
  /** The tarball `npm pack` wrote. */
  tarball: string;
}

/** Runs `npm pack` for the given workspaces into `destination`; returns the tarballs. */
export async function packWorkspaces(
  workspaces: readonly { name: string; folder: string }[],
  destination: string,
): Promise<PackedWorkspace[]> {
  const { stdout } = await run(
    'npm',
    ['pack', '--json', '--pack-destination', destination, ...workspaces.flatMap(w => ['-w', w.name])],
    { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 },
  );
  const packed = JSON.parse(stdout) as { name: string; filename: string }[];
  return workspaces.map(workspace => {
    const entry = packed.find(p => p.name === workspace.name);
    if (entry === undefined) throw new Error(`npm pack did not pack ${workspace.name}`);
    return { ...workspace, tarball: path.join(destination, entry.filename) };
  });
}

/**
 * Writes package.json and package-lock.json of a new project depending on the packed
 * tarballs, so that `npm ci --offline` installs them from the tarballs and their
 * dependencies from npm's cache, exactly at the versions this repository locked: no
 * registry is asked for anything. The lock entries of the dependencies are the ones of
 * this repository's lockfile, found by Node's resolution from each workspace folder.
 */
export async function writeConsumerProject(
  projectDir: string,
  packed: readonly PackedWorkspace[],
): Promise<void> {
  const rootLock = JSON.parse(await readFile(path.join(repoRoot, 'package-lock.json'), 'utf8')) as Lockfile;
  const packages: Record<string, LockEntry> = {};
  const dependencies: Record<string, string> = {};
  const packedByName = new Map(packed.map(p => [p.name, p]));

  const visit = (fromLocation: string, name: string, installAs: string): void => {
    if (packages[installAs] !== undefined) return;
    const location = resolveInLock(rootLock, fromLocation, name);
    const entry = rootLock.packages[location];
    if (entry === undefined)
      throw new Error(`${name} (needed by ${fromLocation || 'the root'}) is not locked`);
    const { dev: _dev, ...kept } = entry;
    packages[installAs] = kept;
    for (const dependency of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      const nested = `${installAs}/node_modules/${dependency}`;
      const nestedInRoot = `${location}/node_modules/${dependency}`;
      visit(location, dependency, rootLock.packages[nestedInRoot] ? nested : `node_modules/${dependency}`);
    }
  };

  for (const workspace of packed) {
    const manifest = rootLock.packages[workspace.folder];
    if (manifest === undefined) throw new Error(`workspace ${workspace.folder} is not in the lockfile`);
    const spec = `file:${path.relative(projectDir, workspace.tarball)}`;
    dependencies[workspace.name] = spec;
    packages[`node_modules/${workspace.name}`] = {
      version: manifest.version,
      resolved: spec,
      ...(manifest.dependencies ? { dependencies: manifest.dependencies } : {}),
    };
    for (const dependency of Object.keys(manifest.dependencies ?? {})) {
      if (packedByName.has(dependency)) continue;
      visit(workspace.folder, dependency, `node_modules/${dependency}`);
    }
  }

  const manifest = {
    name: 'jobstream-consumer',
    version: '1.0.0',
    private: true,
    type: 'module',
    dependencies,
  };
  await writeFile(path.join(projectDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const lock = {
    name: manifest.name,
    version: manifest.version,
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: manifest.name, version: manifest.version, dependencies }, ...packages },
  };
  await writeFile(path.join(projectDir, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
}

/** Where Node would find `name` when required from the package at `fromLocation`. */
function resolveInLock(lock: Lockfile, fromLocation: string, name: string): string {
  let base = fromLocation;
  for (;;) {
    const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
    if (lock.packages[candidate] !== undefined) return candidate;
    if (base === '') return candidate;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut >= 0 ? base.slice(0, cut) : '';
  }
}

/** `npm ci` in the consumer project, from the lockfile and npm's cache only. */
export async function installOffline(projectDir: string): Promise<void> {
  await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: projectDir,
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Builds every workspace package (npm run build), as CI and a publisher do. */
export async function buildPackages(): Promise<void> {
  await run('npm', ['run', 'build'], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 });
}
