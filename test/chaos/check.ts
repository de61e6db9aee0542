import type { Incarnation } from './cluster.js';
import type { FaultWindow } from './faults.js';
import type { RunRecordLine } from './record.js';

/** The columns of trigger_log the checks read. */
export interface LogRow {
  readonly id: string;
  readonly job_id: string;
  readonly trigger_type: string;
  readonly executor_instance: string | null;
  readonly shard_index: number;
  readonly shard_total: number;
  readonly attempt: number;
  readonly retry_of_log_id: string | null;
  readonly scheduled_at: Date;
  readonly dispatch_outcome: string;
  readonly trigger_message: string;
  readonly outcome: string | null;
  readonly handle_message: string;
  readonly alarm_status: string;
  readonly retry_status: string;
  readonly broadcast_root_id: string | null;
  readonly children_triggered_at: Date | null;
  readonly finished_at: Date | null;
}

export interface CheckedJob {
  readonly id: string;
  readonly name: string;
  readonly scheduleType: 'CRON' | 'FIX_RATE' | 'FIX_DELAY' | 'NONE';
  /** CRON / FIX_RATE: the distance between two planned fires. */
  readonly periodMs?: number;
  readonly failRetryCount: number;
  readonly childIds: readonly string[];
  /** The first planned fire (next_trigger_at after StartJob). */
  readonly firstFireAt?: Date;
  /** When StopJob returned (fires after it may be cancelled). */
  readonly stoppedAt?: Date;
}

export interface CheckInput {
  readonly logs: readonly LogRow[];
  readonly jobs: readonly CheckedJob[];
  readonly records: readonly RunRecordLine[];
  readonly incarnations: readonly Incarnation[];
  readonly faults: readonly FaultWindow[];
  /** Log id named by each alarm e-mail received, one entry per e-mail. */
  readonly alarmMails: readonly string[];
  /** Log ids TriggerJob returned to the operator. */
  readonly manualLogIds: readonly string[];
  readonly misfireThresholdMs: number;
  /** When every fault had been undone and every process was up again. */
  readonly healedAt: number;
  /** When the soak's own event loop ran more than a second late: the whole machine stalled. */
  readonly hostStalls: readonly { readonly from: number; readonly to: number }[];
}

export interface Violation {
  readonly invariant: string;
  readonly detail: string;
}

