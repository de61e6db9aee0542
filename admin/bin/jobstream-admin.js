#!/usr/bin/env node
// Runs the admin from its TypeScript sources (tsx compiles on load), so the admin
// needs no build step on Node 20; Node 22.6+ could strip types natively instead.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
