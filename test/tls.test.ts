import { writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ChannelCredentials, createChannel, createClient, Metadata, Status } from 'nice-grpc';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminApp } from '../admin/src/app.js';
import { ConfigError, loadConfig, type TlsConfig } from '../admin/src/config.js';
import { createLogger } from '../admin/src/logger.js';
import { LogStatus } from '@jobstream/proto/admin';
import { ExecutorServiceDefinition, type ExecutorMessage } from '@jobstream/proto/executor';
import { CLIENT_CERT_CN_KEY } from '../admin/src/grpc/tls.js';
import { Executor, silentLogger, type ExecutorTlsOptions } from '../executor-sdk/src/index.js';
import { registerFixtureHandlers } from './fixtures/handlers.js';
import {
  adminClient,
  finishedLog,
  startTestAdmin,
  TEST_ADMIN_TOKEN,
  type AdminClient,
  type TestAdmin,
} from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createGroup, createJob, tempDir } from './support/fixtures.js';

interface Pem {
  cert: string;
  key: string;
}

/** A CA and the certificates the tests need, made fresh for this run (EC keys: fast). */
interface Pki {
  ca: Pem;
  /** The admin's certificate: server and client use (it is a peer's client certificate under mTLS). */
  admin: Pem;
  /** Client certificates whose subject CN is the app name. */
  orders: Pem;
  billing: Pem;
  ghost: Pem;
  /** Signed by the CA, but its subject has no CN. */
  nameless: Pem;
  /** CN "orders", but signed by a CA the admin does not trust. */
  foreignOrders: Pem;
}

async function makeCa(commonName: string): Promise<Pem> {
  const made = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: made.cert, key: made.private };
}

async function makeLeaf(ca: Pem, commonName: string | undefined, server: boolean): Promise<Pem> {
  const subject =
    commonName === undefined
      ? [{ name: 'organizationName', value: 'jobstream tests' }]
      : [{ name: 'commonName', value: commonName }];
  const made = await generate(subject, {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { cert: ca.cert, key: ca.key },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', clientAuth: true, serverAuth: server },
      ...(server
        ? [
            {
              name: 'subjectAltName' as const,
              altNames: [
                { type: 2 as const, value: 'localhost' },
                { type: 7 as const, ip: '127.0.0.1' },
              ],
            },
          ]
        : []),
    ],
  });
  return { cert: made.cert, key: made.private };
}

