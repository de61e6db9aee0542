import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the load gauges report, read at each scrape. */
export interface LoadSources {
  runsWaitingForSlot(): number;
  firesInFlight(): number;
}

/** The admin's Prometheus metrics, on a registry of its own (no global default registry). */
export class AdminMetrics {
  readonly registry = new Registry();
  readonly #triggerCounts = new PairTally();
  readonly #resultCounts = new PairTally();
  #triggersInFlight = 0;

  readonly triggers: Counter<'trigger_type' | 'outcome'> = new Counter({
    name: 'jobstream_triggers_total',
    help: 'Runs dispatched, by trigger type and dispatch outcome',
    labelNames: ['trigger_type', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void =>
      this.#triggerCounts.drain((triggerType, outcome, count) =>
        this.triggers.inc({ trigger_type: triggerType, outcome }, count),
      ),
  });
  readonly dispatchSeconds = new Histogram({
    name: 'jobstream_dispatch_seconds',
    help: 'Time from trigger to the executor accepting or refusing the run',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
    registers: [this.registry],
  });
  readonly results: Counter<'outcome' | 'applied'> = new Counter({
    name: 'jobstream_run_results_total',
    help: 'Run results received, by outcome and whether they were new or duplicates',
    labelNames: ['outcome', 'applied'] as const,
    registers: [this.registry],
    collect: (): void =>
      this.#resultCounts.drain((outcome, applied, count) => this.results.inc({ outcome, applied }, count)),
  });
  readonly resultsRefused = new Counter({
    name: 'jobstream_run_results_refused_total',
    help: 'Run results refused because their run was not sent to the reporting session, by group',
    labelNames: ['app_name'] as const,
    registers: [this.registry],
  });
  readonly runsSentAgainForSlot = new Counter({
    name: 'jobstream_runs_sent_again_for_slot_total',
    help: 'Run requests asked again because no slot of their executor freed within the request deadline (through a peer admin, or beyond the bound of runs waiting here)',
    registers: [this.registry],
  });
  readonly triggersInFlight: Gauge = new Gauge({
    name: 'jobstream_triggers_in_flight',
    help: 'Run requests sent and not yet answered',
    registers: [this.registry],
    collect: (): void => this.triggersInFlight.set(this.#triggersInFlight),
  });
  readonly runsWaitingForSlot: Gauge = new Gauge({
    name: 'jobstream_runs_waiting_for_executor_slot',
    help: 'Run requests waiting at this admin for a free slot of their executor (capacity + pipeline window)',
    registers: [this.registry],
    collect: (): void => this.runsWaitingForSlot.set(this.#load.runsWaitingForSlot()),
  });
  readonly firesInFlight: Gauge = new Gauge({
    name: 'jobstream_scheduler_fires_in_flight',
    help: 'Fires this admin claimed that their executors have not answered yet; claiming pauses at JOBSTREAM_MAX_FIRES_IN_FLIGHT',
    registers: [this.registry],
    collect: (): void => this.firesInFlight.set(this.#load.firesInFlight()),
  });
  /** Where the load gauges read from, once the components exist (see observeLoad). */
  #load: LoadSources = { runsWaitingForSlot: () => 0, firesInFlight: () => 0 };
  readonly executorsOnline = new Gauge({
    name: 'jobstream_executors_online',
    help: 'Executor streams connected to this admin, by group',
    labelNames: ['app_name'] as const,
    registers: [this.registry],
  });
  readonly streamRegistrations = new Counter({
    name: 'jobstream_stream_registrations_total',
    help: 'Executor streams registered (first connections and reconnects)',
    labelNames: ['app_name'] as const,
    registers: [this.registry],
  });
  readonly streamsRefused = new Counter({
    name: 'jobstream_streams_refused_total',
    help: 'Executor streams refused, by gRPC status',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly fireLateness = new Histogram({
    name: 'jobstream_fire_lateness_seconds',
    help: "From a fire's scheduled time to the admin sending its run request",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly misfires = new Counter({
    name: 'jobstream_misfires_total',
    help: 'Scheduled fires found later than the misfire threshold',
    registers: [this.registry],
  });
  readonly dbStatements = new Counter({
    name: 'jobstream_db_statements_total',
    help: 'SQL statements run against PostgreSQL, by outcome (statements per run = this / run results)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly dbStatementSeconds = new Histogram({
    name: 'jobstream_db_statement_seconds',
    help: 'Time a SQL statement took on its connection (waiting for a pooled connection not included)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly lostRuns = new Counter({
    name: 'jobstream_lost_runs_total',
    help: 'Runs declared lost: their executor went away and did not report them in time',
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'jobstream_fail_retries_total',
    help: 'Fail retries triggered',
    registers: [this.registry],
  });
  readonly alarmFailures = new Counter({
    name: 'jobstream_alarm_failures_total',
    help: 'Alarm sends that failed or timed out, by channel',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'jobstream_admin_' });
  }

  /** A run dispatched (jobstream_triggers_total). */
  countTrigger(triggerType: string, outcome: string): void {
    this.#triggerCounts.add(triggerType, outcome);
  }

  /** A run result received (jobstream_run_results_total). */
  countResult(outcome: string, applied: 'new' | 'duplicate'): void {
    this.#resultCounts.add(outcome, applied);
  }

  /** A run request sent (+1) or answered (-1) (jobstream_triggers_in_flight). */
  changeTriggersInFlight(delta: 1 | -1): void {
    this.#triggersInFlight += delta;
  }

  /** Connects the load gauges to the components they describe (created after the metrics). */
  observeLoad(sources: LoadSources): void {
    this.#load = sources;
  }
}

/**
 * Counts by a pair of label values in plain numbers, handed to their prom-client counter
 * when it is read (a scrape, or `get`). Counted per run: prom-client hashes the label
 * object of every `inc`, which was about 1 % of a busy admin's CPU for these two counters.
 */
class PairTally {
  readonly #counts = new Map<string, Map<string, number>>();

  add(first: string, second: string): void {
    let counts = this.#counts.get(first);
    if (counts === undefined) this.#counts.set(first, (counts = new Map<string, number>()));
    counts.set(second, (counts.get(second) ?? 0) + 1);
  }

  /** Hands every count gathered since the last drain to `apply`, and starts again from 0. */
  drain(apply: (first: string, second: string, count: number) => void): void {
    for (const [first, counts] of this.#counts) {
      for (const [second, count] of counts) {
        if (count === 0) continue;
        counts.set(second, 0);
        apply(first, second, count);
      }
    }
  }
}
