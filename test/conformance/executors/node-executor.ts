// The conformance executor for the Node SDK (test/conformance/README.md).
// Configured by CONFORMANCE_* environment variables; prints one JSON line per event on stdout.
import { setTimeout as delay } from 'node:timers/promises';
import { Executor, type HandlerContext, type ScriptKind } from '../../../executor-sdk/src/index.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const emit = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);

const started = (ctx: HandlerContext) =>
  emit('run-started', {
    logId: ctx.logId,
    attempt: ctx.attempt,
    handler: ctx.handlerName,
    shardIndex: ctx.shardIndex,
    shardTotal: ctx.shardTotal,
  });

const optional = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
const capacity = optional('CONFORMANCE_CAPACITY');
const shutdownGracePeriodMs = optional('CONFORMANCE_SHUTDOWN_GRACE_MS');
const scriptKinds = (process.env.CONFORMANCE_SCRIPT_KINDS ?? '').split(',').filter(kind => kind !== '');
const killGraceMs = optional('CONFORMANCE_SCRIPT_KILL_GRACE_MS');
const pythonInterpreter = process.env.CONFORMANCE_PYTHON_INTERPRETER;

const executor = new Executor({
  adminAddresses: required('CONFORMANCE_ADMIN_ADDRESSES'),
  appName: required('CONFORMANCE_APP_NAME'),
  accessToken: required('CONFORMANCE_ACCESS_TOKEN'),
  instanceName: required('CONFORMANCE_INSTANCE_NAME'),
  dataDir: required('CONFORMANCE_DATA_DIR'),
  ...(capacity === undefined ? {} : { capacity }),
  ...(shutdownGracePeriodMs === undefined ? {} : { shutdownGracePeriodMs }),
  ...(scriptKinds.length === 0
    ? {}
    : {
        scripts: {
          kinds: scriptKinds as ScriptKind[],
          ...(pythonInterpreter ? { interpreters: { PYTHON: pythonInterpreter } } : {}),
          ...(killGraceMs === undefined ? {} : { killGraceMs }),
        },
      }),
});

executor.register('echo', ctx => {
  started(ctx);
  return `echo: ${ctx.param}`;
});

executor.register('fail', ctx => {
  started(ctx);
  throw new Error(ctx.param || 'failed on purpose');
});

executor.register('sleep', async ctx => {
  started(ctx);
  ctx.log('sleeping');
  await delay(Number(ctx.param || '60000'), undefined, { signal: ctx.signal });
  ctx.log('woke up');
  emit('run-finishing', { logId: ctx.logId, attempt: ctx.attempt, handler: 'sleep' });
  return 'slept';
});

executor.register('ignore-abort', async ctx => {
  started(ctx);
  await delay(Number(ctx.param || '10000'));
  emit('run-finishing', { logId: ctx.logId, attempt: ctx.attempt, handler: 'ignore-abort' });
  return 'finally done';
});

executor.register('log-lines', ctx => {
  started(ctx);
  const count = Number(ctx.param || '3');
  for (let line = 1; line <= count; line += 1) ctx.log(`line ${line} of ${count}`);
  return `logged ${count} lines`;
});

process.on('SIGTERM', () => {
  executor.stop().then(
    () => {
      emit('stopped');
      process.exit(0);
    },
    (error: unknown) => {
      emit('stop-failed', { error: String(error) });
      process.exit(1);
    },
  );
});

await executor.start();
emit('ready');