/** An HTTPS request trusting only `ca` (undefined: the system's roots). */
function httpsRequest(
  url: string,
  ca: string | undefined,
  options: { method: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method: options.method, headers: options.headers, ca }, response => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

async function makePki(): Promise<Pki> {
  const ca = await makeCa('jobstream test CA');
  const foreignCa = await makeCa('some other CA');
  return {
    ca,
    admin: await makeLeaf(ca, 'jobstream-admin', true),
    orders: await makeLeaf(ca, 'orders', false),
    billing: await makeLeaf(ca, 'billing', false),
    ghost: await makeLeaf(ca, 'ghost', false),
    nameless: await makeLeaf(ca, undefined, false),
    foreignOrders: await makeLeaf(foreignCa, 'orders', false),
  };
}

function serverTls(pki: Pki, mutual: boolean): TlsConfig {
  return {
    cert: Buffer.from(pki.admin.cert),
    key: Buffer.from(pki.admin.key),
    clientCa: mutual ? Buffer.from(pki.ca.cert) : undefined,
    ca: Buffer.from(pki.ca.cert),
  };
}

function register(appName: string, instanceName: string): ExecutorMessage {
  return {
    kind: {
      $case: 'register',
      value: {
        appName,
        instanceName,
        hostname: 'test-host',
        pid: 1,
        sdkName: 'raw-test',
        sdkVersion: '0',
        handlers: ['echo'],
        capacity: 1,
        labels: {},
        running: [],
        unacknowledgedResults: [],
        protocolVersion: 1,
        pipelineWindow: 0,
        scriptKinds: [],
      },
    },
  };
}

/**
 * Opens one Connect stream, sends Register and reports how it went: welcomed, or the
 * error that ended it. The stream is cancelled either way.
 */
async function connectOnce(
  address: string,
  credentials: ChannelCredentials,
  options: { appName: string; instanceName: string; metadata?: Metadata },
): Promise<{ welcomed: boolean; error?: unknown }> {
  const channel = createChannel(address, credentials);
  const client = createClient(ExecutorServiceDefinition, channel);
  const abort = new AbortController();
  async function* requests(): AsyncGenerator<ExecutorMessage> {
    yield register(options.appName, options.instanceName);
    await new Promise(resolve => abort.signal.addEventListener('abort', resolve, { once: true }));
  }
  try {
    for await (const message of client.connect(requests(), {
      metadata: options.metadata ?? Metadata(),
      signal: AbortSignal.any([abort.signal, AbortSignal.timeout(10_000)]),
    })) {
      if (message.kind?.$case === 'welcome') return { welcomed: true };
    }
    return { welcomed: false };
  } catch (error) {
    return { welcomed: false, error };
  } finally {
    abort.abort();
    channel.close();
  }
}

const bearer = (token: string): Metadata => Metadata({ authorization: `Bearer ${token}` });

async function startExecutor(
  address: string,
  appName: string,
  instanceName: string,
  options: { tls: ExecutorTlsOptions; accessToken?: string },
): Promise<Executor> {
  const executor = new Executor({
    adminAddresses: [address],
    appName,
    instanceName,
    dataDir: await tempDir(instanceName),
    logger: silentLogger,
    tls: options.tls,
    ...(options.accessToken === undefined ? {} : { accessToken: options.accessToken }),
  });
  registerFixtureHandlers(executor, () => undefined);
  return executor;
}

/** Triggers an echo job and waits for its log to finish. */
async function runEcho(client: AdminClient, groupId: string, param: string) {
  const jobId = await createJob(client, groupId, 'echo');
  const { logIds } = await client.triggerJob({ jobId, param });
  return finishedLog(client, logIds[0]!);
}

let pki: Pki;

beforeAll(async () => {
  pki = await makePki();
});

describe('TLS configuration (JOBSTREAM_TLS_*)', () => {
  let dir: string;
  const files = { cert: '', key: '', ca: '', otherKey: '', notPem: '' };

  beforeAll(async () => {
    dir = await tempDir('tls-config');
    const write = async (name: string, contents: string): Promise<string> => {
      const file = path.join(dir, name);
      await writeFile(file, contents);
      return file;
    };
    files.cert = await write('admin.crt', pki.admin.cert);
    files.key = await write('admin.key', pki.admin.key);
    files.ca = await write('ca.crt', pki.ca.cert);
    files.otherKey = await write('orders.key', pki.orders.key);
    files.notPem = await write('notes.txt', 'not a certificate\n');
  });

  const load = (tlsEnv: Record<string, string>) =>
    loadConfig({ JOBSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ...tlsEnv });

  const problemsOf = (tlsEnv: Record<string, string>): readonly string[] => {
    try {
      load(tlsEnv);
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    throw new Error('expected a ConfigError');
  };

  it('is off without the variables, and reads every file when they are set', () => {
    expect(load({}).tls).toBeUndefined();
    const tls = load({
      JOBSTREAM_TLS_CERT: files.cert,
      JOBSTREAM_TLS_KEY: files.key,
      JOBSTREAM_TLS_CLIENT_CA: files.ca,
      JOBSTREAM_TLS_CA: files.ca,
    }).tls;
    expect(tls?.cert.toString()).toBe(pki.admin.cert);
    expect(tls?.key.toString()).toBe(pki.admin.key);
    expect(tls?.clientCa?.toString()).toBe(pki.ca.cert);
    expect(tls?.ca?.toString()).toBe(pki.ca.cert);
    const serverOnly = load({ JOBSTREAM_TLS_CERT: files.cert, JOBSTREAM_TLS_KEY: files.key }).tls;
    expect(serverOnly).toMatchObject({ clientCa: undefined, ca: undefined });
  });

  it('refuses a certificate without its key, and a key without its certificate', () => {
    expect(problemsOf({ JOBSTREAM_TLS_CERT: files.cert })).toEqual([
      expect.stringContaining('JOBSTREAM_TLS_KEY is required when JOBSTREAM_TLS_CERT is set'),
    ]);
    expect(problemsOf({ JOBSTREAM_TLS_KEY: files.key })).toEqual([
      expect.stringContaining('JOBSTREAM_TLS_CERT is required when JOBSTREAM_TLS_KEY is set'),
    ]);
  });

  it('refuses an unreadable file, naming the variable and the path', () => {
    const missing = path.join(dir, 'missing.crt');
    expect(
      problemsOf({ JOBSTREAM_TLS_CERT: files.cert, JOBSTREAM_TLS_KEY: files.key, JOBSTREAM_TLS_CA: missing }),
    ).toEqual([`JOBSTREAM_TLS_CA: cannot read "${missing}" (ENOENT)`]);
    expect(problemsOf({ JOBSTREAM_TLS_CERT: dir, JOBSTREAM_TLS_KEY: files.key })).toEqual([
      `JOBSTREAM_TLS_CERT: cannot read "${dir}" (EISDIR)`,
    ]);
  });

  it('refuses files that hold no PEM, a key of another certificate, and CAs without TLS', () => {
    expect(
      problemsOf({
        JOBSTREAM_TLS_CERT: files.cert,
        JOBSTREAM_TLS_KEY: files.key,
        JOBSTREAM_TLS_CLIENT_CA: files.notPem,
      }),
    ).toEqual([`JOBSTREAM_TLS_CLIENT_CA: "${files.notPem}" holds no PEM certificate`]);
    expect(problemsOf({ JOBSTREAM_TLS_CERT: files.cert, JOBSTREAM_TLS_KEY: files.notPem })).toEqual([
      expect.stringContaining('JOBSTREAM_TLS_KEY: '),
    ]);
    expect(problemsOf({ JOBSTREAM_TLS_CERT: files.cert, JOBSTREAM_TLS_KEY: files.otherKey })).toEqual([
      'JOBSTREAM_TLS_KEY is not the private key of the certificate in JOBSTREAM_TLS_CERT',
    ]);
    expect(problemsOf({ JOBSTREAM_TLS_CLIENT_CA: files.ca })).toEqual([
      expect.stringContaining('JOBSTREAM_TLS_CLIENT_CA applies only with TLS on'),
    ]);
  });
});

describe('executor SDK tls option', () => {
  const base = { adminAddresses: ['127.0.0.1:1'], appName: 'orders', logger: silentLogger };

  it('needs the token unless a client certificate is given', () => {
    expect(() => new Executor({ ...base, tls: { ca: pki.ca.cert } })).toThrow(/accessToken must be/);
    expect(
      () => new Executor({ ...base, tls: { ca: pki.ca.cert, cert: pki.orders.cert, key: pki.orders.key } }),
    ).not.toThrow();
    expect(() => new Executor({ ...base, accessToken: 't', tls: {} })).not.toThrow();
  });

  it('refuses paths, a lone certificate, a mismatched key, unknown keys and channelCredentials too', () => {
    const problems = (tls: unknown, extra: Record<string, unknown> = {}): string => {
      try {
        new Executor({ ...base, accessToken: 't', tls: tls as ExecutorTlsOptions, ...extra });
      } catch (error) {
        expect(error).toBeInstanceOf(TypeError);
        return (error as TypeError).message;
      }
      throw new Error('expected a TypeError');
    };
    expect(problems({ ca: '/etc/ssl/ca.pem' })).toContain('tls.ca must be PEM text');
    expect(problems({ cert: pki.orders.cert })).toContain('tls.cert and tls.key must be given together');
    expect(problems({ cert: pki.orders.cert, key: pki.billing.key })).toMatch(/tls: .*key/i);
    expect(problems({ ca: pki.ca.cert, verify: false })).toContain('unknown option "tls.verify"');
    expect(problems({}, { channelCredentials: ChannelCredentials.createInsecure() })).toContain(
      'tls and channelCredentials exclude each other',
    );
  });
});

describe('TLS on both services (server certificate only)', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let groupId: string;
  let token: string;
  let executor: Executor | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { tls: serverTls(pki, false), consolePort: 0 });
    ({ groupId, token } = await createGroup(admin.client, 'orders'));
  });

  afterAll(async () => {
    await executor?.stop();
    await admin?.stop();
    await database?.drop();
  });

  it('serves the web console over TLS too, its session cookie Secure and __Host- prefixed', async () => {
    const url = admin.app.consoleUrl!;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    await admin.client.createUser({
      username: 'tls-console',
      password: 'tls-console-password',
      role: 1,
      groupIds: [],
    });
    const login = await httpsRequest(`${url}jobstream.v1.AdminService/Login`, pki.ca.cert, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-jobstream-console': '1' },
      body: JSON.stringify({ username: 'tls-console', password: 'tls-console-password' }),
    });
    expect(login.status).toBe(200);
    expect(login.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(login.headers['set-cookie']?.[0]).toMatch(
      /^__Host-jobstream-session=jss_\S+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/,
    );
    expect(JSON.parse(login.body)).not.toHaveProperty('token');
    const page = await httpsRequest(url, pki.ca.cert, { method: 'GET' });
    expect(page.headers['x-frame-options']).toBe('DENY');
    // Nothing in plaintext, and nothing to a client that does not trust the CA.
    await expect(fetch(url.replace('https:', 'http:'))).rejects.toThrow();
    await expect(httpsRequest(url, undefined, { method: 'GET' })).rejects.toThrow(/self-signed|certificate/);
  });

  it('serves AdminService to a client trusting the CA, and nothing to plaintext or untrusting clients', async () => {
    const { groups } = await admin.client.listExecutorGroups({ appNameContains: '' });
    expect(groups.map(group => group.appName)).toContain('orders');

    const plaintext = adminClient(admin.address);
    await expect(plaintext.client.listJobs({})).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    plaintext.channel.close();
    // The system roots do not know the test CA.
    const untrusting = adminClient(admin.address, TEST_ADMIN_TOKEN, ChannelCredentials.createSsl());
    await expect(untrusting.client.listJobs({})).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    untrusting.channel.close();
  });

  it('connects an executor over TLS with its token and runs a job on it', async () => {
    executor = await startExecutor(admin.address, 'orders', 'orders-tls-1', {
      tls: { ca: pki.ca.cert },
      accessToken: token,
    });
    await executor.start();
    const log = await runEcho(admin.client, groupId, 'over tls');
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      executorInstance: 'orders-tls-1',
      handleMessage: 'echo: over tls',
    });
  });

  it('still requires a token when the port asks for no client certificate', async () => {
    const withCert = ChannelCredentials.createSsl(
      Buffer.from(pki.ca.cert),
      Buffer.from(pki.orders.key),
      Buffer.from(pki.orders.cert),
    );
    const result = await connectOnce(admin.address, withCert, {
      appName: 'orders',
      instanceName: 'no-token',
    });
    expect(result.error).toMatchObject({ code: Status.UNAUTHENTICATED });
  });

  it('ignores a client that forges the verified-certificate metadata', async () => {
    const metadata = Metadata();
    metadata.set(CLIENT_CERT_CN_KEY, new TextEncoder().encode('orders'));
    const result = await connectOnce(admin.address, ChannelCredentials.createSsl(Buffer.from(pki.ca.cert)), {
      appName: 'orders',
      instanceName: 'forger',
      metadata,
    });
    expect(result.error).toMatchObject({ code: Status.UNAUTHENTICATED });
  });
});

