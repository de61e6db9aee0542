import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Debian's interpreter, not the first python3 on PATH (a pyenv build here): only
 * Debian's sees the python3-grpcio / python3-grpc-tools packages.
 */
export const DEBIAN_PYTHON = '/usr/bin/python3';
export const REFLECT_CLIENT = fileURLToPath(new URL('./grpc_reflect_client.py', import.meta.url));
const REFLECTION_PROTO = '/usr/share/grpc-proto/grpc/reflection/v1/reflection.proto';

export interface PythonRunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The script's exit status; -1 when it was killed (timeout) instead. */
  readonly exitCode: number;
}

export interface ReflectClientOptions {
  /** gRPC metadata sent with every request, e.g. `{ authorization: 'Bearer …' }`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Which reflection service the client asks; the server must answer both. */
  readonly reflection?: 'v1' | 'v1alpha';
  /** Per-RPC deadline inside the client. */
  readonly rpcTimeoutSeconds?: number;
  /** Kills the whole script after this long. */
  readonly timeoutMs?: number;
}

let available: boolean | undefined;

/**
 * Whether the Debian packages the client needs are installed. Tests skip on false; it is
 * false only for missing packages, so a broken client still fails its tests. .ci/run
 * installs the packages.
 */
export function pythonGrpcAvailable(): boolean {
  if (available === undefined) {
    available =
      existsSync(DEBIAN_PYTHON) &&
      existsSync(REFLECTION_PROTO) &&
      canRun(['-I', '-c', 'import grpc, grpc_tools.protoc, google.protobuf.json_format']);
  }
  return available;
}

function canRun(args: string[]): boolean {
  try {
    execFileSync(DEBIAN_PYTHON, args, { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs grpc_reflect_client.py: `args` is the command and its operands, e.g.
 * `['describe', 'jobstream.v1.AdminService']`. Never rejects; look at exitCode
 * (0 ok, 1 gRPC error with `CODE_NAME: details` on stderr, 2 reflection or usage error).
 */
export function runReflectClient(
  target: string,
  args: readonly string[],
  options: ReflectClientOptions = {},
): Promise<PythonRunResult> {
  const flags = [
    '--reflection',
    options.reflection ?? 'v1',
    '--timeout',
    String(options.rpcTimeoutSeconds ?? 10),
    ...Object.entries(options.headers ?? {}).flatMap(([key, value]) => ['-H', `${key}: ${value}`]),
  ];
  // -I (isolated): PYTHONPATH and user site-packages meant for another Python stay out.
  const argv = ['-I', REFLECT_CLIENT, ...flags, target, ...args];
  return new Promise(resolve => {
    execFile(
      DEBIAN_PYTHON,
      argv,
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ stdout, stderr, exitCode });
      },
    );
  });
}

/** `list`: the service names reflection lists. Throws unless the client succeeded. */
export async function reflectList(target: string, options?: ReflectClientOptions): Promise<string[]> {
  const result = expectSuccess(await runReflectClient(target, ['list'], options));
  return result.stdout.split('\n').filter(line => line !== '');
}

/** `describe`: the client's text output (one `  rpc Name(In) returns (Out)` line per method). */
export async function reflectDescribe(
  target: string,
  service: string,
  options?: ReflectClientOptions,
): Promise<string> {
  return expectSuccess(await runReflectClient(target, ['describe', service], options)).stdout;
}

/**
 * `call`: the JSON responses (one for unary methods). A gRPC error is returned as
 * `{ error: 'CODE_NAME', details }` rather than thrown, so tests can assert on it.
 */
export async function reflectCall(
  target: string,
  method: string,
  request: unknown,
  options?: ReflectClientOptions,
): Promise<{ responses: unknown[] } | { error: string; details: string }> {
  const result = await runReflectClient(target, ['call', method, JSON.stringify(request)], options);
  if (result.exitCode === 1) {
    const match = /^([A-Z_]+): ?(.*)$/m.exec(result.stderr);
    if (match !== null) return { error: match[1] ?? '', details: match[2] ?? '' };
  }
  const { stdout } = expectSuccess(result);
  return {
    responses: stdout
      .split('\n')
      .filter(line => line !== '')
      .map(line => JSON.parse(line) as unknown),
  };
}

function expectSuccess(result: PythonRunResult): PythonRunResult {
  if (result.exitCode !== 0) {
    throw new Error(`grpc_reflect_client.py exited ${result.exitCode}:\n${result.stderr}${result.stdout}`);
  }
  return result;
}
