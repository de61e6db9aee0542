import { randomUUID } from 'node:crypto';
import { ServerError, Status, type CallContext } from 'nice-grpc';
import type { ExecutorGroup, RunResultInput } from '../domain.js';
import { ExecutorSession } from '../executors/executor-session.js';
import type { PresenceTracker } from '../executors/presence-tracker.js';
import type { ResultRecorder } from '../executors/result-recorder.js';
import type { SessionRegistry } from '../executors/session-registry.js';
import type {
  AdminMessage,
  ExecutorMessage,
  ExecutorServiceImplementation,
  Register,
  Reply,
  RunResult,
} from '@jobstream/proto/executor';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import type { ExecutorRegistrationService } from '../services/executor-registration.js';
import { bearerToken } from './auth.js';
import type { ConnectAdmission, ConnectLimits } from './connect-limits.js';
import { isInTimestampRange } from './request-sanity.js';
import { runOutcomes } from '../wire/enums.js';
import {
  APP_NAME_PATTERN,
  INSTANCE_NAME_PATTERN,
  MAX_BATCH_ITEMS,
  MAX_CAPACITY,
  MAX_PIPELINE_WINDOW,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  durationFromMs,
} from '@jobstream/proto';
import { clientCertificateName } from './tls.js';

/** How many runs that ignore their abort signal a beat may report. */
const MAX_REPORTED_UNRESPONSIVE_RUNS = 100;

export interface ExecutorServiceOptions {
  registration: ExecutorRegistrationService;
  sessions: SessionRegistry;
  presence: PresenceTracker;
  results: ResultRecorder;
  logger: Logger;
  metrics: AdminMetrics;
  adminInstanceId: string;
  beatIntervalMs: number;
  registerTimeoutMs: number;
  /** How long an executor has to answer a request (kills of stray runs). */
  requestDeadlineMs: number;
  /** Rate limits and stream caps applied to every Connect call. */
  connectLimits: ConnectLimits;
  /** Called when a session opens or closes (routing caches, waiting triggers). */
  onSessionChange?: () => void;
  /** Called once a session's stream has ended and its presence row is gone. */
  onSessionEnded?: (session: ExecutorSession) => Promise<void>;
  /**
   * Called with runs in doubt that a registering executor turned out not to have: they
   * never started, and are PENDING again with no executor, to be dispatched anew.
   */
  onRunsReleased?: (logIds: readonly string[]) => void;
  /** Runs a registering executor's new process did not have were declared lost. */
  onRunsLost?: (logIds: readonly string[]) => void;
}

const MAX_HANDLERS = 1_000;
const MAX_RECONCILED_RUNS = 100_000;
/**
 * Results waiting to be stored per stream before the admin stops reading the stream.
 * Generous on purpose: replies to run requests travel on the same stream, so pausing
 * reads while a commit is slow would stall every dispatch to this executor behind its
 * results (head-of-line blocking). Still a bound: a result is a few hundred bytes.
 */
const MAX_RESULTS_IN_FLIGHT = 10_000;
/** PostgreSQL integer columns; several uint32 wire fields are stored in them. */
const MAX_INT32 = 2_147_483_647;
const MAX_ID = 9_223_372_036_854_775_807n;
const MAX_LABELS = 100;

/**
 * ExecutorService.Connect: one long-lived stream per executor. See executor.proto for
 * the protocol; this is its admin side.
 */
