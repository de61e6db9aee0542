import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'executor-sdk/test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Test files spawn admins and executors; two cores do not gain from more workers.
    maxWorkers: 2,
    pool: 'forks',
  },
});
