/**
 * Name rules both ends of the executor stream apply, so an SDK refuses at construction
 * what the admin would refuse at Register.
 */

/** An executor group's app name: 1 to 64 letters, digits, '.', '_' or '-'. */
export const APP_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const APP_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-'";

/** An executor instance's name (a host:port is one): 1 to 128 letters, digits, '.', '_', ':' or '-'. */
export const INSTANCE_NAME_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const INSTANCE_NAME_RULE = "1 to 128 letters, digits, '.', '_', ':' or '-'";
