import path from 'node:path';
import { defineConfig } from 'vitest/config';
import { TEST_CEILING_MS } from '../../test/support/ceiling.js';
import { SOURCE_CONDITIONS } from '../../test/support/source-conditions.js';

// The SDK's tests need neither a database nor an admin process, so they can run without
// the root config's globalSetup:  npx vitest run --config executor-sdk/test/vitest.config.ts
// (They also run under the root config.) It lives in test/ so the root tsconfig covers it.
export default defineConfig({
  root: path.dirname(import.meta.dirname),
  resolve: { conditions: SOURCE_CONDITIONS },
  ssr: { resolve: { conditions: SOURCE_CONDITIONS } },
  test: {
    include: ['test/**/*.test.ts'],
    // Waits carry their own ceilings; these only catch a hang outside any wait.
    testTimeout: TEST_CEILING_MS,
    hookTimeout: TEST_CEILING_MS,
  },
});
