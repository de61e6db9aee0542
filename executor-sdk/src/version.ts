/** Sent in Register. Kept as constants so the SDK has no runtime file reads; a test checks the version against package.json. */
export const SDK_NAME = '@jobstream/executor';
export const SDK_VERSION = '0.1.0';
