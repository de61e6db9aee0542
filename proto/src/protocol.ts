/**
 * The newest version of the executor stream protocol (`Register.protocol_version`), the
 * one this SDK speaks. The admin refuses a Register speaking a version it does not know.
 */
export const PROTOCOL_VERSION = 3;

/** The oldest protocol version an admin still accepts: single messages only. */
export const MIN_PROTOCOL_VERSION = 1;

/** The first protocol version with batched envelopes (AdminBatch, ExecutorBatch). */
export const BATCHED_PROTOCOL_VERSION = 2;

/** The first protocol version whose executors hold a run request until its `start_at`. */
export const START_AT_PROTOCOL_VERSION = 3;

/**
 * The most items one batched envelope carries. A run request or result is a few hundred
 * bytes, so a full batch stays far below gRPC's default 4 MiB message limit.
 */
export const MAX_BATCH_ITEMS = 512;

/** The most runs an executor may execute at once (`Register.capacity`). */
export const MAX_CAPACITY = 10_000;

/** The most runs an executor may hold queued beyond its capacity (`Register.pipeline_window`). */
export const MAX_PIPELINE_WINDOW = 10_000;
