#!/usr/bin/env -S node --max-semi-space-size=64
// Runs the built admin (npm run build). In a checkout, `npm start` and the tests run the
// TypeScript sources through tsx instead; tsx is a development dependency only.
//
// The flag on the first line: a busy admin allocates short-lived objects per run, and with
// Node's default 16 MiB semi-spaces it scavenges often and promotes much of it to the old
// generation. 64 MiB semi-spaces cut its CPU per scheduled run by about 15 % (npm run
// bench, throughput-1: 0.076-0.083 ms against 0.066-0.067 ms per result) for at most about
// 100 MiB more memory. V8 reads the flag only at start, so it cannot be set from code; run
// `node admin/bin/jobstream-admin.js` by hand and it is not applied (pass it yourself).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/admin/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('jobstream-admin: the admin is not built; run `npm run build` first');
  process.exit(1);
}
await import(cli.href);
