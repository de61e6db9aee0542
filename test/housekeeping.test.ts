import { sql, type RawBuilder } from 'kysely';
import { Status } from 'nice-grpc';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../executor-sdk/src/index.js';
import type { Db } from '../admin/src/db/database.js';
import { readReport, refreshReport } from '../admin/src/db/reports.repository.js';
import { ScheduleType } from '@jobstream/proto/types';
import { addDays } from '../admin/src/housekeeping/days.js';
import { Housekeeper } from '../admin/src/housekeeping/housekeeper.js';
import { createLogger } from '../admin/src/logger.js';
import { adminClient, startTestAdmin, waitFor, type AdminClient, type TestAdmin } from './support/admin.js';
import { EVENT_CEILING_MS } from './support/ceiling.js';
import { createTestDatabase } from './support/database.js';
import { createGroup, createJob, startFixtureExecutor } from './support/fixtures.js';

/**
 * +05:30 and no DST: a day's bounds are 18:30 UTC, so a report that counted by UTC (or
 * by the test process's zone) days would put the boundary rows below on the wrong day.
 */
const TZ = 'Asia/Kolkata';

/**
 * These admins' failure monitors make one pass at start and then sleep for an hour, so
 * they neither retry, fail nor declare lost the hand-made logs below.
 */
const QUIET_FOLLOWUPS = { failureMonitorIntervalMs: 3_600_000 };

type Dispatch = 'PENDING' | 'ACCEPTED' | 'FAILED' | 'SKIPPED';

interface LogSpec {
  /** YYYY-MM-DD and HH:MM:SS.mmm of TZ; or `now` for the current instant. */
  day?: string;
  time?: string;
  now?: boolean;
  dispatch: Dispatch;
  outcome?: string;
  triggerType?: string;
  retryStatus?: string;
  retryAt?: string;
  shardTotal?: number;
  broadcastRootId?: string;
}

