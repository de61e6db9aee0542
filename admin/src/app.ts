import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { composeServerMiddleware, createServer, type Server } from 'nice-grpc';
import { createAlarms } from './alarm/alarm.js';
import type { AdminConfig } from './config.js';
import { createDatabase, type Db } from './db/database.js';
import { startEmbeddedPostgres } from './db/embedded-postgres.js';
import { migrateToLatest } from './db/migrate.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { HeldAcceptances } from './dispatch/held-acceptances.js';
import { ChildJobs } from './followups/child-jobs.js';
import { FailureMonitor } from './followups/failure-monitor.js';
import { Router } from './dispatch/router.js';
import { PresenceTracker } from './executors/presence-tracker.js';
import { Housekeeper } from './housekeeping/housekeeper.js';
import { ResultRecorder } from './executors/result-recorder.js';
import { SessionRegistry } from './executors/session-registry.js';
import { ExecutorDirectory } from './executors/executor-directory.js';
import { AdminPeerServiceDefinition } from '@jobstream/proto/peer';
import { createPeerService } from './grpc/peer-service.js';
import { QuartzCronCompiler } from './schedule/cron/index.js';
import { Scheduler } from './scheduler/scheduler.js';
import { AdminServiceDefinition } from '@jobstream/proto/admin';
import { ExecutorServiceDefinition } from '@jobstream/proto/executor';
import { encodeAsGiven } from '@jobstream/proto';
import { createAdminService } from './grpc/operator-api/index.js';
import { ConnectLimits } from './grpc/connect-limits.js';
import { errorBoundary } from './grpc/error-boundary.js';
import { tolerantDecoding } from './grpc/malformed-messages.js';
import { createExecutorService } from './grpc/executor-service.js';
import { clientCertificateInterceptor, peerChannelCredentials, serverCredentials } from './grpc/tls.js';
import { addReflectionAndHealth } from './grpc/reflection.js';
import { requestSanity } from './grpc/request-sanity.js';
import { BrowserSessions } from './console/browser-session.js';
import { startConsoleServer } from './console/console-server.js';
import { operatorApiRoutes, PEER_ADDRESS } from './console/operator-api-bridge.js';
import type { Logger } from './logger.js';
import { AdminMetrics } from './metrics.js';
import { TokenAuthenticator } from './auth/authenticator.js';
import { LoginThrottle } from './auth/login-throttle.js';
import { createUserAccount, CreateUserError } from './auth/create-user.js';
import { countUsers, ensureClusterSecret } from './db/users.repository.js';
import { generateToken, hashToken } from './auth/tokens.js';
import { Authenticator } from './grpc/auth.js';
import { AccountsService } from './services/accounts.js';
import { DashboardService } from './services/dashboard.js';
import { ExecutorRegistrationService } from './services/executor-registration.js';
import { ExecutorsService } from './services/executors.js';
import { GroupsService } from './services/groups.js';
import { JobsService } from './services/jobs.js';
import { LogsService } from './services/logs.js';
import type { Tokens } from './services/tokens.js';
import { OneAtATime } from './util/one-at-a-time.js';

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/** How long stop() lets streams and calls end on their own before cutting them. */
const SHUTDOWN_GRACE_MS = 5_000;

/**
 * The admin process: the composition root that wires config, database, services and
 * the gRPC server. `start()` resolves once the server listens; `stop()` is idempotent
 * and releases everything in reverse order.
 */
export class AdminApp {
  readonly config: AdminConfig;
  readonly logger: Logger;
  readonly metrics = new AdminMetrics();
  readonly sessions = new SessionRegistry();
  #state: State = 'idle';
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  /** Resources in acquisition order; released in reverse. */
  readonly #releasers: { name: string; release: () => Promise<void> }[] = [];
  #db: Db | undefined;
  #grpcPort: number | undefined;
  #metricsPort: number | undefined;
  #consoleUrl: string | undefined;

  constructor(config: AdminConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
  }

  get state(): State {
    return this.#state;
  }

