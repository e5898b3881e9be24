/**
 * The dependency rules of docs/ARCHITECTURE.md, held by dependency-cruiser (`npm run lint:deps`).
 * Each rule says why; a new folder that fits none of them needs no change here.
 */

/** Folders that implement a capability of CONTRACT.md. Infrastructure (db/, http/) must not know them. */
const FEATURES =
  '^src/(access|admin|audit|auth|health|maintenance|metrics|openapi|passwords|recovery|roles|sessions|signature|tokens|users)/';

/** What the published SDKs (gatehouse/verify, /client, /signer) ship: their own folders… */
const SDK = '^src/(verify|client)/|^src/signature/signer[.]ts$';
/** …and the dependency-free modules the service shares with them, so each rule lives once. */
const SHARED_WITH_SDK = '^src/(problems/|tokens/(compact-jws|claims|bearer)[.]ts$|uuid[.]ts$)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A module cycle makes load order matter and every change in it ripple; break it with an injected function.',
      from: { path: '^(src|scripts|migrations)/' },
      to: { circular: true },
    },
    {
      name: 'no-folder-cycles',
      severity: 'error',
      scope: 'folder',
      comment: 'Folders form a layered graph: if auth/ uses users/, users/ does not use auth/.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'db-imports-no-feature',
      severity: 'error',
      comment: 'db/ is the database and its migrations: it knows tables, not the features that use them.',
      from: { path: '^src/db/' },
      to: { path: [FEATURES, '^src/(app|server)[.]ts$'] },
    },
    {
      name: 'http-imports-no-feature',
      severity: 'error',
      comment: 'http/ is the plumbing every route shares (errors, ids, limits, validation): features plug into it, never the reverse.',
      from: { path: '^src/http/' },
      to: { path: [FEATURES, '^src/(app|server)[.]ts$'] },
    },
    {
      name: 'features-do-not-import-access',
      severity: 'error',
      comment: 'Routes declare the permission they need; app.ts wires authentication and RBAC. No feature reaches into access/.',
      from: { path: FEATURES, pathNot: '^src/(access|openapi)/' },
      to: { path: '^src/access/' },
    },
    {
      name: 'sdk-imports-no-server',
      severity: 'error',
      comment: 'The SDKs ship to other services: they may use each other and the shared dependency-free modules, nothing of the server.',
      from: { path: SDK },
      to: { path: '^src/', pathNot: [SDK, SHARED_WITH_SDK] },
    },
    {
      name: 'shared-with-sdk-stays-leaf',
      severity: 'error',
      comment: 'What the SDKs share with the service must stay dependency-free, or the SDKs would drag the server in through it.',
      from: { path: SHARED_WITH_SDK },
      to: { path: '^src/', pathNot: SHARED_WITH_SDK },
    },
    {
      name: 'no-sdk-internals',
      severity: 'error',
      comment: 'The service and scripts use an SDK through its entry point, as another service would.',
      from: { path: '^(src|scripts)/', pathNot: '^src/(verify|client)/' },
      to: { path: '^src/(verify|client)/', pathNot: '^src/verify/index[.]ts$|^src/client/client[.]ts$' },
    },
    {
      name: 'server-does-not-import-scripts-or-tests',
      severity: 'error',
      comment: 'src/ is what ships; scripts and tests build on it, not the other way round.',
      from: { path: '^src/' },
      to: { path: '^(scripts|test)/' },
    },
    {
      name: 'no-dev-dependencies-at-run-time',
      severity: 'error',
      comment: 'The runtime image installs production dependencies only (npm ci --omit=dev).',
      from: { path: '^(src|migrations)/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'operator-scripts-run-on-production-dependencies',
      severity: 'error',
      comment:
        'npm run migrate, keys:*, user:*, prune and mail:show run from dist/ in the runtime image (bin/gatehouse-script.cjs), where only production dependencies are installed.',
      from: { path: '^scripts/(cli|migrate|keys-[a-z]+|user-[a-z]+|prune|mail-show)[.]ts$' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve fails at run time.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: ['^(src|scripts|migrations)/', '^node_modules/'],
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
