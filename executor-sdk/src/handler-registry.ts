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
  /** Handler invocations that have not returned yet (abandoned ones included). */
  inUse: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Settles when a `destroy` under way is done; the next `init` waits for it. */
  destroying: Promise<void> | undefined;
}

/** Registered handlers and their init/destroy lifecycle (see {@link HandlerHooks}). */
export class HandlerRegistry {
  readonly #handlers = new Map<string, RegisteredHandler>();
  readonly #idleDestroyMs: number;
  readonly #logger: Logger | undefined;

  /**
   * The lifecycle rule: `init` runs before a handler's first run on this executor;
   * `destroy` runs once the handler has had no run in progress for `idleDestroyMs`
   * (0: never while running) and when the executor stops; a run after an idle destroy
   * initializes it again.
   */
  constructor(options: { idleDestroyMs?: number; logger?: Logger } = {}) {
    this.#idleDestroyMs = options.idleDestroyMs ?? 0;
    this.#logger = options.logger;
  }

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
    this.#handlers.set(name, {
      name,
      handler,
      hooks: { ...hooks },
      init: undefined,
      initialized: false,
      inUse: 0,
      idleTimer: undefined,
      destroying: undefined,
    });
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

  /** A run of the handler begins (before `ensureInitialized`): no idle destroy until `release`. */
  acquire(name: string): void {
    const entry = this.#handlers.get(name);
    if (entry === undefined) return;
    entry.inUse += 1;
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
  }

  /** A run of the handler has returned; the handler is destroyed if it stays idle. */
  release(name: string): void {
    const entry = this.#handlers.get(name);
    if (entry === undefined) return;
    entry.inUse = Math.max(0, entry.inUse - 1);
    if (entry.inUse > 0 || !entry.initialized || this.#idleDestroyMs <= 0) return;
    if (entry.hooks.destroy === undefined) return;
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined;
      if (entry.inUse === 0 && entry.initialized) void this.#destroy(entry, this.#logger);
    }, this.#idleDestroyMs);
    entry.idleTimer.unref();
  }

  /** Runs the handler's `init` unless it already succeeded; concurrent callers share one attempt. */
  async ensureInitialized(name: string): Promise<void> {
    const entry = this.#handlers.get(name);
    if (entry === undefined) throw new Error(`unknown handler "${name}"`);
    if (entry.destroying !== undefined) await entry.destroying;
    return this.#initialize(entry);
  }

  #initialize(entry: RegisteredHandler): Promise<void> {
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
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
      if (entry.destroying !== undefined) await entry.destroying;
      await this.#destroy(entry, logger);
    }
  }

  #destroy(entry: RegisteredHandler, logger: Logger | undefined): Promise<void> {
    if (!entry.initialized) return Promise.resolve();
    entry.initialized = false;
    const destroy = entry.hooks.destroy;
    if (destroy === undefined) return Promise.resolve();
    const destroying = (async () => {
      try {
        await destroy();
      } catch (err) {
        logger?.error({ err, handler: entry.name }, 'handler destroy hook failed');
      }
    })().finally(() => {
      if (entry.destroying === destroying) entry.destroying = undefined;
    });
    entry.destroying = destroying;
    return destroying;
  }
}