describe('housekeeping: daily log report, GetDashboard and trigger-log retention (real PostgreSQL)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: TestAdmin;
  let client: AdminClient;
  let db: Db;
  let executor: Executor;
  let groupId: string;
  let jobId: string;
  let sessionId: string;
  /** Today in TZ, by PostgreSQL's clock and time-zone data (not the code under test). */
  let today: string;
  const day = (offset: number) => addDays(today, offset);
  const silent = createLogger({ level: 'silent' });

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, {
      defaultTimeZone: TZ,
      logRetentionDays: 0,
      housekeepingIntervalMs: 3_600_000,
      ...QUIET_FOLLOWUPS,
    });
    client = admin.client;
    db = admin.app.db;
    const group = await createGroup(client, 'reports');
    groupId = group.groupId;
    jobId = await createJob(client, groupId, 'echo');
    // A second job whose schedule runs (first fire a day away): the running job count.
    const scheduled = await createJob(client, groupId, 'echo', {
      scheduleType: ScheduleType.SCHEDULE_TYPE_FIX_RATE,
      scheduleConf: '86400',
    });
    await client.startJob({ id: scheduled });
    executor = await startFixtureExecutor({
      adminAddresses: [admin.address],
      appName: 'reports',
      accessToken: group.token,
      instanceName: 'reports-1',
    });
    const presence = await sql<{ session_id: string }>`
      select session_id from executor_registry where instance_name = 'reports-1'`.execute(db);
    sessionId = presence.rows[0]!.session_id;
    const now = await sql<{ today: string }>`
      select to_char((now() at time zone ${TZ}::text)::date, 'YYYY-MM-DD') as today`.execute(db);
    today = now.rows[0]!.today;
  });

  afterAll(async () => {
    await executor?.stop();
    await admin?.stop();
    await database?.drop();
  });

  function localTime(dayText: string, time: string): RawBuilder<Date> {
    return sql<Date>`((${dayText}::date + ${time}::time) at time zone ${TZ}::text)`;
  }

  /**
   * Inserts a log as the dispatcher and executors would leave it. Runs are on the live
   * fixture executor's session, so nothing declares them lost; failed logs are done
   * with (alarm sent, no retry) unless said otherwise.
   */
  async function insertLog(spec: LogSpec): Promise<string> {
    const at = spec.now ? sql<Date>`now()` : localTime(spec.day!, spec.time ?? '12:00');
    const failed = spec.dispatch === 'FAILED' || (spec.outcome !== undefined && spec.outcome !== 'SUCCEEDED');
    const { rows } = await sql<{ id: string }>`
      insert into trigger_log (job_id, group_id, trigger_type, executor_instance, executor_session_id,
                               handler, param, shard_total, broadcast_root_id, scheduled_at, triggered_at,
                               dispatch_outcome, outcome, alarm_status, retry_status, retry_at)
      values (${jobId}, ${groupId}, ${spec.triggerType ?? 'MANUAL'}, 'reports-1', ${sessionId},
              'echo', '', ${spec.shardTotal ?? 1}, ${spec.broadcastRootId ?? null}, ${at}, ${at},
              ${spec.dispatch}, ${spec.outcome ?? null}, ${failed ? 'SENT' : 'NONE'},
              ${spec.retryStatus ?? (failed ? 'NOT_NEEDED' : 'NONE')}, ${spec.retryAt ?? null})
      returning id`.execute(db);
    return rows[0]!.id;
  }

  /** `count` succeeded logs on `dayText`, one second apart from 08:00. */
  async function insertManyLogs(dayText: string, count: number): Promise<void> {
    await sql`
      insert into trigger_log (job_id, group_id, trigger_type, executor_instance, handler, param,
                               scheduled_at, triggered_at, dispatch_outcome, outcome)
      select ${jobId}, ${groupId}, 'MANUAL', 'reports-1', 'echo', '', t, t, 'ACCEPTED', 'SUCCEEDED'
        from (select ${localTime(dayText, '08:00')} + n * interval '1 second' as t
                from generate_series(1, ${count}::int) as n) as s`.execute(db);
  }

  async function existing(ids: readonly string[]): Promise<string[]> {
    const { rows } = await sql<{ id: string }>`
      select id from trigger_log where id = any(${ids}::bigint[]) order by id`.execute(db);
    return rows.map(row => row.id);
  }

  async function countBefore(dayText: string): Promise<number> {
    const { rows } = await sql<{ n: string }>`
      select count(*) as n from trigger_log where triggered_at < ${localTime(dayText, '00:00')}`.execute(db);
    return Number(rows[0]!.n);
  }

  async function countOn(dayText: string): Promise<number> {
    const { rows } = await sql<{ n: string }>`
      select count(*) as n from trigger_log
       where triggered_at >= ${localTime(dayText, '00:00')}
         and triggered_at < ${localTime(addDays(dayText, 1), '00:00')}`.execute(db);
    return Number(rows[0]!.n);
  }

  function housekeeper(logRetentionDays: number): Housekeeper {
    return new Housekeeper({ db, logger: silent, timeZone: TZ, intervalMs: 3_600_000, logRetentionDays });
  }

  const counts = (running: number, succeeded: number, failed: number) => ({
    runningCount: String(running),
    succeededCount: String(succeeded),
    failedCount: String(failed),
  });

  it('counts logs per day of the default time zone by status, and reports totals', async () => {
    // Today: two running (one not dispatched yet), one success, a failed dispatch, a
    // failed run, and a misfire that was skipped (in no count).
    await insertLog({ day: day(0), time: '00:00', dispatch: 'ACCEPTED' });
    await insertLog({ now: true, dispatch: 'PENDING' });
    await insertLog({ day: day(0), time: '00:00:01', dispatch: 'ACCEPTED', outcome: 'SUCCEEDED' });
    await insertLog({ day: day(0), time: '00:30', dispatch: 'FAILED' });
    await insertLog({ day: day(0), time: '01:00', dispatch: 'ACCEPTED', outcome: 'TIMED_OUT' });
    await insertLog({ day: day(0), time: '02:00', dispatch: 'SKIPPED', triggerType: 'MISFIRE' });
    // Yesterday, at its first and last instants.
    await insertLog({ day: day(-1), time: '00:00', dispatch: 'ACCEPTED', outcome: 'SUCCEEDED' });
    await insertLog({ day: day(-1), time: '23:59:59.999', dispatch: 'ACCEPTED', outcome: 'LOST' });
    await insertLog({ day: day(-2), time: '23:59:59', dispatch: 'ACCEPTED', outcome: 'SUCCEEDED' });
    await insertLog({ day: day(-2), time: '10:00', dispatch: 'SKIPPED', triggerType: 'MISFIRE' });
    // Older days are not recounted by the housekeeper (their rows are final); these
    // are counted by hand, as the housekeeper did when they were recent.
    await insertLog({ day: day(-4), time: '10:00', dispatch: 'ACCEPTED', outcome: 'KILLED' });
    await insertLog({ day: day(-4), time: '11:00', dispatch: 'FAILED' });
    await insertLog({ day: day(-7), time: '12:00', dispatch: 'ACCEPTED', outcome: 'SUCCEEDED' });
    await refreshReport(db, [day(-7), day(-6), day(-5), day(-4), day(-3)], TZ);

    const refreshed = await housekeeper(0).refreshNow();
    expect(refreshed.map(row => row.day)).toEqual([day(-2), day(-1), day(0)]);
    // Under a one-day retention the day before yesterday's logs may be gone: its row is
    // left as it was rather than recounted to zero.
    expect((await housekeeper(1).refreshNow()).map(row => row.day)).toEqual([day(-1), day(0)]);

    const dashboard = await client.getDashboard({});
    expect(dashboard).toEqual({
      jobCount: '2',
      runningJobCount: '1',
      groupCount: '1',
      executorsOnline: '1',
      days: [
        { day: day(-6), ...counts(0, 0, 0) },
        { day: day(-5), ...counts(0, 0, 0) },
        { day: day(-4), ...counts(0, 0, 2) },
        { day: day(-3), ...counts(0, 0, 0) },
        { day: day(-2), ...counts(0, 1, 0) },
        { day: day(-1), ...counts(0, 1, 1) },
        { day: day(0), ...counts(2, 1, 2) },
      ],
      ...counts(2, 3, 5),
    });

    const single = await client.getDashboard({ fromDay: day(-7), toDay: day(-7) });
    expect(single.days).toEqual([{ day: day(-7), ...counts(0, 1, 0) }]);
    expect(single).toMatchObject(counts(0, 1, 0));
    // Days never reported (here: in the future) count zero.
    const ahead = await client.getDashboard({ fromDay: day(1), toDay: day(3) });
    expect(ahead.days.map(d => d.day)).toEqual([day(1), day(2), day(3)]);
    expect(ahead).toMatchObject(counts(0, 0, 0));
  });

  it('recounts today and yesterday on read when their report rows are missing', async () => {
    await sql`delete from log_report where day >= ${day(-1)}::date`.execute(db);
    await insertLog({ day: day(0), time: '03:00', dispatch: 'ACCEPTED', outcome: 'SUCCEEDED' });
    const { days } = await client.getDashboard({ fromDay: day(-1), toDay: day(0) });
    expect(days).toEqual([
      { day: day(-1), ...counts(0, 1, 1) },
      { day: day(0), ...counts(2, 2, 2) },
    ]);
    const stored = await readReport(db, day(-1), day(0));
    expect(stored.map(row => row.day)).toEqual([day(-1), day(0)]);
  });

  it('refuses malformed or impossible days, reversed and too long ranges, naming the field', async () => {
    const refused = async (request: { fromDay?: string; toDay?: string }, field: string) => {
      const call = client.getDashboard({ fromDay: '', toDay: '', ...request });
      await expect(call).rejects.toMatchObject({
        code: Status.INVALID_ARGUMENT,
        details: expect.stringMatching(new RegExp(`^${field}: `)) as unknown,
      });
    };
    await refused({ fromDay: '2024-1-01' }, 'from_day');
    await refused({ fromDay: '2024-13-01' }, 'from_day');
    await refused({ toDay: '2023-02-29' }, 'to_day');
    await refused({ toDay: '2024/02/01' }, 'to_day');
    await refused({ toDay: '0999-12-31' }, 'to_day');
    await refused({ fromDay: '2024-03-02', toDay: '2024-03-01' }, 'from_day');
    await refused({ fromDay: '2023-01-01', toDay: '2024-01-03' }, 'to_day');
    await refused({ fromDay: day(1) }, 'from_day');

    const longest = await client.getDashboard({ fromDay: '2023-01-01', toDay: '2024-01-02' });
    expect(longest.days).toHaveLength(367);
    expect(longest.days.at(-1)!.day).toBe('2024-01-02');
    const leap = await client.getDashboard({ fromDay: '2024-02-28', toDay: '2024-03-01' });
    expect(leap.days.map(d => d.day)).toEqual(['2024-02-28', '2024-02-29', '2024-03-01']);
    const week = await client.getDashboard({ toDay: '2024-03-03' });
    expect(week.days.map(d => d.day)).toEqual([
      '2024-02-26',
      '2024-02-27',
      '2024-02-28',
      '2024-02-29',
      '2024-03-01',
      '2024-03-02',
      '2024-03-03',
    ]);

    const anonymous = adminClient(admin.address, 'not-the-admin-token-at-all');
    await expect(anonymous.client.getDashboard({})).rejects.toMatchObject({ code: Status.UNAUTHENTICATED });
    anonymous.channel.close();
  });

  it('deletes logs older than the retention in batches, keeping unfinished work and the report', async () => {
    // 2,500 old logs take three batches of 1,000.
    await insertManyLogs(day(-10), 2_500);
    await refreshReport(db, [day(-10)], TZ);
    const oldRunning = await insertLog({ day: day(-10), time: '20:00', dispatch: 'ACCEPTED' });
    const oldUndispatched = await insertLog({ day: day(-10), time: '20:01', dispatch: 'PENDING' });
    const oldRetryWaiting = await insertLog({
      day: day(-10),
      time: '20:02',
      dispatch: 'ACCEPTED',
      outcome: 'FAILED',
      retryStatus: 'WAITING',
      retryAt: '2999-01-01T00:00:00Z',
    });
    // A broadcast whose shard 1 still runs: shard 0 (the root) stays with it.
    const root = await insertLog({
      day: day(-10),
      time: '20:03',
      dispatch: 'ACCEPTED',
      outcome: 'SUCCEEDED',
      shardTotal: 2,
    });
    const shard = await insertLog({
      day: day(-10),
      time: '20:03',
      dispatch: 'ACCEPTED',
      shardTotal: 2,
      broadcastRootId: root,
    });
    const lastDeleted = await insertLog({ day: day(-4), time: '23:59:59.999', dispatch: 'FAILED' });
    const firstKept = await insertLog({ day: day(-3), time: '00:00', dispatch: 'FAILED' });
    const kept = [oldRunning, oldUndispatched, oldRetryWaiting, root, shard, firstKept];

    const deleted = await housekeeper(3).applyRetentionNow();

    expect(deleted).toBeGreaterThanOrEqual(2_501);
    expect(await existing([...kept, lastDeleted])).toEqual(kept);
    expect(await countBefore(day(-3))).toBe(kept.length - 1);
    // The report outlives the logs it counted.
    const { days } = await client.getDashboard({ fromDay: day(-10), toDay: day(-10) });
    expect(days).toEqual([{ day: day(-10), ...counts(0, 2_500, 0) }]);
    expect(await housekeeper(0).applyRetentionNow()).toBe(0);
  });

  it('applies retention on the first housekeeping pass of a starting admin', async () => {
    await insertManyLogs(day(-9), 1_200);
    expect(await countOn(day(-9))).toBe(1_200);
    const second = await startTestAdmin(database.url, {
      defaultTimeZone: TZ,
      logRetentionDays: 3,
      housekeepingIntervalMs: 100,
      ...QUIET_FOLLOWUPS,
    });
    try {
      await waitFor(async () => ((await countOn(day(-9))) === 0 ? true : undefined), {
        what: 'retention on the new admin',
      });
      expect(await countOn(day(-3))).toBe(1);
      // Its passes refresh the report too.
      const recent = await readReport(db, day(-2), day(0));
      expect(recent.map(row => row.day)).toEqual([day(-2), day(-1), day(0)]);
      // Written by this admin's passes (not days old), however slowly they ran.
      expect(Math.max(...recent.map(row => row.ageMs))).toBeLessThan(EVENT_CEILING_MS);
    } finally {
      await second.stop();
    }
  });

  it('logs a failing pass and tries again on the next one, without crashing', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    // Not a zone Intl knows: every refresh and retention attempt throws.
    const keeper = new Housekeeper({
      db,
      logger,
      timeZone: 'Mars/Olympus',
      intervalMs: 20,
      logRetentionDays: 3,
    });
    keeper.start();
    const failures = (what: string) => lines.filter(line => line.includes(what)).length;
    await waitFor(
      () =>
        failures('refreshing the log report failed') >= 2 && failures('trigger log retention failed') >= 2
          ? true
          : undefined,
      { what: 'two failed passes' },
    );
    await keeper.stop();
  });
});
