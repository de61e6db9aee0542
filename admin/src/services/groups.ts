import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/errors.js';
import {
  countJobsOfGroup,
  deleteGroup,
  findGroupById,
  insertGroup,
  listGroups,
  setGroupTokenHash,
  updateGroup,
} from '../db/groups.repository.js';
import type { ExecutorGroup, ExecutorGroupSpec } from '../domain.js';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../domain-errors.js';
import type { Tokens } from './tokens.js';

export interface GroupsServiceDependencies {
  db: Db;
  tokens: Tokens;
  now: () => Date;
}

/** Executor groups: the apps executors register as, and the access tokens they connect with. */
export class GroupsService {
  readonly #db: Db;
  readonly #tokens: Tokens;
  readonly #now: () => Date;

  constructor(dependencies: GroupsServiceDependencies) {
    this.#db = dependencies.db;
    this.#tokens = dependencies.tokens;
    this.#now = dependencies.now;
  }

  /** The new group and its access token, which is shown this once: only its hash is stored. */
  async create(spec: ExecutorGroupSpec): Promise<{ group: ExecutorGroup; accessToken: string }> {
    const accessToken = this.#tokens.generate();
    const group = await insertGroup(this.#db, spec, this.#tokens.hash(accessToken)).catch(appNameTaken(spec));
    return { group, accessToken };
  }

  async get(id: string): Promise<ExecutorGroup> {
    return (await findGroupById(this.#db, id)) ?? groupNotFound(id);
  }

  /** Groups by app name; `groupIds` limits them to a caller's grants (undefined: all). */
  list(appNameContains: string, groupIds: readonly string[] | undefined): Promise<ExecutorGroup[]> {
    return listGroups(this.#db, appNameContains, groupIds);
  }

  async update(id: string, spec: ExecutorGroupSpec): Promise<ExecutorGroup> {
    return (await updateGroup(this.#db, id, spec).catch(appNameTaken(spec))) ?? groupNotFound(id);
  }

  /** Only an empty group: its jobs would be left without executors. */
  async delete(id: string): Promise<void> {
    const jobs = await countJobsOfGroup(this.#db, id);
    if (jobs > 0) {
      throw new FailedPreconditionError(`executor group ${id} still has ${jobs} job(s); delete them first`);
    }
    if (!(await deleteGroup(this.#db, id))) groupNotFound(id);
  }

  /**
   * A new access token for the group. The replaced one keeps working for
   * `previousTokenGraceMs` (0: stops at once), so executors can move over without downtime.
   */
  async rotateToken(id: string, previousTokenGraceMs: number): Promise<string> {
    const accessToken = this.#tokens.generate();
    const previousValidUntil =
      previousTokenGraceMs > 0 ? new Date(this.#now().getTime() + previousTokenGraceMs) : null;
    if (!(await setGroupTokenHash(this.#db, id, this.#tokens.hash(accessToken), previousValidUntil))) {
      groupNotFound(id);
    }
    return accessToken;
  }
}

function groupNotFound(id: string): never {
  throw new NotFoundError(`executor group ${id} does not exist`);
}

/** The unique index on executor_group.app_name is what keeps two groups from sharing a name. */
function appNameTaken(spec: ExecutorGroupSpec): (error: unknown) => never {
  return error => {
    if (isUniqueViolation(error)) {
      throw new AlreadyExistsError(`"${spec.appName}" is already used by a group`, {
        field: 'appName',
        cause: error,
      });
    }
    throw error;
  };
}
