import type { Migration } from 'kysely';
/**
 * Every migration, in order. An explicit list instead of a folder scan: the set that
 * runs is what the code was reviewed with, and bundlers cannot drop a file silently.
 */
export declare const migrations: Readonly<Record<string, Migration>>;
