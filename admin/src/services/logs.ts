import type { Db } from '../db/database.js';
import { findGroupById } from '../db/groups.repository.js';
import { findLogById, listLogs, type LogFilter } from '../db/logs.repository.js';
import { logStatus, type TriggerLog } from '../domain.js';
import { FailedPreconditionError, NotFoundError, UnavailableError } from '../domain-errors.js';
import type { ExecutorDirectory, ExecutorHandle } from '../executors/executor-directory.js';

export interface LogsServiceDependencies {
  db: Db;
  directory: ExecutorDirectory;
}

/** Trigger logs (one per run), and the executors that hold the runs still going. */
export class LogsService {
  readonly #db: Db;
  readonly #directory: ExecutorDirectory;

  constructor(dependencies: LogsServiceDependencies) {
    this.#db = dependencies.db;
    this.#directory = dependencies.directory;
  }

  async get(id: string): Promise<TriggerLog> {
    return (await findLogById(this.#db, id)) ?? logNotFound(id);
  }

  /** One page, newest first, before the (triggeredAt, id) of the previous page's last log. */
  list(
    filter: LogFilter,
    page: { before: { triggeredAt: Date; id: string } | undefined; limit: number },
  ): Promise<TriggerLog[]> {
    return listLogs(this.#db, filter, page);
  }

  /** The executor a log's run was sent to, through whichever admin holds its stream. */
  async executorOf(log: TriggerLog): Promise<ExecutorHandle> {
    if (log.executorInstance === null) {
      throw new FailedPreconditionError(`log ${log.id} was not dispatched to any executor`);
    }
    const group = await findGroupById(this.#db, log.groupId);
    const handle = group && (await this.#directory.find(group.appName, log.executorInstance));
    if (!handle) {
      throw new UnavailableError(
        `executor ${log.executorInstance} of log ${log.id} is not connected to any admin`,
      );
    }
    return handle;
  }

  /** The executor of a run that has not ended: the one a kill must reach. */
  async executorRunning(log: TriggerLog): Promise<ExecutorHandle> {
    if (logStatus(log) !== 'RUNNING') throw new FailedPreconditionError(`log ${log.id} is not running`);
    return this.executorOf(log);
  }
}

function logNotFound(id: string): never {
  throw new NotFoundError(`log ${id} does not exist`);
}
