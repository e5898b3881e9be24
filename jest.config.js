// For the workers Jest forks (and the processes they start), read by glibc at their start:
// allocations of 128 KB and more are mapped and unmapped on their own, so the memory of a
// finished file's embedded databases goes back to the system instead of staying in the
// process's heap for good; and two malloc arenas, not eight per core.
process.env.MALLOC_MMAP_THRESHOLD_ ??= '131072';
process.env.MALLOC_ARENA_MAX ??= '2';

/** @type {import('jest').Config} */
module.exports = {
  // Jest's node environment that also stops the intervals and observers a file leaves running.
  testEnvironment: '<rootDir>/test/setup/environment.ts',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Type checking is `tsc --noEmit` in `npm test`; here swc only strips types, file by file
  // (tsconfig has isolatedModules), several times faster than ts-jest on a cold cache.
  // The options match tsconfig.json: ES2022 classes (define semantics), CommonJS.
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022', transform: { useDefineForClassFields: true } },
        module: { type: 'commonjs' },
      },
    ],
  },
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  // Every response a test receives from a Gatehouse app through supertest is checked against
  // the OpenAPI document (status, content type, body), so the two cannot drift apart.
  setupFilesAfterEnv: ['<rootDir>/test/setup/validate-responses.ts'],
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  testTimeout: 30000,
  // Jest's default is one worker fewer than the cores: on a 2-core machine, a single worker.
  // The suites spend much of their time waiting on databases and child processes, so two overlap well.
  maxWorkers: 2,
  // Each test file loads the app's modules afresh, and a worker keeps the old ones (and the
  // embedded databases' WebAssembly memory with them) for good: by the last suites a worker
  // held 500 MB of heap and 5 GB resident, and took so long to exit that Jest killed it.
  // A worker whose heap passes this after a file is replaced by a fresh one.
  workerIdleMemoryLimit: '300MB',
};
