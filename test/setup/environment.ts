import perfHooks from 'node:perf_hooks';
import NodeEnvironment from 'jest-environment-node';

const collectGarbage = (globalThis as { gc?: () => void }).gc;

/**
 * Collects the realms of the files this worker finished, before the next file allocates its
 * own; left to V8, a worker held several files' databases (the heap Jest watches says nothing
 * of their memory). Two collections, a turn of the event loop apart: the first leaves some of
 * it to finalizers. `npm test` runs node with --expose-gc, and with --no-compilation-cache:
 * V8's cache of compiled `new Function` code (zod, depd) otherwise keeps each finished realm
 * alive for many more collections.
 */
async function collectFinishedFiles(): Promise<void> {
  if (!collectGarbage) return;
  collectGarbage();
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
}

/**
 * Jest's node environment, which also stops what a test file leaves running when it ends:
 * intervals (express-rate-limit's memory store sweeps on one, unref'd, for as long as the
 * process lives) and performance observers (prom-client's default metrics observe every GC).
 * Either holds a function of the finished file, and through it the file's whole module
 * registry and every embedded database it opened, each a WebAssembly memory of 128 MB and
 * more: workers grew by that much per file, to several GB, while the heap Jest watches
 * (workerIdleMemoryLimit) hardly grew. Each app the tests build starts both, and the tests
 * cannot reach them to stop them.
 */
export default class GatehouseEnvironment extends NodeEnvironment {
  private readonly intervals = new Set<NodeJS.Timeout>();
  private readonly observers = new Set<perfHooks.PerformanceObserver>();
  private readonly originalObserver = perfHooks.PerformanceObserver;

  constructor(...args: ConstructorParameters<typeof NodeEnvironment>) {
    super(...args);
    const { intervals } = this;
    const global = this.global as unknown as typeof globalThis;
    const realSetInterval = global.setInterval;
    const realClearInterval = global.clearInterval;
    global.setInterval = (...args: Parameters<typeof setInterval>) => {
      const interval = realSetInterval(...args);
      intervals.add(interval);
      return interval;
    };
    global.clearInterval = (interval?: string | number | NodeJS.Timeout) => {
      if (typeof interval === 'object') intervals.delete(interval);
      realClearInterval(interval);
    };
  }

  override async setup(): Promise<void> {
    await collectFinishedFiles();
    await super.setup();
    // perf_hooks is the worker's own module, shared by every file: the file's modules see
    // this class while the file runs.
    const { observers } = this;
    perfHooks.PerformanceObserver = class extends this.originalObserver {
      constructor(callback: ConstructorParameters<typeof perfHooks.PerformanceObserver>[0]) {
        super(callback);
        observers.add(this);
      }
    };
  }

  override async teardown(): Promise<void> {
    perfHooks.PerformanceObserver = this.originalObserver;
    for (const observer of this.observers) observer.disconnect();
    this.observers.clear();
    for (const interval of this.intervals) clearInterval(interval);
    this.intervals.clear();
    await super.teardown();
  }
}
