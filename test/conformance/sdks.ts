import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../support/package-install.js';
import { PROCESS_START_CEILING_MS } from '../support/ceiling.js';
import { ChildTs } from '../support/processes.js';
import { DEBIAN_PYTHON } from '../support/python-reflection.js';

/** What the driver gives an SDK's conformance executor, as CONFORMANCE_* variables. */
export interface ConformanceExecutorConfig {
  adminAddresses: readonly string[];
  appName: string;
  accessToken: string;
  instanceName: string;
  dataDir: string;
  capacity?: number;
  shutdownGracePeriodMs?: number;
  /** Script kinds to opt into (none: the executor runs handlers only and refuses every script). */
  scriptKinds?: readonly ConformanceScriptKind[];
  /** The interpreter of PYTHON scripts. */
  pythonInterpreter?: string;
  /** Between SIGTERM and SIGKILL of a script's process group. */
  scriptKillGraceMs?: number;
}

/** Script kinds the conformance suite has scripts for. */
export type ConformanceScriptKind = 'SHELL' | 'PYTHON' | 'NODEJS';

/** An SDK under test: how to start its conformance executor (a fixed set of handlers). */
export interface SdkUnderTest {
  readonly name: string;
  /** The script (GLUE) kinds the SDK can run; the suite checks each of them. */
  readonly scriptKinds: readonly ConformanceScriptKind[];
  /** Why the SDK cannot be tested on this machine, or undefined when it can. */
  missing(): string | undefined;
  /** Starts one executor process of this SDK (not waiting for it to be ready). */
  spawn(config: ConformanceExecutorConfig): ChildTs;
}

function environment(config: ConformanceExecutorConfig): Record<string, string> {
  return {
    CONFORMANCE_ADMIN_ADDRESSES: config.adminAddresses.join(','),
    CONFORMANCE_APP_NAME: config.appName,
    CONFORMANCE_ACCESS_TOKEN: config.accessToken,
    CONFORMANCE_INSTANCE_NAME: config.instanceName,
    CONFORMANCE_DATA_DIR: config.dataDir,
    ...(config.capacity === undefined ? {} : { CONFORMANCE_CAPACITY: String(config.capacity) }),
    ...(config.shutdownGracePeriodMs === undefined
      ? {}
      : { CONFORMANCE_SHUTDOWN_GRACE_MS: String(config.shutdownGracePeriodMs) }),
    ...(config.scriptKinds === undefined ? {} : { CONFORMANCE_SCRIPT_KINDS: config.scriptKinds.join(',') }),
    ...(config.pythonInterpreter === undefined
      ? {}
      : { CONFORMANCE_PYTHON_INTERPRETER: config.pythonInterpreter }),
    ...(config.scriptKillGraceMs === undefined
      ? {}
      : { CONFORMANCE_SCRIPT_KILL_GRACE_MS: String(config.scriptKillGraceMs) }),
  };
}

export const nodeSdk: SdkUnderTest = {
  name: 'node',
  scriptKinds: ['SHELL', 'PYTHON', 'NODEJS'],
  missing: () => undefined,
  spawn: config => new ChildTs('test/conformance/executors/node-executor.ts', [], environment(config)),
};

const PYTHON_SDK_SOURCE = path.join(repoRoot, 'executor-sdk-python', 'src');
let pythonStubs: string | undefined;
let pythonMissing: string | undefined | null = null;

/**
 * The PYTHONPATH that makes the Python SDK importable from this checkout: its stubs,
 * generated from proto/ once per test worker into a temporary directory (never into the
 * source tree), then its sources. The stubs come first: a src/jobstream/ left by a local
 * build must not shadow them.
 */
export function pythonSdkPath(): string {
  if (pythonStubs === undefined) {
    const out = mkdtempSync(path.join(tmpdir(), 'jobstream-python-stubs-'));
    execFileSync(
      DEBIAN_PYTHON,
      ['-I', path.join(repoRoot, 'executor-sdk-python', 'generate_stubs.py'), '--out', out],
      { stdio: 'pipe', timeout: PROCESS_START_CEILING_MS },
    );
    pythonStubs = out;
  }
  return [pythonStubs, PYTHON_SDK_SOURCE].join(path.delimiter);
}

/**
 * The Python SDK on Debian's interpreter and packages (python3-grpcio, python3-protobuf,
 * python3-grpc-tools; .ci/run installs them). Its stubs are generated from proto/ into a
 * temporary directory for this test worker, never into the source tree.
 */
export const pythonSdk: SdkUnderTest = {
  name: 'python',
  scriptKinds: ['SHELL', 'PYTHON'],
  missing() {
    if (pythonMissing !== null) return pythonMissing;
    pythonMissing = undefined;
    if (!existsSync(DEBIAN_PYTHON)) pythonMissing = `${DEBIAN_PYTHON} does not exist`;
    else {
      try {
        execFileSync(DEBIAN_PYTHON, ['-I', '-c', 'import grpc, google.protobuf, grpc_tools.protoc'], {
          stdio: 'pipe',
          timeout: 30_000,
        });
      } catch (error) {
        pythonMissing = `${DEBIAN_PYTHON} cannot import grpc, google.protobuf and grpc_tools (apt-get install python3-grpcio python3-protobuf python3-grpc-tools): ${String(error)}`;
      }
    }
    return pythonMissing;
  },
  spawn(config) {
    return new ChildTs(
      'test/conformance/executors/python_executor.py',
      [],
      {
        ...environment(config),
        PYTHONPATH: pythonSdkPath(),
        PYTHONUNBUFFERED: '1',
        PYTHONDONTWRITEBYTECODE: '1',
      },
      { interpreter: [DEBIAN_PYTHON, '-s'] },
    );
  },
};
