import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { createAlarms, type AlarmEvent, type Alarms } from '../admin/src/alarm/alarm.js';
import type { WebhookAlarmBody } from '../admin/src/alarm/webhook-alarm.js';
import type { SmtpConfig } from '../admin/src/alarm/email-alarm.js';
import type { ExecutorGroup, Job, TriggerLog } from '../admin/src/domain.js';
import { AdminMetrics } from '../admin/src/metrics.js';
import { EVENT_CEILING_MS } from './support/ceiling.js';

interface ReceivedMail {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly raw: string;
}

interface ReceivedPost {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function makeEvent(
  overrides: { job?: Partial<Job>; group?: ExecutorGroup | null; log?: Partial<TriggerLog> } = {},
): AlarmEvent {
  const at = new Date('2025-03-04T05:06:07.000Z');
  const group: ExecutorGroup = {
    id: '3',
    appName: 'orders',
    title: 'Order service',
    addressType: 'AUTO',
    addresses: [],
    scriptKinds: [],
    createdAt: at,
    updatedAt: at,
  };
  const job: Job = {
    id: '42',
    groupId: '3',
    description: 'nightly <export> & report',
    author: 'ops',
    alarmEmail: 'ops@example.com,dev@example.com, OPS@example.com',
    scheduleType: 'CRON',
    scheduleConf: '0 0 2 * * ?',
    timeZone: 'UTC',
    misfireStrategy: 'DO_NOTHING',
    routeStrategy: 'FIRST',
    handler: 'export',
    param: '',
    blockStrategy: 'SERIAL_EXECUTION',
    timeoutSeconds: 0,
    failRetryCount: 1,
    failRetryDelayMs: 0,
    glueType: 'BEAN',
    glueSource: '',
    glueRemark: '',
    childJobIds: [],
    triggerStatus: 'RUNNING',
    lastTriggerAt: at,
    nextTriggerAt: null,
    glueUpdatedAt: at,
    createdAt: at,
    updatedAt: at,
    ...overrides.job,
  };
  const log: TriggerLog = {
    id: '1017',
    jobId: '42',
    groupId: '3',
    triggerType: 'RETRY',
    executorInstance: 'orders-1',
    executorSessionId: 's-1',
    handler: 'export',
    param: '',
    shardIndex: 0,
    shardTotal: 1,
    attempt: 2,
    retryOfLogId: '1016',
    scheduledAt: at,
    triggeredAt: new Date('2025-03-04T05:06:07.004Z'),
    dispatchOutcome: 'ACCEPTED',
    triggerMessage: 'accepted by orders-1',
    startedAt: new Date('2025-03-04T05:06:07.010Z'),
    finishedAt: new Date('2025-03-04T05:06:08.250Z'),
    outcome: 'FAILED',
    handleMessage: 'boom: <script>alert("x")</script> & \'quoted\'',
    alarmStatus: 'LOCKED',
    ...overrides.log,
  };
  return { job, group: overrides.group === null ? undefined : (overrides.group ?? group), log };
}

/** A pino logger whose lines the test can read. */
function memoryLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function failureCount(metrics: AdminMetrics, channel: string): Promise<number> {
  const { values } = await metrics.alarmFailures.get();
  return values.find(value => value.labels.channel === channel)?.value ?? 0;
}

/** Splits a received message into its headers (unfolded) and its decoded text parts by content type. */
function parseMail(raw: string): { headers: string; parts: Map<string, string> } {
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const headers = head.replace(/\r\n[ \t]+/g, ' ');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(headers)?.[1];
  const parts = new Map<string, string>();
  if (boundary === undefined) return { headers, parts };
  for (const section of rest.join('\r\n\r\n').split(`--${boundary}`)) {
    const split = section.indexOf('\r\n\r\n');
    if (split < 0) continue;
    const partHeaders = section.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
    const type = /content-type:\s*([^;\r\n]+)/i.exec(partHeaders)?.[1]?.trim().toLowerCase();
    const encoding = /content-transfer-encoding:\s*(\S+)/i.exec(partHeaders)?.[1]?.toLowerCase();
    const body = section.slice(split + 4);
    if (type !== undefined) parts.set(type, decodeBody(body, encoding));
  }
  return { headers, parts };
}

function decodeBody(body: string, encoding: string | undefined): string {
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_match, hex: string) => {
      return String.fromCharCode(parseInt(hex, 16));
    });
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

