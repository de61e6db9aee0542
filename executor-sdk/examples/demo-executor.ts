// The demo executor started by `npm start`: a few handlers that show the SDK's
// features. Run it against any admin with:
//   JOBSTREAM_ADMIN_ADDRESSES=127.0.0.1:8787 JOBSTREAM_APP_NAME=demo \
//   JOBSTREAM_ACCESS_TOKEN=... node --import tsx executor-sdk/examples/demo-executor.ts
import { setTimeout as delay } from 'node:timers/promises';
import { Executor } from '../src/index.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const executor = new Executor({
  adminAddresses: required('JOBSTREAM_ADMIN_ADDRESSES').split(','),
  appName: required('JOBSTREAM_APP_NAME'),
  accessToken: required('JOBSTREAM_ACCESS_TOKEN'),
  instanceName: process.env.JOBSTREAM_INSTANCE_NAME ?? 'demo-executor-1',
  dataDir: process.env.JOBSTREAM_EXECUTOR_DATA_DIR ?? 'data/demo-executor',
});

executor.register('hello', ctx => {
  ctx.log(`hello, ${ctx.param || 'world'}`);
  return Promise.resolve(`said hello to ${ctx.param || 'world'}`);
});

executor.register('countdown', async ctx => {
  const from = Number(ctx.param) || 10;
  for (let remaining = from; remaining > 0; remaining -= 1) {
    ctx.log(`${remaining}...`);
    // Passing the signal makes a kill or timeout end the wait at once.
    await delay(1_000, undefined, { signal: ctx.signal });
  }
  ctx.log('lift-off');
  return `counted down from ${from}`;
});

executor.register('flaky', () =>
  Promise.reject(new Error('this handler fails on purpose, to show failure logs')),
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    executor.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}

await executor.start();
console.log(`demo executor ${process.env.JOBSTREAM_INSTANCE_NAME ?? 'demo-executor-1'} connected`);
