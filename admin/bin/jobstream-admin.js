#!/usr/bin/env node
// Runs the built admin (npm run build). In a checkout, `npm start` and the tests run the
// TypeScript sources through tsx instead; tsx is a development dependency only.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/admin/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('jobstream-admin: the admin is not built; run `npm run build` first');
  process.exit(1);
}
await import(cli.href);
