import { defineConfig } from 'vitest/config';
import { SOURCE_CONDITIONS } from './test/support/source-conditions.js';
import { TEST_CEILING_MS } from './test/support/ceiling.js';

export default defineConfig({
  resolve: { conditions: SOURCE_CONDITIONS },
  ssr: { resolve: { conditions: SOURCE_CONDITIONS } },
  test: {
    include: ['test/**/*.test.ts', 'executor-sdk/test/**/*.test.ts', 'proto/test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/kill-leftovers.ts'],
    // Waits carry their own ceilings (test/support/ceiling.ts); these only catch a hang
    // outside any wait. A process-level test on a loaded machine can legitimately take
    // minutes, so vitest's timeouts must not be what decides it.
    testTimeout: TEST_CEILING_MS,
    hookTimeout: TEST_CEILING_MS,
    // Test files spawn admins and executors; two cores do not gain from more workers.
    maxWorkers: 2,
    pool: 'forks',
  },
});
