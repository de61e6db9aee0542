/**
 * The version of the executor stream protocol (`Register.protocol_version`). The admin
 * refuses a Register speaking a version it does not know.
 */
export const PROTOCOL_VERSION = 1;
