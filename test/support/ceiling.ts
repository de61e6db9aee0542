/**
 * How long a test waits for something before it calls it a hang. Tests wait on the event
 * itself (a log settling, a line printed, a session opening); these ceilings only bound
 * that wait, so they are far above what a loaded two-core machine needs and only a real
 * hang reaches them. Speed goals belong in the benchmarks, not here. (Measured: with a CPU
 * hog and other suites running, load average 35 on two cores, an admin process took over
 * 60 s to start.)
 */

/** For an event within a running system: a run starting, a result arriving, a session closing. */
export const EVENT_CEILING_MS = 60_000;

/** For a process to start (tsx compiling the admin or an executor, migrations, listening). */
export const PROCESS_START_CEILING_MS = 120_000;

/**
 * The vitest timeout of a test or hook: above the ceilings, so a hang is reported by the
 * wait that hung (naming what it waited for), not by vitest.
 */
export const TEST_CEILING_MS = 600_000;
