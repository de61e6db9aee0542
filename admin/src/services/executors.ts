import type { Db } from '../db/database.js';
import { listPresence } from '../db/registry.repository.js';
import type { ExecutorPresence } from '../domain.js';

export interface ExecutorsServiceDependencies {
  db: Db;
  now: () => Date;
}

/** The executors connected to the cluster, whichever admin holds their streams. */
export class ExecutorsService {
  readonly #db: Db;
  readonly #now: () => Date;

  constructor(dependencies: ExecutorsServiceDependencies) {
    this.#db = dependencies.db;
    this.#now = dependencies.now;
  }

  /**
   * Live executors of `appName` (undefined: of every app), limited to `appNames` (a
   * caller's grants; undefined: all).
   */
  listConnected(
    appName: string | undefined,
    appNames: readonly string[] | undefined,
  ): Promise<ExecutorPresence[]> {
    return listPresence(this.#db, appName, this.#now(), appNames);
  }
}