export function createExecutorService(options: ExecutorServiceOptions): ExecutorServiceImplementation {
  const { logger, metrics } = options;

  /**
   * By the access token, or by a client certificate (mutual TLS) whose subject CN is the
   * app name. A token sent along with a certificate must be one of the same app, so the
   * two never disagree about who the executor is.
   */
  async function authenticate(context: CallContext): Promise<ExecutorGroup> {
    const byToken = async (): Promise<ExecutorGroup> => {
      const group = await options.registration.groupOfToken(bearerToken(context));
      if (!group) throw new ServerError(Status.UNAUTHENTICATED, 'access token not accepted');
      return group;
    };
    const certificateApp = clientCertificateName(context);
    if (certificateApp === undefined) return byToken();
    if (certificateApp === '') {
      throw new ServerError(
        Status.PERMISSION_DENIED,
        'the client certificate names no app (its subject must have exactly one CN)',
      );
    }
    const group = await options.registration.groupOfApp(certificateApp);
    if (!group) {
      throw new ServerError(
        Status.PERMISSION_DENIED,
        `the client certificate names app "${certificateApp}", which has no executor group`,
      );
    }
    if (context.metadata.has('authorization') && (await byToken()).id !== group.id) {
      throw new ServerError(
        Status.PERMISSION_DENIED,
        `the access token does not belong to app "${certificateApp}" named by the client certificate`,
      );
    }
    return group;
  }

  async function readRegister(
    inbound: AsyncIterator<ExecutorMessage>,
    group: ExecutorGroup,
  ): Promise<Register> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ServerError(Status.DEADLINE_EXCEEDED, `no Register within ${options.registerTimeoutMs} ms`),
          ),
        options.registerTimeoutMs,
      );
    });
    try {
      const first = await Promise.race([inbound.next(), timeout]);
      if (first.done) throw new ServerError(Status.CANCELLED, 'stream ended before Register');
      if (first.value.kind?.$case !== 'register') {
        throw new ServerError(
          Status.FAILED_PRECONDITION,
          `the first message must be register, got ${first.value.kind?.$case ?? 'an empty message'}`,
        );
      }
      const register = first.value.kind.value;
      validateRegister(register);
      if (register.appName !== group.appName) {
        throw new ServerError(
          Status.PERMISSION_DENIED,
          `register.app_name "${register.appName}" is not the app this stream authenticated as ("${group.appName}")`,
        );
      }
      return register;
    } finally {
      clearTimeout(timer);
    }
  }

  async function* connect(
    requests: AsyncIterable<ExecutorMessage>,
    context: CallContext,
  ): AsyncGenerator<AdminMessage, void, undefined> {
    let session: ExecutorSession | undefined;
    let admission: ConnectAdmission | undefined;
    try {
      // Before anything that costs a database round trip or holds a stream.
      admission = options.connectLimits.admit(context.peer);
      const group = await authenticate(context);
      admission.holdStream(group);
      const inbound = requests[Symbol.asyncIterator]();
      const register = await readRegister(inbound, group);
      session = new ExecutorSession(randomUUID(), register, new Date());
      const log = logger.child({
        app: session.appName,
        instance: session.instanceName,
        sessionId: session.sessionId,
      });

      // The stream this one replaces ends first, so that nothing more is written to it: the
      // runs it never wrote (waiting for a run slot) are known not to be there, and are sent
      // again rather than declared lost with the process they never reached.
      const neverSent =
        options.sessions
          .get(session.appName, session.instanceName)
          ?.close('replaced by a newer stream of the same instance name') ?? [];
      // Before the session can be found (locally or through its presence row): a dispatch
      // settling the same runs by asking the new stream then finds them settled already.
      const inDoubt = await options.registration.settleRunsInDoubt(
        group,
        session,
        [...register.running, ...register.unacknowledgedResults],
        neverSent,
      );
      if (inDoubt.accepted.length + inDoubt.released.length > 0) {
        log.info(
          { accepted: inDoubt.accepted, released: inDoubt.released },
          'settled runs in doubt: the executor had some, the others are sent again',
        );
      }
      if (inDoubt.lost.length > 0) {
        log.warn(
          { lost: inDoubt.lost, process: session.process },
          'runs declared lost: the executor came back as another process without them',
        );
        options.onRunsLost?.(inDoubt.lost);
      }
      await options.presence.online(session);
      options.sessions.add(session)?.close('replaced by a newer stream of the same instance name');
      const strayRuns = await options.registration.adoptRuns(
        group,
        session,
        register.running,
        register.unacknowledgedResults,
      );
      metrics.streamRegistrations.inc({ app_name: session.appName });
      metrics.executorsOnline.set(
        { app_name: session.appName },
        options.sessions.list(session.appName).length,
      );
      options.onSessionChange?.();
      log.info(
        {
          handlers: register.handlers,
          capacity: register.capacity,
          running: register.running.length,
          scriptKinds: session.scriptKinds,
        },
        'executor registered',
      );

      yield {
        kind: {
          $case: 'welcome',
          value: {
            sessionId: session.sessionId,
            beatInterval: durationFromMs(options.beatIntervalMs),
            adminInstanceId: options.adminInstanceId,
            serverTime: new Date(),
          },
        },
      };

      if (strayRuns.length > 0) killStrayRuns(session, strayRuns, log);
      if (inDoubt.released.length > 0) options.onRunsReleased?.(inDoubt.released);
      const inboundDone = consumeInbound(inbound, session, log);
      yield* session.outboundMessages();
      const protocolError = await inboundDone;
      if (protocolError) throw protocolError;
      if (session.endedByAdmin !== undefined) throw new ServerError(Status.ABORTED, session.endedByAdmin);
    } catch (error) {
      if (error instanceof ServerError) {
        metrics.streamsRefused.inc({ code: Status[error.code] });
        if (error.code === Status.UNAUTHENTICATED) admission?.authenticationFailed();
      }
      throw error;
    } finally {
      admission?.release();
      if (session) await closeSession(session);
    }
  }

  /** Reads the executor's messages until the stream ends; returns a protocol error, if any. */
  async function consumeInbound(
    inbound: AsyncIterator<ExecutorMessage>,
    session: ExecutorSession,
    log: Logger,
  ): Promise<ServerError | undefined> {
    const resultsInFlight = new Set<Promise<void>>();
    // The admin may end the session itself (replaced, shutting down): stop reading then,
    // instead of waiting for an executor that has no reason to end its side.
    const closed = new Promise<IteratorReturnResult<undefined>>(resolve => {
      session.closedSignal.addEventListener('abort', () => resolve({ done: true, value: undefined }), {
        once: true,
      });
    });
    const onReply = (reply: Reply): void => {
      if (!session.handleReply(reply)) {
        log.debug({ requestId: reply.requestId }, 'reply to a request no longer waiting (late answer)');
      }
    };
    /** Starts storing one result; returns the error ending the stream for a malformed one. */
    const onRunResult = (message: RunResult): ServerError | undefined => {
      const result = toRunResultInput(message);
      if (typeof result === 'string') return new ServerError(Status.INVALID_ARGUMENT, result);
      if (!session.mayReport(result.logId, result.attempt)) {
        refuseResult(session, result, log);
        return undefined;
      }
      session.runFinished(result.logId, result.attempt);
      const storing = storeAndAcknowledge(session, result, log).finally(() =>
        resultsInFlight.delete(storing),
      );
      resultsInFlight.add(storing);
      return undefined;
    };
    try {
      for (;;) {
        const next = await Promise.race([inbound.next(), closed]);
        if (next.done) return undefined;
        const kind = next.value.kind;
        switch (kind?.$case) {
          case 'beat': {
            const beat = kind.value;
            session.load = {
              // uint32 on the wire, integer columns in the registry row.
              runningCount: Math.min(beat.runningCount, MAX_INT32),
              queuedCount: Math.min(beat.queuedCount, MAX_INT32),
              eventLoopLagMs: Math.min(beat.eventLoopLagMs, MAX_INT32),
              lastBeatAt: new Date(),
              // Bounded: a beat is advisory and must not grow the registry row without limit.
              unresponsiveLogIds: beat.unresponsiveRuns
                .map(run => run.logId)
                .filter(isPositiveId)
                .slice(0, MAX_REPORTED_UNRESPONSIVE_RUNS),
            };
            options.presence.beat(session).catch((error: unknown) => {
              log.warn({ err: error }, 'presence refresh failed');
            });
            break;
          }
          case 'reply':
            onReply(kind.value);
            break;
          case 'runResult': {
            const refused = onRunResult(kind.value);
            if (refused) return refused;
            if (resultsInFlight.size >= MAX_RESULTS_IN_FLIGHT) await Promise.race(resultsInFlight);
            break;
          }
          case 'batch': {
            const { replies, runResults } = kind.value;
            if (replies.length + runResults.length > MAX_BATCH_ITEMS) {
              return new ServerError(
                Status.INVALID_ARGUMENT,
                `batch carries ${replies.length + runResults.length} items; at most ${MAX_BATCH_ITEMS} are allowed`,
              );
            }
            for (const reply of replies) onReply(reply);
            for (const result of runResults) {
              const refused = onRunResult(result);
              if (refused) return refused;
            }
            if (resultsInFlight.size >= MAX_RESULTS_IN_FLIGHT) await Promise.race(resultsInFlight);
            break;
          }
          case 'register':
            return new ServerError(Status.FAILED_PRECONDITION, 'register may be sent only once per stream');
          case undefined:
            return new ServerError(Status.INVALID_ARGUMENT, 'empty executor message (no kind set)');
        }
      }
    } catch (error) {
      // A message that did not decode (refused by the request-sanity middleware).
      if (error instanceof ServerError) return error;
      // A reset or cancelled stream surfaces here; it is the normal way an executor leaves.
      log.debug({ err: error }, 'executor stream read ended');
      return undefined;
    } finally {
      session.close();
      await Promise.allSettled(resultsInFlight);
    }
  }

  /**
   * Runs an executor says it is running that the admin has given up on (recorded as
   * failed to dispatch, already ended, e.g. lost and retried elsewhere) or never gave
   * it: they are killed, so a stalled executor waking up does not run work twice.
   */
  function killStrayRuns(session: ExecutorSession, runs: readonly { logId: string }[], log: Logger): void {
    log.warn(
      { logIds: runs.map(run => run.logId) },
      'executor reports runs the admin gave up on; killing them',
    );
    for (const run of runs) {
      session
        .request(
          {
            $case: 'killRequest',
            value: {
              logId: run.logId,
              reason: 'the admin gave up on this run (no answer in time, or it ended)',
            },
          },
          options.requestDeadlineMs,
        )
        .catch(() => undefined);
    }
  }

  /**
   * A result for a run this session was never given: another group's or instance's, or
   * one that ended without it. Never stored; the executor is told so it stops re-sending.
   */
  function refuseResult(session: ExecutorSession, result: RunResultInput, log: Logger): void {
    metrics.resultsRefused.inc({ app_name: session.appName });
    log.warn(
      { logId: result.logId, attempt: result.attempt },
      'run result refused: the run was not sent to this executor session',
    );
    session
      .send({
        kind: {
          $case: 'resultAck',
          value: { results: [], refused: [{ logId: result.logId, attempt: result.attempt }] },
        },
      })
      .catch(() => undefined);
  }

  async function storeAndAcknowledge(
    session: ExecutorSession,
    result: RunResultInput,
    log: Logger,
  ): Promise<void> {
    try {
      await options.results.record(result, session.closedSignal);
      session.runReported(result.logId, result.attempt);
      await session.acknowledge(result.logId, result.attempt);
    } catch (error) {
      // Not acknowledged: the executor keeps the result and sends it again on its next stream.
      if (!session.isClosed) log.warn({ err: error, logId: result.logId }, 'run result not stored');
    }
  }

  async function closeSession(session: ExecutorSession): Promise<void> {
    session.close();
    options.sessions.remove(session);
    metrics.executorsOnline.set({ app_name: session.appName }, options.sessions.list(session.appName).length);
    options.onSessionChange?.();
    try {
      await options.presence.offline(session);
    } catch (error) {
      // The row expires on its own after three beat intervals.
      logger.warn({ err: error, sessionId: session.sessionId }, 'could not remove presence row');
    }
    try {
      await options.onSessionEnded?.(session);
    } catch (error) {
      // The failure monitor's next pass finds the session's runs anyway.
      logger.warn({ err: error, sessionId: session.sessionId }, 'could not mark the runs of an ended stream');
    }
    logger.info(
      { app: session.appName, instance: session.instanceName, sessionId: session.sessionId },
      'executor left',
    );
  }

  return { connect };
}

