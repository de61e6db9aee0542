import type { ExecutorSession } from './executor-session.js';

/**
 * The executor streams connected to this admin process, by app name and instance name.
 * An instance that connects again replaces its previous session; the caller closes
 * the one returned.
 */
export class SessionRegistry {
  readonly #byApp = new Map<string, Map<string, ExecutorSession>>();
  #version = 0;

  /** Changes whenever a session is added or removed (lists made before are stale). */
  get version(): number {
    return this.#version;
  }

  add(session: ExecutorSession): ExecutorSession | undefined {
    let instances = this.#byApp.get(session.appName);
    if (!instances) {
      instances = new Map();
      this.#byApp.set(session.appName, instances);
    }
    const previous = instances.get(session.instanceName);
    instances.set(session.instanceName, session);
    this.#version += 1;
    return previous;
  }

  /** Removes the session only if it is still the current one for its instance. */
  remove(session: ExecutorSession): void {
    const instances = this.#byApp.get(session.appName);
    if (instances?.get(session.instanceName) === session) {
      instances.delete(session.instanceName);
      this.#version += 1;
      if (instances.size === 0) this.#byApp.delete(session.appName);
    }
  }

  get(appName: string, instanceName: string): ExecutorSession | undefined {
    return this.#byApp.get(appName)?.get(instanceName);
  }

  /** The open sessions of a group, in a stable order (by instance name). */
  list(appName: string): ExecutorSession[] {
    const instances = this.#byApp.get(appName);
    if (!instances) return [];
    return [...instances.values()]
      .filter(session => !session.isClosed)
      .sort((a, b) => (a.instanceName < b.instanceName ? -1 : a.instanceName > b.instanceName ? 1 : 0));
  }

  all(): ExecutorSession[] {
    return [...this.#byApp.values()].flatMap(instances => [...instances.values()]);
  }

  get size(): number {
    let count = 0;
    for (const instances of this.#byApp.values()) count += instances.size;
    return count;
  }
}
