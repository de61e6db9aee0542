import type { Counter } from 'prom-client';
import type { ExecutorGroup, Job, TriggerLog } from '../domain.js';
import type { Logger } from '../logger.js';
import type { AdminMetrics } from '../metrics.js';
import { describeError } from './describe-error.js';
import { EmailAlarmChannel, type SmtpConfig } from './email-alarm.js';
import { WebhookAlarmChannel } from './webhook-alarm.js';

/** One failed trigger log, with what an alarm needs to describe it. */
export interface AlarmEvent {
  readonly job: Job;
  /** Undefined when the group was deleted after the run. */
  readonly group: ExecutorGroup | undefined;
  readonly log: TriggerLog;
}

/** A way of telling people that a log failed. */
export interface AlarmChannel {
  /** Short and stable: it labels metrics and log lines. */
  readonly name: string;
  /** Whether the event concerns this channel at all (e.g. e-mail needs recipients). */
  appliesTo(event: AlarmEvent): boolean;
  /** Resolves once the alarm is handed over; rejects on any failure, or when the signal aborts. */
  send(event: AlarmEvent, signal?: AbortSignal): Promise<void>;
  /** Releases connections; the channel is not used afterwards. */
  close?(): Promise<void>;
}

/** The alarm statuses a log ends in (a subset of AlarmStatus). */
export type AlarmResult = 'SENT' | 'FAILED' | 'NOT_NEEDED';

export const DEFAULT_ALARM_SEND_TIMEOUT_MS = 10_000;

export class AlarmTimeoutError extends Error {
  override readonly name = 'AlarmTimeoutError';
  constructor(channel: string, timeoutMs: number) {
    super(`alarm channel "${channel}" did not finish within ${timeoutMs} ms`);
  }
}

export interface AlarmsOptions {
  readonly channels: readonly AlarmChannel[];
  readonly logger: Logger;
  /** Incremented once per failed channel send, labelled by channel name. */
  readonly failures: Counter<'channel'>;
  /** Caps each channel's send, so a hung SMTP or HTTP server cannot stall the failure monitor. */
  readonly sendTimeoutMs?: number;
  /** Strings (passwords, tokenised URLs) scrubbed from logged errors. */
  readonly secrets?: readonly string[];
}

/**
 * Runs every configured channel that applies to a failed log. All of them must succeed
 * for the alarm to count as sent: a partial delivery is reported as a failure so that
 * operators see it, as in XXL-JOB where the status is "sent" only if every alarm passed.
 */
export class Alarms {
  readonly channels: readonly AlarmChannel[];
  private readonly logger: Logger;
  private readonly failures: Counter<'channel'>;
  private readonly sendTimeoutMs: number;
  private readonly secrets: readonly string[];

  constructor(options: AlarmsOptions) {
    this.channels = options.channels;
    this.logger = options.logger;
    this.failures = options.failures;
    this.sendTimeoutMs = options.sendTimeoutMs ?? DEFAULT_ALARM_SEND_TIMEOUT_MS;
    this.secrets = (options.secrets ?? []).filter(secret => secret !== '');
  }

  /**
   * Never rejects because a channel failed; rejects with the signal's reason when the
   * caller aborts (e.g. shutdown), since the outcome is then unknown rather than failed.
   */
  async alarm(event: AlarmEvent, signal?: AbortSignal): Promise<AlarmResult> {
    signal?.throwIfAborted();
    const applicable = this.channels.filter(channel => channel.appliesTo(event));
    if (applicable.length === 0) return 'NOT_NEEDED';

    const results = await Promise.allSettled(applicable.map(channel => this.send(channel, event, signal)));
    signal?.throwIfAborted();

    let failed = false;
    results.forEach((result, index) => {
      const channel = applicable[index]!;
      if (result.status === 'fulfilled') {
        this.logger.debug({ channel: channel.name, jobId: event.job.id, logId: event.log.id }, 'alarm sent');
        return;
      }
      failed = true;
      this.failures.inc({ channel: channel.name });
      this.logger.warn(
        {
          channel: channel.name,
          jobId: event.job.id,
          logId: event.log.id,
          error: describeError(result.reason, this.secrets),
        },
        'alarm channel failed',
      );
    });
    return failed ? 'FAILED' : 'SENT';
  }

  async close(): Promise<void> {
    await Promise.allSettled(
      this.channels.map(async channel => {
        await channel.close?.();
      }),
    );
  }

  private async send(channel: AlarmChannel, event: AlarmEvent, signal: AbortSignal | undefined) {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new AlarmTimeoutError(channel.name, this.sendTimeoutMs)),
      this.sendTimeoutMs,
    );
    const combined = signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal;
    try {
      // Raced as well as passed down: a channel that ignores its signal still cannot hold us.
      await untilAborted(channel.send(event, combined), combined);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The alarm channels an admin is configured with (JOBSTREAM_SMTP_*, JOBSTREAM_ALARM_WEBHOOK_URL). */
export interface AlarmSettings {
  readonly smtp: SmtpConfig | undefined;
  readonly alarmWebhookUrl: string | undefined;
}

/** Builds the channels the configuration enables: e-mail when SMTP is set, the webhook when its URL is. */
export function createAlarms(
  config: AlarmSettings,
  logger: Logger,
  metrics: Pick<AdminMetrics, 'alarmFailures'>,
  options: { sendTimeoutMs?: number } = {},
): Alarms {
  const channels: AlarmChannel[] = [];
  if (config.smtp) channels.push(new EmailAlarmChannel(config.smtp, logger));
  if (config.alarmWebhookUrl !== undefined) channels.push(new WebhookAlarmChannel(config.alarmWebhookUrl));
  return new Alarms({
    channels,
    logger,
    failures: metrics.alarmFailures,
    sendTimeoutMs: options.sendTimeoutMs,
    secrets: [config.smtp?.password ?? '', config.alarmWebhookUrl ?? ''],
  });
}

async function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort = (): void => {};
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
