import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from 'kysely';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Db } from '../admin/src/db/database.js';
import { insertGroup } from '../admin/src/db/groups.repository.js';
import { insertJob, setJobTriggerStatus } from '../admin/src/db/jobs.repository.js';
import { findLogById } from '../admin/src/db/logs.repository.js';
import { cancelPendingFires, type ClaimedFire } from '../admin/src/db/scheduler.repository.js';
import { Dispatcher } from '../admin/src/dispatch/dispatcher.js';
import { Router } from '../admin/src/dispatch/router.js';
import type { Job, TriggerLog } from '../admin/src/domain.js';
import { ExecutorDirectory } from '../admin/src/executors/executor-directory.js';
import { SessionRegistry } from '../admin/src/executors/session-registry.js';
import { createLogger } from '../admin/src/logger.js';
import { AdminMetrics } from '../admin/src/metrics.js';
import { QuartzCronCompiler } from '../admin/src/schedule/cron/index.js';
import { Scheduler } from '../admin/src/scheduler/scheduler.js';
import { waitFor } from './support/admin.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { storedJobSpec } from './support/fixtures.js';

/**
 * A scheduler checks ("takes") each claimed fire just before its time and sends it at its
 * time. StopJob withdraws the fires not sent yet. Issue 10 found a StopJob landing between
 * the take and the send under a loaded machine: the fire's log row was deleted, and the
 * run was sent anyway, so the executor ran a log the operator never sees (and its result
 * was refused). The race is made deterministic here: the scheduler's database pauses right
 * after the take's answer, while the test stops the job exactly as StopJob does.
 */

/** Records the fires the scheduler sends instead of routing them to executors. */
class RecordingDispatcher extends Dispatcher {
  readonly sent: string[] = [];

  override fire(_job: Job, fire: ClaimedFire): Promise<TriggerLog[]> {
    this.sent.push(fire.logId);
    return Promise.resolve([]);
  }
}

/**
 * Pauses the answer of the scheduler's take (the statement that sets taken_at) until
 * `onTaken` has run, once.
 */
class PauseAfterTake implements KyselyPlugin {
  readonly #onClaims = new Set<unknown>();
  #paused = false;

  constructor(private readonly onTaken: (logIds: string[]) => Promise<void>) {}

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const text = JSON.stringify(args.node);
    if (text.includes('set taken_at')) this.#onClaims.add(args.queryId);
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const { rows } = args.result;
    const isTake = this.#onClaims.delete(args.queryId) && rows.length > 0;
    if (!isTake || this.#paused) return args.result;
    this.#paused = true;
    await this.onTaken(rows.map(row => String(row.id)));
    return args.result;
  }
}

describe('fires taken for sending', () => {
  let database: TestDatabase;
  let db: Db;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDatabase({ connectionString: database.url, maxConnections: 4 });
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  it('keep their log when StopJob lands between the take and the send: no run without its record', async () => {
    const group = await insertGroup(
      db,
      { appName: 'taken', title: 'taken', addressType: 'AUTO', addresses: [], scriptKinds: [] },
      'x',
    );
    const job = await insertJob(
      db,
      storedJobSpec(group.id, {
        description: 'stopped while its fire is being sent',
        scheduleType: 'FIX_RATE',
        // One fire within the scheduler's look-ahead: the one the stop races with.
        scheduleConf: '60',
      }),
    );

    const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
    const metrics = new AdminMetrics();
    const sessions = new SessionRegistry();
    const directory = new ExecutorDirectory({
      db,
      sessions,
      adminInstanceId: 'taken-admin',
      peerToken: 'unused',
    });
    const dispatcher = new RecordingDispatcher({
      db,
      adminInstanceId: 'taken-admin',
      directory,
      router: new Router(),
      logger,
      metrics,
      requestDeadlineMs: 3_000,
    });
    // StopJob as the JobsService does it, in a transaction that began before the fire's
    // time (as a StopJob arriving just before it does), whose statements run once the
    // scheduler has taken the fire and before it sends it. On a loaded machine the take
    // itself may come late; the database's now() for the stop stays before the fire's time.
    let began!: () => void;
    const stopBegan = new Promise<void>(resolve => (began = resolve));
    let takenNow!: (logIds: string[]) => void;
    const takenIds = new Promise<string[]>(resolve => (takenNow = resolve));
    const stopping = db.transaction().execute(async trx => {
      await sql`select now()`.execute(trx);
      began();
      await takenIds;
      await setJobTriggerStatus(trx, job.id, 'STOPPED', null);
      await cancelPendingFires(trx, job.id);
    });
    let taken: string[] = [];
    const pause = new PauseAfterTake(async logIds => {
      taken = logIds;
      takenNow(logIds);
      await stopping;
    });
    const scheduler = new Scheduler({
      db: db.withPlugin(pause),
      dispatcher,
      logger,
      metrics,
      adminInstanceId: 'taken-admin',
      defaultTimeZone: 'UTC',
      cronCompiler: new QuartzCronCompiler(),
      misfireThresholdMs: 5_000,
      pollIntervalMs: 100,
    });
    await stopBegan;
    await setJobTriggerStatus(db, job.id, 'RUNNING', new Date(Date.now() + 1_000));
    await scheduler.start('127.0.0.1:1');
    try {
      // The taken fire goes out at its time (it was already being sent when the job stopped).
      const sent = await waitFor(
        () =>
          taken.length > 0 && taken.every(id => dispatcher.sent.includes(id)) ? dispatcher.sent : undefined,
        {
          timeoutMs: 20_000,
          what: 'the taken fire to be sent',
        },
      );
      expect(sent).toEqual(taken);
      // Every fire that went out has its log, which is what the operator sees and where its
      // result is stored.
      for (const logId of sent) {
        const log = await findLogById(db, logId);
        expect(log, `log ${logId} of a fire that was sent`).toMatchObject({
          id: logId,
          jobId: job.id,
          dispatchOutcome: 'PENDING',
        });
      }
    } finally {
      takenNow([]);
      await stopping;
      await scheduler.stop();
    }
  }, 120_000);
});
