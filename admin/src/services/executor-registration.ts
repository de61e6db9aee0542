import type { Db } from '../db/database.js';
import { findGroupByAppName, findGroupByTokenHash } from '../db/groups.repository.js';
import { adoptRunningLogs, reconcilableRuns, settleRunsInDoubt } from '../db/logs.repository.js';
import { retryOnDeadlock } from '../db/retry.js';
import type { ExecutorGroup } from '../domain.js';
import type { ExecutorSession } from '../executors/executor-session.js';
import type { Tokens } from './tokens.js';

export interface ExecutorRegistrationServiceDependencies {
  db: Db;
  tokens: Tokens;
  now: () => Date;
}

/** A run an executor lists when it registers: one it is running, or whose result it still holds. */
export interface ReportedRun {
  logId: string;
  attempt: number;
}

/** How the runs in doubt of a registering instance were settled (log ids). */
export interface SettledRuns {
  /** The executor has them: they run on. */
  accepted: string[];
  /** It never got them: PENDING again with no executor, to be dispatched anew. */
  released: string[];
  /** It came back as another process without them: they are lost. */
  lost: string[];
}

/**
 * Who an executor stream is, and what becomes of the runs the admin left with that
 * executor instance when its new stream registers.
 */
export class ExecutorRegistrationService {
  readonly #db: Db;
  readonly #tokens: Tokens;
  readonly #now: () => Date;

  constructor(dependencies: ExecutorRegistrationServiceDependencies) {
    this.#db = dependencies.db;
    this.#tokens = dependencies.tokens;
    this.#now = dependencies.now;
  }

  /** The group an access token belongs to: its current one, or a rotated one in its grace period. */
  groupOfToken(accessToken: string): Promise<ExecutorGroup | undefined> {
    return findGroupByTokenHash(this.#db, this.#tokens.hash(accessToken), this.#now());
  }

  /** The group of an app name, as a client certificate names it. */
  groupOfApp(appName: string): Promise<ExecutorGroup | undefined> {
    return findGroupByAppName(this.#db, appName);
  }

  /**
   * Settles the runs left in doubt with this instance name (sent on an earlier stream,
   * never confirmed) against those it lists now. Must run before the new session can be
   * found: a dispatch settling the same runs by asking the new stream then finds them
   * settled already.
   */
  settleRunsInDoubt(
    group: ExecutorGroup,
    session: ExecutorSession,
    listed: readonly ReportedRun[],
    neverSent: readonly ReportedRun[] = [],
  ): Promise<SettledRuns> {
    return retryOnDeadlock(() =>
      settleRunsInDoubt(
        this.#db,
        group.id,
        session.instanceName,
        session.sessionId,
        session.process,
        listed,
        neverSent,
      ),
    );
  }

  /**
   * Moves the runs the executor still has onto its new session, so their results are
   * accepted there. Returns the runs it says it is running that the admin has given up on
   * (failed to dispatch, ended, or never sent to it), which it must be told to kill.
   */
  async adoptRuns(
    group: ExecutorGroup,
    session: ExecutorSession,
    running: readonly ReportedRun[],
    unacknowledgedResults: readonly ReportedRun[],
  ): Promise<ReportedRun[]> {
    await adoptRunningLogs(
      this.#db,
      session.instanceName,
      session.sessionId,
      running.map(run => run.logId),
    );
    const reconcilable = await reconcilableRuns(this.#db, group.id, session.instanceName, [
      ...running,
      ...unacknowledgedResults,
    ]);
    session.adoptRuns(reconcilable);
    const adopted = new Set(reconcilable.map(run => `${run.logId}/${run.attempt}`));
    return running.filter(run => !adopted.has(`${run.logId}/${run.attempt}`));
  }
}
