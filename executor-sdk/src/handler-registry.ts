import type { Handler, HandlerHooks } from './handler.js';
import type { Logger } from './logger.js';

/** The handler name rules match the admin's job handler field: no blanks, bounded length. */
const HANDLER_NAME_PATTERN = /^[^\s]{1,255}$/;

interface RegisteredHandler {
  readonly name: string;
  readonly handler: Handler;
  readonly hooks: HandlerHooks;
  /** Settles when `init` is done; reset when it failed, so the next run retries. */
  init: Promise<void> | undefined;
  initialized: boolean;
}

/** Registered handlers and their init/destroy lifecycle (see {@link HandlerHooks}). */
export class HandlerRegistry {
  readonly #handlers = new Map<string, RegisteredHandler>();

  add(name: string, handler: Handler, hooks: HandlerHooks = {}): void {
    const problems: string[] = [];
    if (typeof name !== 'string' || !HANDLER_NAME_PATTERN.test(name)) {
      problems.push('name must be a non-empty string without whitespace, at most 255 characters');
    } else if (this.#handlers.has(name)) {
      problems.push(`a handler named "${name}" is already registered`);
    }
    if (typeof handler !== 'function') problems.push('handler must be a function');
    if (typeof hooks !== 'object' || hooks === null) {
      problems.push('hooks must be an object');
    } else {
      if (hooks.init !== undefined && typeof hooks.init !== 'function')
        problems.push('hooks.init must be a function');
      if (hooks.destroy !== undefined && typeof hooks.destroy !== 'function') {
        problems.push('hooks.destroy must be a function');
      }
    }
    if (problems.length > 0) throw new TypeError(`invalid handler registration: ${problems.join('; ')}`);
    this.#handlers.set(name, { name, handler, hooks: { ...hooks }, init: undefined, initialized: false });
  }

  has(name: string): boolean {
    return this.#handlers.has(name);
  }

  names(): string[] {
    return [...this.#handlers.keys()];
  }

  get(name: string): Handler | undefined {
    return this.#handlers.get(name)?.handler;
  }

  /** Runs the handler's `init` unless it already succeeded; concurrent callers share one attempt. */
  ensureInitialized(name: string): Promise<void> {
    const entry = this.#handlers.get(name);
    if (entry === undefined) return Promise.reject(new Error(`unknown handler "${name}"`));
    if (entry.initialized) return Promise.resolve();
    const init = entry.hooks.init;
    if (init === undefined) {
      entry.initialized = true;
      return Promise.resolve();
    }
    if (entry.init === undefined) {
      const attempt: Promise<void> = (async () => {
        await init();
        entry.initialized = true;
      })().finally(() => {
        // Cleared only after it settled, so a synchronous throw cannot leave a stale rejection behind.
        if (entry.init === attempt) entry.init = undefined;
      });
      entry.init = attempt;
    }
    return entry.init;
  }

  /** Runs `destroy` of every initialized handler; failures are logged, not thrown. */
  async destroyAll(logger: Logger): Promise<void> {
    for (const entry of this.#handlers.values()) {
      if (!entry.initialized) continue;
      entry.initialized = false;
      const destroy = entry.hooks.destroy;
      if (destroy === undefined) continue;
      try {
        await destroy();
      } catch (err) {
        logger.error({ err, handler: entry.name }, 'handler destroy hook failed');
      }
    }
  }
}
