import type { Migration } from 'kysely';
import * as initial from './2026-11-22T0001-initial.js';
import * as scheduler from './2026-11-22T0002-scheduler.js';
import * as execution from './2026-11-22T0003-execution.js';
import * as security from './2026-11-22T0004-security.js';
import * as runsInDoubt from './2026-12-06T0005-runs-in-doubt.js';
import * as takenFires from './2026-12-06T0006-taken-fires.js';
import * as executorProcess from './2026-12-06T0007-executor-process.js';
import * as eventLoopLag from './2026-12-07T0008-event-loop-lag.js';
import * as glueScripts from './2026-12-07T0009-glue-scripts.js';

/**
 * Every migration, in order. An explicit list instead of a folder scan: the set that
 * runs is what the code was reviewed with, and bundlers cannot drop a file silently.
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '2026-11-22T0001-initial': initial,
  '2026-11-22T0002-scheduler': scheduler,
  '2026-11-22T0003-execution': execution,
  '2026-11-22T0004-security': security,
  '2026-12-06T0005-runs-in-doubt': runsInDoubt,
  '2026-12-06T0006-taken-fires': takenFires,
  '2026-12-06T0007-executor-process': executorProcess,
  '2026-12-07T0008-event-loop-lag': eventLoopLag,
  '2026-12-07T0009-glue-scripts': glueScripts,
};
