// An executor process of the chaos soak. Its handler appends one fsync'd JSON line to
// CHAOS_RECORD_FILE when a run starts and one when it ends, so the soak can check what
// really ran against what the admins recorded, whatever the SDK believed.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { createJsonLogger, Executor, type HandlerContext } from '../../executor-sdk/src/index.js';
import type { ChaosParam, RunRecordLine } from './record.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const instanceName = required('CHAOS_INSTANCE_NAME');
const recordFd = openSync(required('CHAOS_RECORD_FILE'), 'a');

function record(
  ev: RunRecordLine['ev'],
  ctx: HandlerContext,
  end?: Pick<RunRecordLine, 'outcome' | 'cancelReason'>,
): void {
  const line: RunRecordLine = {
    ev,
    logId: ctx.logId,
    attempt: ctx.attempt,
    jobId: ctx.jobId,
    shardIndex: ctx.shardIndex,
    shardTotal: ctx.shardTotal,
    at: Date.now(),
    pid: process.pid,
    executor: instanceName,
    ...end,
  };
  writeSync(recordFd, `${JSON.stringify(line)}\n`);
  // Durable before the handler goes on: a SIGKILL right after must not lose the line.
  fsyncSync(recordFd);
}

function parseParam(raw: string): ChaosParam {
  const parsed = JSON.parse(raw) as Partial<ChaosParam>;
  return { mode: parsed.mode ?? 'ok', ms: parsed.ms ?? 0 };
}

const capacity = process.env.CHAOS_CAPACITY ? Number(process.env.CHAOS_CAPACITY) : undefined;
const executor = new Executor({
  adminAddresses: required('CHAOS_ADMIN_ADDRESSES').split(','),
  appName: required('CHAOS_APP_NAME'),
  accessToken: required('CHAOS_ACCESS_TOKEN'),
  instanceName,
  dataDir: required('CHAOS_DATA_DIR'),
  logger: createJsonLogger('info', line => process.stdout.write(line)),
  shutdownGracePeriodMs: Number(process.env.CHAOS_SHUTDOWN_GRACE_MS ?? '3000'),
  ...(capacity === undefined ? {} : { capacity }),
});

executor.register('chaos', async ctx => {
  const param = parseParam(ctx.param);
  record('start', ctx);
  if (param.mode === 'stubborn') {
    await delay(param.ms);
    record('end', ctx, {
      outcome: ctx.signal.aborted ? 'ignored-abort' : 'succeeded',
      ...(ctx.cancelReason ? { cancelReason: ctx.cancelReason } : {}),
    });
    return 'stubborn: done';
  }
  try {
    await delay(param.ms, undefined, { signal: ctx.signal });
  } catch (error) {
    record('end', ctx, { outcome: 'aborted', cancelReason: ctx.cancelReason ?? 'unknown' });
    throw error;
  }
  if (param.mode === 'fail' || (param.mode === 'failFirst' && ctx.attempt === 1)) {
    record('end', ctx, { outcome: 'failed' });
    throw new Error(`failed on purpose (attempt ${ctx.attempt})`);
  }
  record('end', ctx, { outcome: 'succeeded' });
  return `ok ${ctx.logId}/${ctx.attempt}`;
});

process.on('SIGTERM', () => {
  executor.stop().then(
    () => {
      closeSync(recordFd);
      process.exit(0);
    },
    () => process.exit(1),
  );
});

await executor.start();
process.stdout.write(`${JSON.stringify({ event: 'ready' })}\n`);