describe('mutual TLS: client certificates name the app', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let ordersGroupId: string;
  let billingToken: string;
  let ordersToken: string;
  let executor: Executor | undefined;
  const ca = (): Buffer => Buffer.from(pki.ca.cert);
  const withCertificate = (pem: Pem): ChannelCredentials =>
    ChannelCredentials.createSsl(ca(), Buffer.from(pem.key), Buffer.from(pem.cert));

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { tls: serverTls(pki, true) });
    ({ groupId: ordersGroupId, token: ordersToken } = await createGroup(admin.client, 'orders'));
    ({ token: billingToken } = await createGroup(admin.client, 'billing'));
  });

  afterAll(async () => {
    await executor?.stop();
    await admin?.stop();
    await database?.drop();
  });

  it('connects an executor by its certificate alone and runs a job on it', async () => {
    executor = await startExecutor(admin.address, 'orders', 'orders-mtls-1', {
      tls: { ca: pki.ca.cert, cert: pki.orders.cert, key: pki.orders.key },
    });
    await executor.start();
    const log = await runEcho(admin.client, ordersGroupId, 'by certificate');
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      executorInstance: 'orders-mtls-1',
      handleMessage: 'echo: by certificate',
    });
  });

  it('accepts a token sent along with the certificate when both name the same app', async () => {
    const result = await connectOnce(admin.address, withCertificate(pki.orders), {
      appName: 'orders',
      instanceName: 'orders-both',
      metadata: bearer(ordersToken),
    });
    expect(result).toEqual({ welcomed: true });
  });

  it('refuses a client without a certificate at the handshake, on every service', async () => {
    const result = await connectOnce(admin.address, ChannelCredentials.createSsl(ca()), {
      appName: 'orders',
      instanceName: 'orders-anonymous',
      metadata: bearer(ordersToken),
    });
    expect(result.error).toMatchObject({ code: Status.UNAVAILABLE });
    const noCertificate = adminClient(admin.address, TEST_ADMIN_TOKEN, ChannelCredentials.createSsl(ca()));
    await expect(noCertificate.client.listJobs({})).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    noCertificate.channel.close();
  });

  it('refuses a certificate signed by another CA', async () => {
    const result = await connectOnce(admin.address, withCertificate(pki.foreignOrders), {
      appName: 'orders',
      instanceName: 'orders-foreign',
    });
    expect(result.error).toMatchObject({ code: Status.UNAVAILABLE });
  });

  it("refuses a certificate of app orders registering as billing (the SDK's start() fails)", async () => {
    const impostor = await startExecutor(admin.address, 'billing', 'billing-impostor', {
      tls: { ca: pki.ca.cert, cert: pki.orders.cert, key: pki.orders.key },
    });
    await expect(impostor.start()).rejects.toMatchObject({ code: Status.PERMISSION_DENIED });
    await impostor.stop();
  });

  it("refuses another app's token sent with the certificate", async () => {
    const result = await connectOnce(admin.address, withCertificate(pki.orders), {
      appName: 'orders',
      instanceName: 'orders-mixed',
      metadata: bearer(billingToken),
    });
    expect(result.error).toMatchObject({ code: Status.PERMISSION_DENIED });
  });

  it('refuses a certificate naming an app that has no group', async () => {
    const result = await connectOnce(admin.address, withCertificate(pki.ghost), {
      appName: 'ghost',
      instanceName: 'ghost-1',
    });
    expect(result.error).toMatchObject({ code: Status.PERMISSION_DENIED });
  });

  it('refuses a certificate whose subject has no CN', async () => {
    const result = await connectOnce(admin.address, withCertificate(pki.nameless), {
      appName: 'orders',
      instanceName: 'orders-nameless',
      metadata: bearer(ordersToken),
    });
    expect(result.error).toMatchObject({ code: Status.PERMISSION_DENIED });
    expect((result.error as Error).message).toContain('names no app');
  });

  it('trusts only what the handshake verified, not metadata claiming another app', async () => {
    const metadata = Metadata();
    metadata.set(CLIENT_CERT_CN_KEY, new TextEncoder().encode('billing'));
    const result = await connectOnce(admin.address, withCertificate(pki.orders), {
      appName: 'billing',
      instanceName: 'billing-forged',
      metadata,
    });
    expect(result.error).toMatchObject({ code: Status.PERMISSION_DENIED });
  });
});