function validateRegister(register: Register): void {
  const invalid = (message: string): never => {
    throw new ServerError(Status.INVALID_ARGUMENT, message);
  };
  // Any other name matches no group; refused here so the refusal never quotes a huge one.
  if (!APP_NAME_PATTERN.test(register.appName)) {
    invalid("register.app_name must be 1 to 64 characters of letters, digits, '.', '_', '-'");
  }
  if (!INSTANCE_NAME_PATTERN.test(register.instanceName)) {
    invalid("register.instance_name must be 1 to 128 characters of letters, digits, '.', '_', ':', '-'");
  }
  if (register.protocolVersion < MIN_PROTOCOL_VERSION || register.protocolVersion > PROTOCOL_VERSION) {
    invalid(
      `register.protocol_version ${register.protocolVersion} is not supported (expected ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION})`,
    );
  }
  if (register.capacity < 1 || register.capacity > MAX_CAPACITY) {
    invalid(`register.capacity must be from 1 to ${MAX_CAPACITY}`);
  }
  if (register.pipelineWindow > MAX_PIPELINE_WINDOW) {
    invalid(`register.pipeline_window must be from 0 to ${MAX_PIPELINE_WINDOW}`);
  }
  if (register.handlers.length > MAX_HANDLERS)
    invalid(`register.handlers holds more than ${MAX_HANDLERS} names`);
  for (const handler of register.handlers) {
    if (handler.length === 0 || handler.length > 255)
      invalid('register.handlers: each name must be 1 to 255 characters');
  }
  // A handful of kinds exist; values this admin does not know are ignored (see registeredScriptKinds).
  if (register.scriptKinds.length > 32) invalid('register.script_kinds holds more than 32 kinds');
  if (register.hostname.length > 255) invalid('register.hostname is longer than 255 characters');
  if (register.pid > MAX_INT32) invalid(`register.pid must be at most ${MAX_INT32}`);
  const labels = Object.entries(register.labels);
  if (labels.length > MAX_LABELS) invalid(`register.labels holds more than ${MAX_LABELS} labels`);
  for (const [key, value] of labels) {
    if (key.length === 0 || key.length > 128 || value.length > 1024)
      invalid('register.labels: each key must be 1 to 128 characters and each value at most 1024');
  }
  // Stored as PostgreSQL text, which cannot hold NUL.
  const texts = [register.hostname, register.sdkName, register.sdkVersion, ...register.handlers];
  if ([...texts, ...labels.flat()].some(text => text.includes('\u0000')))
    invalid('register: hostname, sdk_name, sdk_version, handlers and labels must not contain NUL characters');
  if (register.sdkName.length > 128 || register.sdkVersion.length > 64)
    invalid('register.sdk_name or sdk_version too long');
  if (register.running.length + register.unacknowledgedResults.length > MAX_RECONCILED_RUNS) {
    invalid(
      `register.running and unacknowledged_results together list more than ${MAX_RECONCILED_RUNS} runs`,
    );
  }
  for (const run of [...register.running, ...register.unacknowledgedResults]) {
    if (!isPositiveId(run.logId)) invalid(`register.running: log_id "${run.logId}" is not a positive id`);
  }
}

