/**
 * Workspace packages resolve to their TypeScript sources in tests and development (the
 * "jobstream-source" export condition in each package.json), never to a build that may be
 * stale. Setting Vite's conditions replaces its defaults, so they are listed after ours
 * (Vite's defaultServerConditions).
 */
export const SOURCE_CONDITIONS = ['jobstream-source', 'module', 'node', 'development|production'];