describe('two admins under mutual TLS, the executor connected to one of them', () => {
  let database: TestDatabase;
  let adminA: TestAdmin;
  let adminB: TestAdmin;
  let executor: Executor | undefined;
  let groupId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    adminA = await startTestAdmin(database.url, { tls: serverTls(pki, true) });
    adminB = await startTestAdmin(database.url, { tls: serverTls(pki, true) });
    ({ groupId } = await createGroup(adminA.client, 'orders'));
    executor = await startExecutor(adminB.address, 'orders', 'orders-remote-1', {
      tls: { ca: pki.ca.cert, cert: pki.orders.cert, key: pki.orders.key },
    });
    await executor.start();
  });

  afterAll(async () => {
    await executor?.stop();
    await adminA?.stop();
    await adminB?.stop();
    await database?.drop();
  });

  it('forwards a run from admin A to admin B over TLS, A presenting its certificate', async () => {
    expect(adminA.app.sessions.size).toBe(0);
    const log = await runEcho(adminA.client, groupId, 'via A');
    expect(log).toMatchObject({
      status: LogStatus.LOG_STATUS_SUCCEEDED,
      executorInstance: 'orders-remote-1',
      handleMessage: 'echo: via A',
    });
  });
});

describe('the plaintext warning', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database?.drop();
  });

  async function warningsWhenServing(host: string, tls: TlsConfig | undefined): Promise<string[]> {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const config = loadConfig(
      {
        DATABASE_URL: database.url,
        JOBSTREAM_GRPC_PORT: '0',
        JOBSTREAM_METRICS_PORT: 'off',
        JOBSTREAM_CONSOLE_PORT: 'off',
      },
      { overrides: { grpcHost: host, tls } },
    );
    const app = new AdminApp(config, createLogger({ level: 'warn', destination }));
    await app.start();
    await app.stop();
    return lines.filter(line => line.includes('plaintext'));
  }

  it('warns loudly when plaintext is bound beyond loopback, and not with TLS or on loopback', async () => {
    const [warning] = await warningsWhenServing('0.0.0.0', undefined);
    expect(JSON.parse(warning!)).toMatchObject({
      level: 40,
      host: '0.0.0.0',
      msg: 'gRPC is served in plaintext on a non-loopback address: tokens cross the network unencrypted',
    });
    expect(await warningsWhenServing('0.0.0.0', serverTls(pki, false))).toEqual([]);
    expect(await warningsWhenServing('127.0.0.1', undefined)).toEqual([]);
  });
});