function header(headers: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(headers)?.[1]?.trim();
}

describe('alarm channels against real SMTP and HTTP servers on loopback', () => {
  const mails: ReceivedMail[] = [];
  let smtpServer: SMTPServer;
  let smtp: SmtpConfig;
  const rejectedPassword = 'hunter2-do-not-log';

  const posts: ReceivedPost[] = [];
  let webhookStatus = 204;
  let webhookHangs = false;
  let httpServer: http.Server;
  let webhookUrl: string;

  let alarms: Alarms | undefined;

  beforeAll(async () => {
    smtpServer = new SMTPServer({
      authOptional: true,
      allowInsecureAuth: true,
      disabledCommands: ['STARTTLS'],
      disableReverseLookup: true,
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.password === rejectedPassword) callback(new Error('Invalid username or password'));
        else callback(null, { user: auth.username });
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const { mailFrom, rcptTo } = session.envelope;
          mails.push({
            mailFrom: mailFrom === false ? '' : mailFrom.address,
            rcptTo: rcptTo.map(recipient => recipient.address),
            raw: Buffer.concat(chunks).toString('utf8'),
          });
          callback();
        });
      },
    });
    await new Promise<void>(resolve => smtpServer.listen(0, '127.0.0.1', resolve));
    const smtpPort = (smtpServer.server.address() as AddressInfo).port;
    smtp = {
      host: '127.0.0.1',
      port: smtpPort,
      secure: false,
      user: undefined,
      password: undefined,
      from: 'jobstream <alarms@jobstream.test>',
    };

    httpServer = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        posts.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
        if (webhookHangs) return;
        response.statusCode = webhookStatus;
        response.end(webhookStatus >= 300 ? 'upstream exploded' : undefined);
      });
    });
    await new Promise<void>(resolve => httpServer.listen(0, '127.0.0.1', resolve));
    webhookUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/hooks/secret-token`;
  });

  afterEach(async () => {
    await alarms?.close();
    alarms = undefined;
    mails.length = 0;
    posts.length = 0;
    webhookStatus = 204;
    webhookHangs = false;
  });

  afterAll(async () => {
    await new Promise<void>(resolve => smtpServer.close(resolve));
    httpServer.closeAllConnections();
    await new Promise<void>(resolve => httpServer.close(() => resolve()));
  });

  it('e-mails each distinct recipient once, with the failure in an escaped HTML part and a text part', async () => {
    const metrics = new AdminMetrics();
    const { logger } = memoryLogger();
    alarms = createAlarms({ smtp, alarmWebhookUrl: undefined }, logger, metrics);

    expect(await alarms.alarm(makeEvent())).toBe('SENT');

    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.mailFrom).toBe('alarms@jobstream.test');
    expect(mail.rcptTo.sort()).toEqual(['dev@example.com', 'ops@example.com']);
    const { headers, parts } = parseMail(mail.raw);
    expect(header(headers, 'Subject')).toBe('jobstream alarm: job 42 (nightly <export> & report) failed');
    expect(header(headers, 'From')).toBe('jobstream <alarms@jobstream.test>');
    expect(header(headers, 'To')).toBe('ops@example.com, dev@example.com');

    const text = parts.get('text/plain');
    const html = parts.get('text/html');
    expect(text).toBeDefined();
    expect(html).toBeDefined();
    for (const body of [text!, html!]) {
      expect(body).toContain('42');
      expect(body).toContain('1017');
      expect(body).toContain('Order service');
      expect(body).toContain('orders-1');
      expect(body).toContain('2025-03-04T05:06:08.250Z');
    }
    expect(text).toContain('Job ID: 42');
    expect(text).toContain('Log ID: 1017');
    expect(text).toContain('Attempt: 2');
    expect(text).toContain('boom: <script>alert("x")</script> & \'quoted\'');
    // The trigger succeeded, so its routine message would only be noise.
    expect(text).not.toContain('accepted by orders-1');

    expect(html).toContain('boom: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;');
    expect(html).toContain('nightly &lt;export&gt; &amp; report');
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<export>');
    expect(await failureCount(metrics, 'email')).toBe(0);
  });

  it('reports a failed dispatch with its trigger message and a missing group, keeping the subject one line', async () => {
    const { logger } = memoryLogger();
    alarms = createAlarms({ smtp, alarmWebhookUrl: undefined }, logger, new AdminMetrics());
    const event = makeEvent({
      job: { alarmEmail: 'ops@example.com', description: 'export\r\nBcc: attacker@example.com' },
      group: null,
      log: {
        dispatchOutcome: 'FAILED',
        triggerMessage: 'no executor of "orders" is online',
        outcome: null,
        handleMessage: '',
        executorInstance: null,
        finishedAt: null,
      },
    });

    expect(await alarms.alarm(event)).toBe('SENT');

    expect(mails).toHaveLength(1);
    expect(mails[0]!.rcptTo).toEqual(['ops@example.com']);
    const { headers, parts } = parseMail(mails[0]!.raw);
    expect(header(headers, 'Subject')).toBe(
      'jobstream alarm: job 42 (export Bcc: attacker@example.com) failed',
    );
    expect(header(headers, 'Bcc')).toBeUndefined();
    const text = parts.get('text/plain')!;
    expect(text).toContain('no executor of "orders" is online');
    expect(text).toContain('Failure: dispatch failed');
    expect(text).toContain('group 3 (no longer exists)');
    expect(text).not.toContain('Handle message');
  });

  it('is NOT_NEEDED when no channel applies', async () => {
    const { logger } = memoryLogger();
    const metrics = new AdminMetrics();
    const noRecipients = makeEvent({ job: { alarmEmail: ' , ' } });

    alarms = createAlarms({ smtp, alarmWebhookUrl: undefined }, logger, metrics);
    expect(await alarms.alarm(noRecipients)).toBe('NOT_NEEDED');
    await alarms.close();

    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: undefined }, logger, metrics);
    expect(alarms.channels).toHaveLength(0);
    expect(await alarms.alarm(makeEvent())).toBe('NOT_NEEDED');

    expect(mails).toHaveLength(0);
    expect(posts).toHaveLength(0);
  });

  it('fails on an SMTP authentication error without logging the password', async () => {
    const metrics = new AdminMetrics();
    const { logger, lines } = memoryLogger();
    alarms = createAlarms(
      { smtp: { ...smtp, user: 'alarm-user', password: rejectedPassword }, alarmWebhookUrl: undefined },
      logger,
      metrics,
    );

    expect(await alarms.alarm(makeEvent())).toBe('FAILED');

    expect(mails).toHaveLength(0);
    expect(await failureCount(metrics, 'email')).toBe(1);
    const warning = lines
      .map(line => JSON.parse(line) as Record<string, unknown>)
      .find(line => line.level === 40);
    expect(warning).toMatchObject({ msg: 'alarm channel failed', channel: 'email', logId: '1017' });
    expect(JSON.stringify(warning)).toContain('EAUTH');
    const everything = lines.join('\n');
    expect(everything).not.toContain(rejectedPassword);
    expect(everything).not.toContain(Buffer.from(`\0alarm-user\0${rejectedPassword}`).toString('base64'));
  });

  it('fails after the send timeout when the SMTP server never greets', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer(socket => sockets.add(socket));
    await new Promise<void>(resolve => silent.listen(0, '127.0.0.1', resolve));
    try {
      const metrics = new AdminMetrics();
      const { logger, lines } = memoryLogger();
      const port = (silent.address() as AddressInfo).port;
      alarms = createAlarms({ smtp: { ...smtp, port }, alarmWebhookUrl: undefined }, logger, metrics, {
        sendTimeoutMs: 300,
      });

      const started = performance.now();
      expect(await alarms.alarm(makeEvent())).toBe('FAILED');
      // The server never greets: without the send timeout this would never end.
      expect(performance.now() - started).toBeLessThan(EVENT_CEILING_MS);
      expect(await failureCount(metrics, 'email')).toBe(1);
      expect(lines.join('\n')).toContain('did not finish within 300 ms');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>(resolve => silent.close(() => resolve()));
    }
  });

  it('POSTs the documented JSON body to the webhook', async () => {
    const { logger } = memoryLogger();
    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: webhookUrl }, logger, new AdminMetrics());

    expect(await alarms.alarm(makeEvent({ job: { alarmEmail: '' } }))).toBe('SENT');

    expect(posts).toHaveLength(1);
    expect(posts[0]!.headers['content-type']).toBe('application/json');
    const body = JSON.parse(posts[0]!.body) as WebhookAlarmBody;
    expect(body).toEqual({
      type: 'log.failed',
      job: { id: '42', description: 'nightly <export> & report', groupId: '3' },
      group: { appName: 'orders', title: 'Order service' },
      log: {
        id: '1017',
        attempt: 2,
        triggerType: 'RETRY',
        dispatchOutcome: 'ACCEPTED',
        outcome: 'FAILED',
        executorInstance: 'orders-1',
        triggerMessage: 'accepted by orders-1',
        handleMessage: 'boom: <script>alert("x")</script> & \'quoted\'',
        scheduledAt: '2025-03-04T05:06:07.000Z',
        triggeredAt: '2025-03-04T05:06:07.004Z',
        finishedAt: '2025-03-04T05:06:08.250Z',
      },
    });
  });

  it('sends null for a missing group and unfinished run fields', async () => {
    const { logger } = memoryLogger();
    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: webhookUrl }, logger, new AdminMetrics());

    const event = makeEvent({
      group: null,
      log: { dispatchOutcome: 'FAILED', outcome: null, executorInstance: null, finishedAt: null },
    });
    expect(await alarms.alarm(event)).toBe('SENT');

    const body = JSON.parse(posts[0]!.body) as WebhookAlarmBody;
    expect(body.group).toBeNull();
    expect(body.log).toMatchObject({ outcome: null, executorInstance: null, finishedAt: null });
  });

  it('fails on a non-2xx webhook answer, naming the status but not the URL', async () => {
    const metrics = new AdminMetrics();
    const { logger, lines } = memoryLogger();
    webhookStatus = 500;
    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: webhookUrl }, logger, metrics);

    expect(await alarms.alarm(makeEvent())).toBe('FAILED');

    expect(posts).toHaveLength(1);
    expect(await failureCount(metrics, 'webhook')).toBe(1);
    const everything = lines.join('\n');
    expect(everything).toContain('HTTP 500');
    expect(everything).toContain('"channel":"webhook"');
    expect(everything).not.toContain('secret-token');
  });

  it('fails when one of two channels fails, still delivering through the other', async () => {
    const metrics = new AdminMetrics();
    const { logger } = memoryLogger();
    webhookStatus = 503;
    alarms = createAlarms({ smtp, alarmWebhookUrl: webhookUrl }, logger, metrics);
    expect(alarms.channels.map(channel => channel.name)).toEqual(['email', 'webhook']);

    expect(await alarms.alarm(makeEvent())).toBe('FAILED');

    expect(mails).toHaveLength(1);
    expect(posts).toHaveLength(1);
    expect(await failureCount(metrics, 'email')).toBe(0);
    expect(await failureCount(metrics, 'webhook')).toBe(1);

    webhookStatus = 200;
    expect(await alarms.alarm(makeEvent())).toBe('SENT');
    expect(mails).toHaveLength(2);
  });

  it('fails after the send timeout when the webhook never answers', async () => {
    const metrics = new AdminMetrics();
    const { logger, lines } = memoryLogger();
    webhookHangs = true;
    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: webhookUrl }, logger, metrics, {
      sendTimeoutMs: 300,
    });

    const started = performance.now();
    expect(await alarms.alarm(makeEvent())).toBe('FAILED');
    const elapsed = performance.now() - started;

    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(EVENT_CEILING_MS);
    expect(posts).toHaveLength(1);
    expect(await failureCount(metrics, 'webhook')).toBe(1);
    expect(lines.join('\n')).toContain('alarm channel \\"webhook\\" did not finish within 300 ms');
  });

  it('rejects with the reason when the caller aborts, without counting a failure', async () => {
    const metrics = new AdminMetrics();
    const { logger } = memoryLogger();
    webhookHangs = true;
    alarms = createAlarms({ smtp: undefined, alarmWebhookUrl: webhookUrl }, logger, metrics);

    const controller = new AbortController();
    const pending = alarms.alarm(makeEvent(), controller.signal);
    setTimeout(() => controller.abort(new Error('admin stopping')), 100);

    await expect(pending).rejects.toThrow('admin stopping');
    expect(await failureCount(metrics, 'webhook')).toBe(0);
  });
});
