/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Type checking is `tsc --noEmit` in `npm test`; here we only strip types, which is fast.
  transform: { '^.+\\.ts$': 'ts-jest' },
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
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
