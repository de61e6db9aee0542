export { durationFromMs, durationToMs, positiveDurationMs } from './time.js';
export { APP_NAME_PATTERN, APP_NAME_RULE, INSTANCE_NAME_PATTERN, INSTANCE_NAME_RULE } from './names.js';
export { runKey } from './run-key.js';
export {
  BATCHED_PROTOCOL_VERSION,
  START_AT_PROTOCOL_VERSION,
  MAX_BATCH_ITEMS,
  MAX_CAPACITY,
  MAX_PIPELINE_WINDOW,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
} from './protocol.js';
export { encodeAsGiven } from './encode-as-given.js';