  get grpcPort(): number {
    if (this.#grpcPort === undefined) throw new Error('admin is not running');
    return this.#grpcPort;
  }

  get grpcAddress(): string {
    return `${this.config.grpcHost}:${this.grpcPort}`;
  }

  /** The web console's address, e.g. http://127.0.0.1:8788/; undefined when it is off. */
  get consoleUrl(): string | undefined {
    return this.#consoleUrl;
  }

  get metricsPort(): number | undefined {
    return this.#metricsPort;
  }

  get db(): Db {
    if (!this.#db) throw new Error('admin is not running');
    return this.#db;
  }

  start(): Promise<void> {
    this.#startPromise ??= this.#start().catch(async (error: unknown) => {
      this.logger.error({ err: error }, 'admin failed to start');
      await this.#release();
      this.#state = 'stopped';
      throw error;
    });
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`cannot start an admin in state ${this.#state}`);
    this.#state = 'starting';
    const { config, logger } = this;

    let databaseUrl = config.databaseUrl;
    if (databaseUrl === undefined) {
      const dataDir = path.join(config.dataDir, 'postgres');
      logger.info({ dataDir }, 'DATABASE_URL is not set: starting an embedded PostgreSQL');
      const embedded = await startEmbeddedPostgres({
        dataDir,
        onLog: line => logger.debug({ component: 'postgres' }, line),
      });
      this.#releasers.push({ name: 'embedded postgres', release: () => embedded.stop() });
      databaseUrl = embedded.connectionString;
    }

