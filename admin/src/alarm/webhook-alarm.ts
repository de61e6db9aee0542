import type { TriggerLog } from '../domain.js';
import type { AlarmChannel, AlarmEvent } from './alarm.js';

/**
 * The JSON body POSTed to JOBSTREAM_ALARM_WEBHOOK_URL for every failed log
 * (Content-Type: application/json; any 2xx answer counts as delivered):
 *
 * ```json
 * {
 *   "type": "log.failed",
 *   "job": { "id": "42", "description": "nightly export", "groupId": "3" },
 *   "group": { "appName": "orders", "title": "Order service" },
 *   "log": {
 *     "id": "1017", "attempt": 2, "triggerType": "RETRY",
 *     "dispatchOutcome": "ACCEPTED", "outcome": "FAILED",
 *     "executorInstance": "orders-1",
 *     "triggerMessage": "", "handleMessage": "connection refused",
 *     "scheduledAt": "2025-01-01T00:00:00.000Z", "triggeredAt": "2025-01-01T00:00:00.004Z",
 *     "finishedAt": "2025-01-01T00:00:01.250Z"
 *   }
 * }
 * ```
 *
 * Ids are decimal strings (they are 64-bit). `group` is null when the group no longer
 * exists; `outcome`, `executorInstance` and `finishedAt` are null when the run never
 * started or never reported (e.g. the dispatch itself failed).
 */
export interface WebhookAlarmBody {
  readonly type: 'log.failed';
  readonly job: { readonly id: string; readonly description: string; readonly groupId: string };
  readonly group: { readonly appName: string; readonly title: string } | null;
  readonly log: {
    readonly id: string;
    readonly attempt: number;
    readonly triggerType: TriggerLog['triggerType'];
    readonly dispatchOutcome: TriggerLog['dispatchOutcome'];
    readonly outcome: TriggerLog['outcome'];
    readonly executorInstance: string | null;
    readonly triggerMessage: string;
    readonly handleMessage: string;
    readonly scheduledAt: string;
    readonly triggeredAt: string;
    readonly finishedAt: string | null;
  };
}

export function webhookAlarmBody({ job, group, log }: AlarmEvent): WebhookAlarmBody {
  return {
    type: 'log.failed',
    job: { id: job.id, description: job.description, groupId: job.groupId },
    group: group ? { appName: group.appName, title: group.title } : null,
    log: {
      id: log.id,
      attempt: log.attempt,
      triggerType: log.triggerType,
      dispatchOutcome: log.dispatchOutcome,
      outcome: log.outcome,
      executorInstance: log.executorInstance,
      triggerMessage: log.triggerMessage,
      handleMessage: log.handleMessage,
      scheduledAt: log.scheduledAt.toISOString(),
      triggeredAt: log.triggeredAt.toISOString(),
      finishedAt: log.finishedAt?.toISOString() ?? null,
    },
  };
}

/** POSTs every failed log to one URL, for chat bots, incident tools and the like. */
export class WebhookAlarmChannel implements AlarmChannel {
  readonly name = 'webhook';

  constructor(private readonly url: string) {}

  appliesTo(): boolean {
    return true;
  }

  async send(event: AlarmEvent, signal?: AbortSignal): Promise<void> {
    // Errors name the status but never the URL: webhook URLs often embed their secret token.
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'jobstream-admin' },
      body: JSON.stringify(webhookAlarmBody(event)),
      signal,
    });
    // Read to the end either way, so the connection returns to the pool instead of lingering.
    const text = await response.text();
    if (!response.ok) {
      const detail = text.trim().slice(0, 200);
      throw new Error(`alarm webhook answered HTTP ${response.status}${detail === '' ? '' : `: ${detail}`}`);
    }
  }
}