function isPositiveId(id: string): boolean {
  // Also within int64: a larger id fails the bigint casts of the statements it reaches.
  return /^[1-9][0-9]{0,18}$/.test(id) && BigInt(id) <= MAX_ID;
}

/** A wire time the database can store, or null (unknown) for one out of Timestamp's range. */
function storableTime(time: Date | undefined): Date | null {
  return time !== undefined && isInTimestampRange(time) ? time : null;
}

/** Converts a wire result, or returns the reason it is invalid. */
function toRunResultInput(result: RunResult): RunResultInput | string {
  if (!isPositiveId(result.logId)) return `run_result.log_id "${result.logId}" is not a positive id`;
  if (result.attempt < 1 || result.attempt > MAX_INT32) {
    return `run_result.attempt must be from 1 to ${MAX_INT32}`;
  }
  const outcome = runOutcomes.toDomain(result.outcome);
  if (outcome === undefined || outcome === 'LOST') {
    return `run_result.outcome ${result.outcome} is not an outcome an executor may report`;
  }
  return {
    logId: result.logId,
    attempt: result.attempt,
    outcome,
    // Repaired rather than refused: the SDK would re-send a refused result after every
    // reconnect, and one bad result must not keep a run from being recorded at all.
    message: result.message.slice(0, 64 * 1024).replaceAll('\u0000', '\uFFFD'),
    startedAt: storableTime(result.startedAt),
    finishedAt: storableTime(result.finishedAt),
  };
}