    const db = createDatabase({
      connectionString: databaseUrl,
      onStatement: (durationMs, failed) => {
        this.metrics.dbStatements.inc({ outcome: failed ? 'error' : 'ok' });
        this.metrics.dbStatementSeconds.observe(durationMs / 1000);
      },
    });
    this.#db = db;
    this.#releasers.push({ name: 'database pool', release: () => db.destroy() });
    // The statements that tell peers this admin and its executors are alive: on connections
    // of their own, never queued behind a full pool. The lease has one connection, whose
    // session holds the admin's liveness lock; presence refreshes have two (beats of
    // different executors, and overlapping beats of one, are written concurrently).
    const onStatement = (durationMs: number, failed: boolean): void => {
      this.metrics.dbStatements.inc({ outcome: failed ? 'error' : 'ok' });
      this.metrics.dbStatementSeconds.observe(durationMs / 1000);
    };
    const leaseDb = createDatabase({ connectionString: databaseUrl, maxConnections: 1, onStatement });
    this.#releasers.push({ name: 'lease database connection', release: () => leaseDb.destroy() });
    const presenceDb = createDatabase({ connectionString: databaseUrl, maxConnections: 2, onStatement });
    this.#releasers.push({ name: 'presence database pool', release: () => presenceDb.destroy() });
    const migrations = await migrateToLatest(db);
    const applied = (migrations.results ?? []).map(result => result.migrationName);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'schema is up to date');
    const peerSecret = await ensureClusterSecret(db, generateToken('jsp_'));
    if (config.initialAdmin !== undefined) await createInitialAdmin(db, config.initialAdmin, logger);

    const presence = new PresenceTracker({
      db,
      refreshDb: presenceDb,
      adminInstanceId: config.adminInstanceId,
      beatIntervalMs: config.beatIntervalMs,
      logger: logger.child({ component: 'presence' }),
    });
    presence.start();
    this.#releasers.push({ name: 'presence sweeper', release: () => presence.stop() });

    // Set once the dispatcher exists; results only arrive after the server listens.
    const followUps: { childJobs?: ChildJobs } = {};
    const logRowWrites = new OneAtATime();
    const acceptances = new HeldAcceptances({
      db,
      logger: logger.child({ component: 'dispatcher' }),
      logRowWrites,
    });
    this.#releasers.push({ name: 'accepted runs held', release: () => acceptances.stop() });
    const results = new ResultRecorder({
      db,
      acceptances,
      logRowWrites,
      logger: logger.child({ component: 'results' }),
      metrics: this.metrics,
      onResultStored: (result, stored) => {
        if (result.outcome === 'SUCCEEDED' && stored.hasChildJobs)
          followUps.childJobs?.onParentSucceeded(result.logId);
      },
    });
    const directory = new ExecutorDirectory({
      db,
      sessions: this.sessions,
      adminInstanceId: config.adminInstanceId,
      peerToken: peerSecret,
      peerCredentials: peerChannelCredentials(config.tls),
    });
    this.#releasers.push({ name: 'peer channels', release: () => Promise.resolve(directory.close()) });
    const dispatcher = new Dispatcher({
      db,
      adminInstanceId: config.adminInstanceId,
      directory,
      router: new Router(),
      logger: logger.child({ component: 'dispatcher' }),
      metrics: this.metrics,
      requestDeadlineMs: config.requestDeadlineMs,
      acceptances,
      logRowWrites,
    });
    this.#releasers.push({ name: 'dispatcher background work', release: () => dispatcher.stop() });
    const children = new ChildJobs({ db, dispatcher, logger: logger.child({ component: 'child-jobs' }) });
    followUps.childJobs = children;
    this.#releasers.push({ name: 'child job triggers', release: () => children.settled() });
    const alarms = createAlarms(config, logger.child({ component: 'alarms' }), this.metrics);
    this.#releasers.push({ name: 'alarm channels', release: () => alarms.close() });
    const failures = new FailureMonitor({
      db,
      dispatcher,
      alarms,
      logger: logger.child({ component: 'failures' }),
      intervalMs: config.failureMonitorIntervalMs,
      lostRunGraceMs: config.lostRunGraceMs,
      resultLostAfterMs: config.resultLostAfterMs,
      // Well past any dispatch still under way (each waits at most one request deadline).
      undispatchedAfterMs: Math.max(60_000, 10 * config.requestDeadlineMs),
      onLostRuns: count => this.metrics.lostRuns.inc(count),
      onRetries: count => this.metrics.retries.inc(count),
    });

    // Shared by the application services: the token scheme the authenticators check, one clock.
    const tokens: Tokens = { generate: generateToken, hash: hashToken };
    const now = (): Date => new Date();
    // The operator API's edge, shared by the gRPC port and the console's browser protocol.
    const boundary = errorBoundary(logger.child({ component: 'grpc' }));
    const sanity = requestSanity();
    const server = createServer({
      'grpc.max_receive_message_length': config.maxMessageBytes,
      'grpc.max_send_message_length': config.maxMessageBytes,
      // Notice executors that vanish without closing their connection (a stalled host).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      // Nothing serves channelz here, and its per-call bookkeeping showed in the profile of
      // TriggerJob calls.
      'grpc.enable_channelz': 0,
      // The only way handlers learn which client certificate a connection was verified with.
      interceptors: [clientCertificateInterceptor()],
    })
      .use(boundary)
      .use(sanity);
    server.add(
      encodeAsGiven(tolerantDecoding(ExecutorServiceDefinition), 'responses'),
      createExecutorService({
        registration: new ExecutorRegistrationService({ db, tokens, now }),
        sessions: this.sessions,
        presence,
        results,
        logger: logger.child({ component: 'executor-stream' }),
        metrics: this.metrics,
        adminInstanceId: config.adminInstanceId,
        beatIntervalMs: config.beatIntervalMs,
        registerTimeoutMs: config.registerTimeoutMs,
        requestDeadlineMs: config.requestDeadlineMs,
        connectLimits: new ConnectLimits({
          maxStreamsPerGroup: config.maxStreamsPerGroup,
          attemptsPerSecond: config.connectRatePerSecond,
          failedAuthenticationsPerSecond: config.connectFailedAuthPerSecond,
        }),
        onSessionEnded: async session => {
          await acceptances.writeSession(session.sessionId);
          await failures.sessionEnded(session.sessionId);
        },
        onRunsReleased: logIds => dispatcher.dispatchReleased(logIds),
        onRunsLost: logIds => failures.runsDeclaredLost(logIds),
      }),
    );
    const cronCompiler = new QuartzCronCompiler();
    const scheduler = new Scheduler({
      db,
      dispatcher,
      logger: logger.child({ component: 'scheduler' }),
      metrics: this.metrics,
      adminInstanceId: config.adminInstanceId,
      defaultTimeZone: config.defaultTimeZone,
      cronCompiler,
      misfireThresholdMs: config.misfireThresholdMs,
      leaseTtlMs: config.adminLeaseMs,
      leaseDb,
      maxFiresInFlight: config.maxFiresInFlight,
    });
    this.metrics.observeLoad({
      runsWaitingForSlot: () =>
        this.sessions.all().reduce((sum, session) => sum + session.slotUse.waiting, 0),
      firesInFlight: () => scheduler.firesInFlight,
    });
    const operatorApi = createAdminService({
      authenticator: new Authenticator(new TokenAuthenticator({ db, staticTokens: config.adminTokens })),
      accounts: new AccountsService({
        db,
        tokens,
        loginThrottle: new LoginThrottle({ maxFailures: 10, windowMs: 5 * 60_000 }),
        sessionTtlMs: config.sessionTtlMs,
        logger: logger.child({ component: 'accounts' }),
        now,
      }),
      dashboard: new DashboardService({ db, timeZone: config.defaultTimeZone, now }),
      executors: new ExecutorsService({ db, now }),
      groups: new GroupsService({ db, tokens, now }),
      jobs: new JobsService({
        db,
        scheduler,
        dispatcher,
        cronCompiler,
        logger: logger.child({ component: 'jobs' }),
        scripts: {
          maxBytes: config.scriptMaxBytes,
          defaultTimeoutSeconds: config.scriptDefaultTimeoutSeconds,
        },
        now,
      }),
      logs: new LogsService({ db, directory }),
      cronCompiler,
      defaultTimeZone: config.defaultTimeZone,
      scriptLimits: { maxBytes: config.scriptMaxBytes },
      requestDeadlineMs: config.requestDeadlineMs,
    });
    server.add(tolerantDecoding(AdminServiceDefinition), operatorApi);
    server.add(
      tolerantDecoding(AdminPeerServiceDefinition),
      createPeerService({ sessions: this.sessions, peerSecret, acceptances }),
    );
    addReflectionAndHealth(server, {
      serviceNames: [AdminServiceDefinition.fullName, ExecutorServiceDefinition.fullName],
    });
    this.#grpcPort = await server.listen(
      `${config.grpcHost}:${config.grpcPort}`,
      serverCredentials(config.tls),
    );
    this.#releasers.push({ name: 'grpc server', release: () => this.#shutdownGrpc(server) });
    await scheduler.start(config.advertiseAddress ?? advertisedAddress(config.grpcHost, this.#grpcPort));
    this.#releasers.push({ name: 'scheduler', release: () => scheduler.stop() });
    const housekeeper = new Housekeeper({
      db,
      logger: logger.child({ component: 'housekeeping' }),
      timeZone: config.defaultTimeZone,
      intervalMs: config.housekeepingIntervalMs,
      logRetentionDays: config.logRetentionDays,
    });
    housekeeper.start();
    this.#releasers.push({ name: 'housekeeper', release: () => housekeeper.stop() });
    failures.start();
    this.#releasers.push({ name: 'failure monitor', release: () => failures.stop() });
    if (config.tls === undefined && !isLoopback(config.grpcHost)) {
      logger.warn(
        { host: config.grpcHost },
        'gRPC is served in plaintext on a non-loopback address: tokens cross the network unencrypted',
      );
    }

    if (config.consolePort !== undefined) {
      const sessions = new BrowserSessions({ secure: config.tls !== undefined, now });
      const consoleServer = await startConsoleServer({
        host: config.consoleHost,
        port: config.consolePort,
        tls: config.tls,
        staticDir: config.consoleDir,
        maxMessageBytes: config.maxMessageBytes,
        logger: logger.child({ component: 'console' }),
        routes: operatorApiRoutes({
          implementation: operatorApi,
          middleware: composeServerMiddleware(boundary, sanity),
          admit: (_method, context) => sessions.admit(context, context.values.get(PEER_ADDRESS)),
          onResponse: (method, response, context) => sessions.onResponse(method, response, context),
          logger: logger.child({ component: 'console' }),
        }),
      });
      this.#consoleUrl = consoleServer.url;
      this.#releasers.push({ name: 'console server', release: () => consoleServer.close() });
    }

    if (config.metricsPort !== undefined) {
      const metricsServer = await this.#startMetricsServer(config.metricsHost, config.metricsPort);
      this.#releasers.push({
        name: 'metrics server',
        release: () => new Promise<void>(resolve => metricsServer.close(() => resolve())),
      });
    }

    this.#state = 'running';
    logger.info(
      {
        grpc: this.grpcAddress,
        tls: config.tls === undefined ? 'off' : config.tls.clientCa === undefined ? 'on' : 'mutual',
        metricsPort: this.#metricsPort,
        console: this.#consoleUrl,
        adminInstanceId: config.adminInstanceId,
      },
      'admin started',
    );
  }

  async #startMetricsServer(host: string, port: number): Promise<HttpServer> {
    const server = createHttpServer((request, response) => {
      if (request.url !== '/metrics') {
        response.writeHead(404).end('not found\n');
        return;
      }
      this.metrics.registry.metrics().then(
        body => response.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body),
        (error: unknown) => {
          this.logger.error({ err: error }, 'collecting metrics failed');
          response.writeHead(500).end();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.#metricsPort = (server.address() as AddressInfo).port;
    return server;
  }

  /**
   * Asks every executor to reconnect elsewhere (Drain), ends the streams, then shuts the
   * server down gracefully, and forcefully if calls are still open after the grace period.
   */
  async #shutdownGrpc(server: Server): Promise<void> {
    const sessions = this.sessions.all();
    await Promise.allSettled(
      sessions.map(session =>
        session.send({ kind: { $case: 'drain', value: { reason: 'admin shutting down' } } }),
      ),
    );
    for (const session of sessions) session.close('admin shutting down');
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<'timeout'>(resolve => {
      timer = setTimeout(() => resolve('timeout'), SHUTDOWN_GRACE_MS);
    });
    const outcome = await Promise.race([server.shutdown().then(() => 'graceful' as const), forced]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.logger.warn('gRPC calls still open after the grace period; closing them');
      server.forceShutdown();
    }
  }

  stop(): Promise<void> {
    this.#stopPromise ??= (async () => {
      // A start in flight must finish (or fail) first, or the two would race over the same resources.
      await this.#startPromise?.catch(() => undefined);
      if (this.#state === 'stopped') return;
      this.#state = 'stopping';
      await this.#release();
      this.#state = 'stopped';
      this.logger.info('admin stopped');
    })();
    return this.#stopPromise;
  }

  async #release(): Promise<void> {
    const errors: unknown[] = [];
    for (const { name, release } of this.#releasers.splice(0).reverse()) {
      try {
        this.logger.debug({ resource: name }, 'releasing');
        await release();
      } catch (error) {
        this.logger.error({ err: error, resource: name }, 'releasing a resource failed');
        errors.push(error);
      }
    }
    this.#db = undefined;
    if (errors.length > 0) throw new AggregateError(errors, 'admin did not stop cleanly');
  }
}

/**
 * The configured first admin account, created only while no user exists: a later
 * restart with the same configuration never resets a password changed since.
 */
async function createInitialAdmin(
  db: Db,
  initial: { username: string; password: string },
  logger: Logger,
): Promise<void> {
  if ((await countUsers(db)) > 0) return;
  try {
    await createUserAccount(db, { ...initial, role: 'ADMIN', groupIds: [] });
    logger.info({ username: initial.username }, 'initial admin user created');
  } catch (error) {
    // Another admin of the cluster created it at the same moment.
    if (!(error instanceof CreateUserError)) throw error;
  }
}

/** How peers reach this admin when no address is configured: a wildcard bind means "this host". */
function advertisedAddress(host: string, port: number): string {
  const wildcard = host === '0.0.0.0' || host === '::' || host === '[::]';
  return `${wildcard ? hostname() : host}:${port}`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}
