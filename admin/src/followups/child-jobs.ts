import type { Db } from '../db/database.js';
import {
  appendHandleMessage,
  claimChildTrigger,
  findJobAndChildrenOfLog,
} from '../db/failures.repository.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Logger } from '../logger.js';

export interface ChildJobsOptions {
  db: Db;
  dispatcher: Dispatcher;
  logger: Logger;
}

/**
 * Triggers a job's child jobs when a run of it succeeds: once per successful log, and
 * for a SHARDING_BROADCAST parent once per trigger, when every shard has succeeded
 * (XXL-JOB fires the children once per successful shard; one trigger per parent trigger
 * is what a workflow step expects). The claim is a conditional update, so whichever
 * admins store the shards' results, the children fire once. The trace goes into the
 * parent log's handle message, as in XXL-JOB.
 */
export class ChildJobs {
  readonly #options: ChildJobsOptions;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: ChildJobsOptions) {
    this.#options = options;
  }

  /** Called once per stored successful result of a job that has child jobs. */
  onParentSucceeded(logId: string): void {
    const work = this.#trigger(logId).catch((error: unknown) => {
      this.#options.logger.error({ err: error, logId }, 'triggering child jobs failed');
    });
    this.#inFlight.add(work);
    void work.finally(() => this.#inFlight.delete(work));
  }

  /** Waits for child triggers under way (at shutdown, and in tests). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #trigger(logId: string): Promise<void> {
    const { db, dispatcher, logger } = this.#options;
    if (!(await claimChildTrigger(db, logId))) return;
    const found = await findJobAndChildrenOfLog(db, logId);
    if (!found) return;
    const traces: string[] = [];
    const children = found.children;
    for (const [index, childId] of found.parent.childJobIds.entries()) {
      const child = children.get(childId);
      const position = `${index + 1}/${found.parent.childJobIds.length}`;
      if (!child) {
        traces.push(`${position} job ${childId}: not found, not triggered`);
        continue;
      }
      const logs = await dispatcher.trigger(child, { triggerType: 'PARENT' });
      traces.push(
        `${position} job ${childId}: triggered (log ${logs.map(log => `${log.id} ${log.dispatchOutcome}`).join(', ')})`,
      );
    }
    logger.info({ parentLogId: found.rootLogId, children: traces }, 'child jobs triggered');
    await appendHandleMessage(db, found.rootLogId, `child jobs: ${traces.join('; ')}`);
  }
}
