import nodemailer from 'nodemailer';
import type { Logger } from '../logger.js';
import type { AlarmChannel, AlarmEvent } from './alarm.js';
import { describeError } from './describe-error.js';

/** How alarm e-mails reach an SMTP server (JOBSTREAM_SMTP_*). */
export interface SmtpConfig {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS is used when the server offers it. */
  readonly secure: boolean;
  readonly user: string | undefined;
  readonly password: string | undefined;
  /** The From address of alarm e-mails. */
  readonly from: string;
}

/**
 * E-mails each distinct address in the job's alarm_email list, one message per failed
 * log, as XXL-JOB does; unlike it, the body is escaped, since handle messages come from
 * job code and must not become markup in an operator's mail client.
 */
export class EmailAlarmChannel implements AlarmChannel {
  readonly name = 'email';
  private readonly from: string;
  private readonly transport: ReturnType<typeof createSmtpTransport>;

  constructor(smtp: SmtpConfig, logger: Logger) {
    this.from = smtp.from;
    this.transport = createSmtpTransport(smtp);
    // The pool reports broken idle connections as events; unheard, they would crash the process.
    this.transport.on('error', error => {
      logger.warn(
        { channel: this.name, error: describeError(error, [smtp.password ?? '']) },
        'SMTP transport error',
      );
    });
  }

  appliesTo(event: AlarmEvent): boolean {
    return alarmRecipients(event.job.alarmEmail).length > 0;
  }

  async send(event: AlarmEvent, signal?: AbortSignal): Promise<void> {
    const recipients = alarmRecipients(event.job.alarmEmail);
    if (recipients.length === 0) return;
    const facts = alarmFacts(event);
    await this.transport.sendMail({
      from: this.from,
      to: recipients,
      subject: alarmSubject(event),
      text: renderText(event, facts),
      html: renderHtml(event, facts),
      signal,
    });
  }

  close(): Promise<void> {
    this.transport.close();
    return Promise.resolve();
  }
}

function createSmtpTransport(smtp: SmtpConfig) {
  return nodemailer.createTransport({
    // A burst of failures (an executor group going down) would otherwise open one
    // connection per log; two reused connections keep the SMTP server's limits happy.
    pool: true,
    maxConnections: 2,
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    auth: smtp.user !== undefined ? { user: smtp.user, pass: smtp.password ?? '' } : undefined,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
}

/** The distinct addresses of a comma-separated list; duplicates differing only in case count once. */
export function alarmRecipients(alarmEmail: string): string[] {
  const seen = new Set<string>();
  const recipients: string[] = [];
  for (const raw of alarmEmail.split(',')) {
    const address = raw.trim();
    const key = address.toLowerCase();
    if (address === '' || seen.has(key)) continue;
    seen.add(key);
    recipients.push(address);
  }
  return recipients;
}

export function alarmSubject(event: AlarmEvent): string {
  const description = oneLine(event.job.description);
  const shown = description.length > 80 ? `${description.slice(0, 79)}…` : description;
  return `jobstream alarm: job ${event.job.id} (${shown}) failed`;
}

interface Fact {
  readonly label: string;
  readonly value: string;
  /** Multi-line text shown preformatted. */
  readonly message?: boolean;
}

function alarmFacts({ job, group, log }: AlarmEvent): Fact[] {
  const dispatchFailed = log.dispatchOutcome === 'FAILED';
  const runFailed = log.outcome !== null && log.outcome !== 'SUCCEEDED';
  const failure = [
    dispatchFailed ? 'dispatch failed' : undefined,
    runFailed ? `run ended ${log.outcome}` : undefined,
  ].filter(part => part !== undefined);
  const facts: Fact[] = [
    {
      label: 'Group',
      value: group ? `${group.title} (${group.appName})` : `group ${job.groupId} (no longer exists)`,
    },
    { label: 'Job ID', value: job.id },
    { label: 'Job description', value: job.description },
    { label: 'Log ID', value: log.id },
    { label: 'Attempt', value: String(log.attempt) },
    { label: 'Trigger type', value: log.triggerType },
    { label: 'Failure', value: failure.length > 0 ? failure.join(', ') : 'failed' },
  ];
  if (dispatchFailed) facts.push({ label: 'Trigger message', value: log.triggerMessage, message: true });
  if (runFailed) facts.push({ label: 'Handle message', value: log.handleMessage, message: true });
  facts.push(
    { label: 'Executor instance', value: log.executorInstance ?? '-' },
    { label: 'Scheduled at', value: isoOrDash(log.scheduledAt) },
    { label: 'Triggered at', value: isoOrDash(log.triggeredAt) },
    { label: 'Finished at', value: isoOrDash(log.finishedAt) },
  );
  return facts;
}

function renderText(event: AlarmEvent, facts: readonly Fact[]): string {
  const lines = [`Job ${event.job.id} failed (log ${event.log.id}).`, ''];
  for (const fact of facts) {
    if (fact.message) lines.push(`${fact.label}:`, indent(fact.value === '' ? '-' : fact.value));
    else lines.push(`${fact.label}: ${fact.value}`);
  }
  lines.push('', '-- ', 'jobstream admin');
  return lines.join('\n');
}

function renderHtml(event: AlarmEvent, facts: readonly Fact[]): string {
  const cell = 'padding:4px 8px;border:1px solid #ccc;vertical-align:top;text-align:left';
  const rows = facts.map(fact => {
    const value = fact.message
      ? `<pre style="margin:0;white-space:pre-wrap;font-family:monospace">${escapeHtml(fact.value)}</pre>`
      : escapeHtml(fact.value);
    return `<tr><th style="${cell}">${escapeHtml(fact.label)}</th><td style="${cell}">${value}</td></tr>`;
  });
  return [
    '<!doctype html>',
    '<html><body style="font-family:sans-serif">',
    `<h3>Job ${escapeHtml(event.job.id)} failed (log ${escapeHtml(event.log.id)})</h3>`,
    '<table style="border-collapse:collapse">',
    ...rows,
    '</table>',
    '<p style="color:#777">jobstream admin</p>',
    '</body></html>',
  ].join('\n');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, char => HTML_ENTITIES[char] ?? char);
}

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is being removed
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

function indent(text: string): string {
  return text
    .split(/\r?\n/)
    .map(line => `    ${line}`)
    .join('\n');
}

function isoOrDash(date: Date | null): string {
  return date ? date.toISOString() : '-';
}