export const INVARIANTS = [
  'planned-fire-once',
  'skip-explained',
  'fix-delay-chain',
  'broadcast-shards-once',
  'ran-once',
  'run-has-log',
  'outcome-matches-run',
  'no-result-without-run',
  'settled',
  'retry-once',
  'child-once',
  'alarm-once',
  'manual-trigger-recorded',
  'no-crash',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

const OUTCOME_OF_CANCEL: Readonly<Record<string, string>> = {
  timeout: 'TIMED_OUT',
  killed: 'KILLED',
  covered: 'COVERED',
  shutdown: 'SHUTDOWN',
};

const FAILED_OUTCOMES = new Set(['FAILED', 'TIMED_OUT', 'KILLED', 'COVERED', 'SHUTDOWN', 'LOST']);

/** A log the failure monitor follows up (retry, alarm): the dispatch failed or the run did not succeed. */
export function isFailed(log: LogRow): boolean {
  return log.dispatch_outcome === 'FAILED' || (log.outcome !== null && FAILED_OUTCOMES.has(log.outcome));
}

/**
 * Checks what the database says happened against what was planned and what the
 * executors' handlers recorded. Each rule is documented where it is checked; the
 * allowances name the fault that makes them legitimate.
 */
export function checkSoak(input: CheckInput): Violation[] {
  const violations: Violation[] = [];
  const add = (invariant: Invariant, detail: string): void => {
    violations.push({ invariant, detail });
  };
  const logsById = new Map(input.logs.map(log => [log.id, log]));
  const logsOfJob = new Map<string, LogRow[]>();
  for (const log of input.logs) {
    const list = logsOfJob.get(log.job_id) ?? [];
    list.push(log);
    logsOfJob.set(log.job_id, list);
  }
  const iso = (ms: number | Date): string => new Date(ms).toISOString().slice(11, 23);

  // Windows in which claiming could legitimately stall for longer than the misfire
  // threshold: PostgreSQL down, or an admin stopped or starved (a paused admin keeps the
  // row locks of a claim transaction it was in). Padded by the threshold and a margin for
  // reconnecting pools on a loaded machine.
  const stallWindows = input.faults
    .filter(
      fault =>
        !fault.skipped &&
        (fault.kind === 'pg-restart' || (fault.target.startsWith('admin') && fault.kind !== 'link-cut')),
    )
    .map(fault => ({
      from: fault.startedAt - 3_000,
      to: (fault.endedAt ?? fault.startedAt) + input.misfireThresholdMs + 10_000,
      what: `${fault.kind} ${fault.target} #${fault.fault.index}`,
    }));
  // A machine so loaded that the soak's own timers run seconds late stalls the admins too
  // (their leases lapse, peers take their fires over late): such a stall explains a skip.
  for (const stall of input.hostStalls) {
    stallWindows.push({
      from: stall.from - 3_000,
      to: stall.to + input.misfireThresholdMs + 10_000,
      what: `host stalled ${stall.to - stall.from} ms`,
    });
  }
  // A FIX_DELAY job's next fire is planned from its run's finish time, which the admin
  // learns from the result: a result held up by any fault (an executor cut off, stopped
  // or starved) plans a fire that is already late.
  const anyFaultWindows = input.faults
    .filter(fault => !fault.skipped)
    .map(fault => ({
      from: fault.startedAt - 3_000,
      to: (fault.endedAt ?? fault.startedAt) + input.misfireThresholdMs + 10_000,
      what: `${fault.kind} ${fault.target} #${fault.fault.index}`,
    }))
    .concat(stallWindows);
  const fixDelayJobs = new Set(input.jobs.filter(job => job.scheduleType === 'FIX_DELAY').map(job => job.id));
  const stallAround = (from: number, to: number, jobId?: string): string | undefined =>
    (jobId !== undefined && fixDelayJobs.has(jobId) ? anyFaultWindows : stallWindows).find(
      window => window.from <= to && window.to >= from,
    )?.what;

  // planned-fire-once: the scheduled fires of a CRON or FIX_RATE job, in order, are one
  // period apart, from the first planned fire to the last one due before StopJob, each
  // recorded once. The one allowed gap follows a misfire row (a fire found later than the
  // threshold, recorded SKIPPED under DO_NOTHING or fired as MISFIRE under FIRE_ONCE_NOW):
  // the fires between it and the threshold boundary are not recorded by design. Such a
  // gap must overlap a window in which claiming could stall (skip-explained).
  for (const job of input.jobs) {
    const scheduled = (logsOfJob.get(job.id) ?? [])
      .filter(
        log => (log.trigger_type === 'SCHEDULE' || log.trigger_type === 'MISFIRE') && !log.retry_of_log_id,
      )
      .filter(log => log.shard_index === 0)
      .sort((a, b) => a.scheduled_at.getTime() - b.scheduled_at.getTime());
    if (job.periodMs !== undefined) {
      const period = job.periodMs;
      if (scheduled.length === 0) {
        add('planned-fire-once', `${job.name} (job ${job.id}): never fired`);
        continue;
      }
      const first = scheduled[0]!;
      if (job.firstFireAt && first.scheduled_at.getTime() !== job.firstFireAt.getTime()) {
        add(
          'planned-fire-once',
          `${job.name}: first fire at ${iso(first.scheduled_at)} (log ${first.id}), planned ${iso(job.firstFireAt)}`,
        );
      }
      for (let i = 1; i < scheduled.length; i++) {
        const previous = scheduled[i - 1]!;
        const log = scheduled[i]!;
        const gap = log.scheduled_at.getTime() - previous.scheduled_at.getTime();
        if (gap === period) continue;
        if (gap === 0) {
          add(
            'planned-fire-once',
            `${job.name}: fire ${iso(log.scheduled_at)} recorded twice (logs ${previous.id}, ${log.id})`,
          );
        } else if (gap < period) {
          add(
            'planned-fire-once',
            `${job.name}: fire ${iso(log.scheduled_at)} (log ${log.id}) off the schedule, ${gap} ms after log ${previous.id}`,
          );
        } else if (isMisfireRow(previous)) {
          const stall = stallAround(previous.scheduled_at.getTime(), log.scheduled_at.getTime());
          if (!stall) {
            add(
              'skip-explained',
              `${job.name}: misfire gap ${iso(previous.scheduled_at)}..${iso(log.scheduled_at)} after log ${previous.id} with no fault that could stall claiming`,
            );
          }
        } else {
          const missing: string[] = [];
          for (
            let at = previous.scheduled_at.getTime() + period;
            at < log.scheduled_at.getTime();
            at += period
          )
            missing.push(iso(at));
          add(
            'planned-fire-once',
            `${job.name}: ${missing.length} planned fire(s) never recorded between logs ${previous.id} and ${log.id}: ${missing.slice(0, 10).join(', ')}`,
          );
        }
      }
      const last = scheduled.at(-1)!;
      // StopJob withdraws every fire not yet taken for sending, also one already due that a
      // slow admin had not taken yet: the fires of the last threshold before it may be gone.
      if (
        job.stoppedAt &&
        last.scheduled_at.getTime() < job.stoppedAt.getTime() - period - input.misfireThresholdMs
      ) {
        add(
          'planned-fire-once',
          `${job.name}: last fire ${iso(last.scheduled_at)} (log ${last.id}) but the job ran until ${iso(job.stoppedAt)}`,
        );
      }
    }
    if (job.scheduleType === 'FIX_DELAY') {
      // fix-delay-chain: a FIX_DELAY fire is planned only once the run before it ended, so
      // two scheduled runs never overlap on the executors; and the chain is alive at the
      // end (it fired after everything was healed).
      const endOf = new Map<string, number>();
      for (const record of input.records)
        if (record.ev === 'end') endOf.set(`${record.logId}/${record.attempt}`, record.at);
      for (let i = 1; i < scheduled.length; i++) {
        const previous = scheduled[i - 1]!;
        const ended = endOf.get(`${previous.id}/${previous.attempt}`);
        if (ended !== undefined && scheduled[i]!.scheduled_at.getTime() < ended - 50) {
          add(
            'fix-delay-chain',
            `${job.name}: log ${scheduled[i]!.id} planned at ${iso(scheduled[i]!.scheduled_at)}, before log ${previous.id}'s run ended at ${iso(ended)}`,
          );
        }
      }
      const last = scheduled.at(-1);
      if (!last || last.scheduled_at.getTime() < input.healedAt) {
        add(
          'fix-delay-chain',
          `${job.name}: no fire after everything was healed at ${iso(input.healedAt)}: the chain is broken`,
        );
      }
    }
  }

  // skip-explained: a fire skipped by its misfire rule was late because something stalled
  // the schedulers, never on a healthy cluster.
  for (const log of input.logs) {
    if (log.dispatch_outcome !== 'SKIPPED') continue;
    const at = log.scheduled_at.getTime();
    if (!stallAround(at, at, log.job_id) && !isMisfireRow(log)) {
      add(
        'skip-explained',
        `log ${log.id} (job ${log.job_id}, ${iso(at)}) SKIPPED with no fault around it: ${log.trigger_message}`,
      );
    } else if (isMisfireRow(log) && !stallAround(at, at + input.misfireThresholdMs, log.job_id)) {
      add(
        'skip-explained',
        `log ${log.id} (job ${log.job_id}, ${iso(at)}) skipped as a misfire with no fault around it`,
      );
    }
  }

  // broadcast-shards-once: a broadcast trigger has each of its shards once.
  for (const root of input.logs) {
    if (root.shard_total <= 1 || root.shard_index !== 0 || root.broadcast_root_id || root.retry_of_log_id)
      continue;
    const shards = input.logs.filter(log => log.broadcast_root_id === root.id && !log.retry_of_log_id);
    const indexes = [0, ...shards.map(log => log.shard_index)].sort((a, b) => a - b);
    const expected = Array.from({ length: root.shard_total }, (_, i) => i);
    if (indexes.join(',') !== expected.join(',')) {
      add(
        'broadcast-shards-once',
        `broadcast log ${root.id}: shards [${indexes.join(',')}] of ${root.shard_total}`,
      );
    }
  }

  // ran-once and run-has-log: each (log, attempt) started at most once, on any executor,
  // and for a log the database has, with the same job, attempt and shard.
  const runs = new Map<string, { start: RunRecordLine[]; end: RunRecordLine[] }>();
  for (const record of input.records) {
    const key = `${record.logId}/${record.attempt}`;
    const run = runs.get(key) ?? { start: [], end: [] };
    run[record.ev].push(record);
    runs.set(key, run);
  }
  const killedPids = new Map(input.incarnations.map(life => [life.pid, life]));
  for (const [key, run] of runs) {
    if (run.start.length > 1) {
      add(
        'ran-once',
        `run ${key} started ${run.start.length} times: ${run.start.map(r => `${r.executor} pid ${r.pid} at ${iso(r.at)}`).join('; ')}`,
      );
    }
    const start = run.start[0];
    if (!start) {
      add('run-has-log', `run ${key} ended without a recorded start`);
      continue;
    }
    const log = logsById.get(start.logId);
    if (!log) {
      add(
        'run-has-log',
        `run ${key} (job ${start.jobId}) ran on ${start.executor} but log ${start.logId} does not exist`,
      );
      continue;
    }
    if (log.attempt !== start.attempt || log.job_id !== start.jobId || log.shard_index !== start.shardIndex) {
      add(
        'run-has-log',
        `run ${key} (job ${start.jobId}, shard ${start.shardIndex}) does not match log ${log.id} (job ${log.job_id}, attempt ${log.attempt}, shard ${log.shard_index})`,
      );
      continue;
    }

    // outcome-matches-run: the log was dispatched (ACCEPTED) and its outcome is what the
    // handler did. A result may be LOST only if the process that ran it was SIGKILLed
    // before the result could be sent. A run with no end line ended with its process
    // (SIGKILL, or SIGTERM past the grace period): any outcome but SUCCEEDED or FAILED.
    const end = run.end[0];
    const life = killedPids.get(start.pid);
    const killed = life?.ended === 'SIGKILL';
    let expected: string[];
    let did: string;
    if (!end) {
      did = `started at ${iso(start.at)} and never ended (${start.executor} pid ${start.pid} ${life?.ended ?? 'still running'})`;
      expected = life?.endedAt !== undefined ? ['LOST', 'SHUTDOWN', 'TIMED_OUT', 'KILLED', 'COVERED'] : [];
    } else {
      did = `${end.outcome}${end.cancelReason ? ` (${end.cancelReason})` : ''} at ${iso(end.at)} on ${end.executor}`;
      if (end.outcome === 'succeeded') expected = ['SUCCEEDED'];
      else if (end.outcome === 'failed') expected = ['FAILED'];
      else expected = [OUTCOME_OF_CANCEL[end.cancelReason ?? ''] ?? 'unknown cancel reason'];
      if (killed) expected.push('LOST');
    }
    // SIGKILLed between starting the handler and its reply reaching the admin (a window of
    // milliseconds): the admin never learned the run was accepted, so it stayed in doubt and
    // was declared LOST when the executor came back as another process without it. The
    // message says it may have started; the dispatch outcome stays PENDING.
    const lostInDoubt = !end && killed && log.dispatch_outcome === 'PENDING' && log.outcome === 'LOST';
    if (!lostInDoubt && (log.dispatch_outcome !== 'ACCEPTED' || !expected.includes(log.outcome ?? 'none'))) {
      add(
        'outcome-matches-run',
        `log ${log.id} attempt ${log.attempt} (job ${log.job_id}): handler ${did}; log says ${log.dispatch_outcome}/${log.outcome ?? 'no outcome'} (${log.handle_message || log.trigger_message}); expected ${expected.join(' or ') || 'the run to end'}`,
      );
    }
  }

  // no-result-without-run: a SUCCEEDED or FAILED outcome comes from a handler that ran.
  for (const log of input.logs) {
    if ((log.outcome === 'SUCCEEDED' || log.outcome === 'FAILED') && !runs.has(`${log.id}/${log.attempt}`)) {
      add(
        'no-result-without-run',
        `log ${log.id} (job ${log.job_id}) is ${log.outcome} but no handler ran it: ${log.handle_message}`,
      );
    }
  }

  // settled: after the quiet period no log is PENDING (never dispatched nor settled) or
  // RUNNING (dispatched, no outcome).
  for (const log of input.logs) {
    // A run in doubt that was declared LOST keeps dispatch PENDING: its outcome is final.
    if ((log.dispatch_outcome === 'PENDING' || log.dispatch_outcome === 'ACCEPTED') && log.outcome === null) {
      add(
        'settled',
        `log ${log.id} (job ${log.job_id}, ${log.trigger_type}, scheduled ${iso(log.scheduled_at)}) still ${log.dispatch_outcome === 'PENDING' ? 'PENDING' : 'RUNNING'} on ${log.executor_instance ?? 'no executor'}: ${log.trigger_message}`,
      );
    }
  }

  // retry-once: a failed log of a job with retries left (not KILLED or COVERED: an operator
  // or a newer run ended it) has exactly one retry log; any other log has none.
  const jobsById = new Map(input.jobs.map(job => [job.id, job]));
  const retriesOf = new Map<string, LogRow[]>();
  for (const log of input.logs) {
    if (!log.retry_of_log_id) continue;
    const list = retriesOf.get(log.retry_of_log_id) ?? [];
    list.push(log);
    retriesOf.set(log.retry_of_log_id, list);
  }
  for (const log of input.logs) {
    const job = jobsById.get(log.job_id);
    if (!job) continue;
    const retryable =
      isFailed(log) &&
      log.outcome !== 'KILLED' &&
      log.outcome !== 'COVERED' &&
      log.attempt - 1 < job.failRetryCount;
    const retries = retriesOf.get(log.id) ?? [];
    if (retries.length !== (retryable ? 1 : 0)) {
      add(
        'retry-once',
        `log ${log.id} (${job.name}, attempt ${log.attempt}, ${log.dispatch_outcome}/${log.outcome ?? '-'}) has ${retries.length} retries${retries.length ? ` (${retries.map(r => r.id).join(', ')})` : ''}, expected ${retryable ? 1 : 0}`,
      );
    }
    for (const retryLog of retries) {
      if (retryLog.attempt !== log.attempt + 1)
        add('retry-once', `retry log ${retryLog.id} of log ${log.id} has attempt ${retryLog.attempt}`);
    }
  }

  // child-once: a parent trigger whose run succeeded (for a broadcast: every shard) fires
  // each child job once; nothing else does. Counted per child: its PARENT logs equal the
  // parent triggers that succeeded.
  for (const parent of input.jobs) {
    if (parent.childIds.length === 0) continue;
    const roots = (logsOfJob.get(parent.id) ?? []).filter(log => !log.broadcast_root_id);
    let succeeded = 0;
    for (const root of roots) {
      // A trigger (with its retries) succeeded when each shard has a SUCCEEDED attempt.
      if (root.retry_of_log_id) continue;
      const chain = (log: LogRow): LogRow[] => {
        const out = [log];
        for (let next = retriesOf.get(log.id)?.[0]; next; next = retriesOf.get(next.id)?.[0]) out.push(next);
        return out;
      };
      const shards = [
        root,
        ...input.logs.filter(log => log.broadcast_root_id === root.id && !log.retry_of_log_id),
      ];
      const allSucceeded = shards.every(shard => chain(shard).some(log => log.outcome === 'SUCCEEDED'));
      if (allSucceeded) succeeded += 1;
      const marked = shards.some(shard => chain(shard).some(log => log.children_triggered_at !== null));
      if (allSucceeded !== marked) {
        add(
          'child-once',
          `${parent.name} trigger ${root.id}: ${allSucceeded ? 'succeeded but its children were never triggered' : 'children triggered though it did not succeed'}`,
        );
      }
    }
    for (const childId of parent.childIds) {
      const fired = (logsOfJob.get(childId) ?? []).filter(
        log => log.trigger_type === 'PARENT' && !log.retry_of_log_id,
      );
      if (fired.length !== succeeded) {
        add(
          'child-once',
          `child job ${childId} of ${parent.name}: ${fired.length} parent triggers for ${succeeded} successful parent triggers`,
        );
      }
    }
  }

  // alarm-once: each failed log alarms exactly once, and nothing else alarms. Zero alarms
  // is allowed only where the admin recorded it did not get one out: LOCKED (the admin
  // died between claiming and sending: alarms are at most once on purpose) or FAILED (the
  // send failed or timed out; it is not retried). A FAILED or LOCKED status with the one
  // e-mail received is fine too: SMTP can deliver a message whose sender gave up waiting.
  const mailsPerLog = new Map<string, number>();
  for (const logId of input.alarmMails) mailsPerLog.set(logId, (mailsPerLog.get(logId) ?? 0) + 1);
  for (const log of input.logs) {
    const mails = mailsPerLog.get(log.id) ?? 0;
    mailsPerLog.delete(log.id);
    if (!isFailed(log)) {
      if (mails > 0) add('alarm-once', `log ${log.id} did not fail but alarmed ${mails} times`);
      continue;
    }
    const allowedZero = log.alarm_status === 'LOCKED' || log.alarm_status === 'FAILED';
    if (mails > 1 || (mails === 0 && !allowedZero) || (mails === 1 && log.alarm_status === 'NONE')) {
      add(
        'alarm-once',
        `failed log ${log.id} (job ${log.job_id}, ${log.outcome ?? log.dispatch_outcome}): ${mails} alarm e-mails, alarm status ${log.alarm_status}`,
      );
    }
  }
  for (const [logId, mails] of mailsPerLog)
    add('alarm-once', `${mails} alarm e-mails for log ${logId}, which does not exist`);

  // manual-trigger-recorded: every log TriggerJob returned exists.
  for (const logId of input.manualLogIds) {
    if (!logsById.has(logId))
      add('manual-trigger-recorded', `TriggerJob returned log ${logId}, which does not exist`);
  }

  // no-crash: no process that was up exited without being told to. (One that could not
  // start, such as an admin finding PostgreSQL down, exits and is started again.)
  for (const life of input.incarnations) {
    if (life.endedAt !== undefined && !life.expected && life.ready) {
      add(
        'no-crash',
        `${life.name} pid ${life.pid} exited on its own (${life.ended}) at ${iso(life.endedAt)}`,
      );
    }
  }
  return violations;
}

/** A fire the claim path found later than the misfire threshold (see planJobFires). */
function isMisfireRow(log: LogRow): boolean {
  return log.trigger_type === 'MISFIRE' || log.trigger_message.startsWith('misfire: found too late');
}
