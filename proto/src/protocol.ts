/**
 * The version of the executor stream protocol (`Register.protocol_version`). The admin
 * refuses a Register speaking a version it does not know.
 */
export const PROTOCOL_VERSION = 1;

/** The most runs an executor may execute at once (`Register.capacity`). */
export const MAX_CAPACITY = 10_000;

/** The most runs an executor may hold queued beyond its capacity (`Register.pipeline_window`). */
export const MAX_PIPELINE_WINDOW = 10_000;
