/**
 * The import rules of the code map (README, "Code map"), checked in CI with
 * `npm run lint:imports`. A rule here is a line of that map: change both together.
 *
 * Paths are the files imports resolve to. Workspace packages resolve to their sources
 * (the "jobstream-source" export condition), so `@jobstream/proto/admin` is
 * proto/src/gen/jobstream/v1/admin.ts here.
 */
const ADMIN = '^admin/src/';
const DOMAIN_LOGIC = `${ADMIN}(scheduler|schedule|dispatch|executors|followups|alarm|housekeeping|auth)/`;
const OPERATOR_API_CONTRACT = '^proto/src/(gen/jobstream/v1/(admin|peer)\\.ts|descriptor-set\\.ts)$';
const WIRE_CONTRACT = '^proto/src/gen/';
const DOMAIN_TYPES = `${ADMIN}domain(-errors)?\\.ts$`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    // --- Packages --------------------------------------------------------------------
    {
      name: 'sdk-only-executor-contract',
      comment:
        'The executor SDK depends on the executor part of @jobstream/proto only: never on the ' +
        'operator API, the admin-to-admin protocol or the descriptor set.',
      severity: 'error',
      from: { path: '^executor-sdk/src/' },
      to: { path: OPERATOR_API_CONTRACT },
    },
    {
      name: 'sdk-not-admin',
      comment: 'The SDK ships alone: it never imports the admin.',
      severity: 'error',
      from: { path: '^executor-sdk/(src|examples)/' },
      to: { path: '^admin/' },
    },
    {
      name: 'admin-not-sdk',
      comment: 'The admin runs executors only as separate processes; it never imports the SDK.',
      severity: 'error',
      from: { path: ADMIN },
      to: { path: '^executor-sdk/' },
    },
    {
      name: 'console-is-a-browser-client',
      comment:
        'The web console reaches the admin only through AdminService (over gRPC-Web): it imports ' +
        'the operator API contract, never the admin, the SDK or the executor stream.',
      severity: 'error',
      from: { path: '^console/src/' },
      to: {
        path: [
          '^(admin|executor-sdk)/',
          '^proto/src/(gen/jobstream/v1/(executor|peer)\\.ts|descriptor-set\\.ts)$',
        ],
      },
    },
    {
      name: 'proto-is-the-bottom',
      comment: '@jobstream/proto is the contract both sides build on: it imports neither side.',
      severity: 'error',
      from: { path: '^proto/src/' },
      to: { path: '^(admin|executor-sdk)/' },
    },
    {
      name: 'packages-through-their-names',
      comment:
        'Another package is imported by its name (@jobstream/proto/...), never by a relative ' +
        'path into its folder, so the import works the same once the package is installed.',
      severity: 'error',
      from: { path: '^(admin|executor-sdk|proto|console)/src/' },
      to: { path: '^(admin|executor-sdk|proto|console)/', dependencyTypes: ['local'], pathNot: '^$1/' },
    },
    {
      name: 'declared-dependencies-only',
      comment:
        "A package's code imports only what its own package.json declares as a dependency " +
        '(not a devDependency, not something hoisted from a neighbour), so it installs alone.',
      severity: 'error',
      from: { path: '^(admin|executor-sdk|proto|console)/src/' },
      to: { dependencyTypes: ['npm-dev', 'npm-no-pkg', 'npm-unknown', 'unknown'] },
    },

    // --- Layers of the admin: transport → services → domain logic → data access → domain types
    {
      name: 'transport-not-data-access',
      comment:
        'The transports (gRPC, and the console server for browsers) call application services; ' +
        'SQL and its errors stay below them.',
      severity: 'error',
      from: { path: `${ADMIN}(grpc|console)/` },
      to: { path: `${ADMIN}db/` },
    },
    {
      name: 'services-not-transport',
      comment: 'Application services speak domain types; wire messages and gRPC statuses are the edge.',
      severity: 'error',
      from: { path: `${ADMIN}services/` },
      to: { path: [`${ADMIN}(grpc|wire|console)/`, WIRE_CONTRACT] },
    },
    {
      name: 'domain-logic-not-up',
      comment: 'Scheduling, dispatch, sessions and follow-ups never reach up into services or transport.',
      severity: 'error',
      from: { path: DOMAIN_LOGIC },
      to: { path: `${ADMIN}(grpc|services|console)/|${ADMIN}(app|cli|demo|config)\\.ts$` },
    },
    {
      name: 'domain-logic-knows-no-grpc',
      comment:
        'Below the transport, refusals are domain errors (domain-errors.ts) that the transport ' +
        'maps to statuses; only the executor sessions, which hold the streams, touch gRPC.',
      severity: 'error',
      from: { path: DOMAIN_LOGIC, pathNot: `${ADMIN}executors/` },
      to: { path: '^node_modules/(nice-grpc[^/]*|@grpc/grpc-js)/' },
    },
    {
      name: 'wire-is-mapping-only',
      comment:
        'wire/ maps between generated messages and domain shapes, for the transport and the ' +
        'executor sessions alike; it calls nothing.',
      severity: 'error',
      from: { path: `${ADMIN}wire/` },
      to: { path: ADMIN, pathNot: [`${ADMIN}wire/`, DOMAIN_TYPES, `${ADMIN}dispatch/executor-port\\.ts$`] },
    },
    {
      name: 'dispatch-speaks-domain',
      comment:
        'The dispatcher and router decide in domain terms; mapping to wire messages happens at ' +
        'the edge (the executor session and grpc/).',
      severity: 'error',
      from: { path: `${ADMIN}dispatch/` },
      to: { path: [WIRE_CONTRACT, `${ADMIN}wire/`] },
    },
    {
      name: 'data-access-is-below',
      comment: 'The data-access layer knows its tables and the domain types, nothing above.',
      severity: 'error',
      from: { path: `${ADMIN}db/` },
      to: { path: ADMIN, pathNot: [`${ADMIN}(db|util)/`, DOMAIN_TYPES] },
    },
    {
      name: 'domain-types-are-a-leaf',
      comment: 'Domain types and domain errors depend on nothing in the admin.',
      severity: 'error',
      from: { path: DOMAIN_TYPES },
      to: { path: ADMIN, pathNot: DOMAIN_TYPES },
    },
    {
      name: 'migrations-frozen',
      comment: 'A migration is frozen in time: it may not import the application.',
      severity: 'error',
      from: { path: '^migrations/' },
      to: { path: '^(admin|executor-sdk|proto)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(admin|executor-sdk|proto|console)/dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    combinedDependencies: false,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['jobstream-source', 'import', 'types', 'node', 'default'],
      extensions: ['.ts', '.tsx', '.js', '.d.ts', '.json'],
      mainFields: ['types', 'module', 'main'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
