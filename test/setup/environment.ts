import perfHooks from 'node:perf_hooks';
import NodeEnvironment from 'jest-environment-node';

/**
 * Jest's node environment, which also stops what a test file leaves running when it ends:
 * intervals (express-rate-limit's memory store sweeps on one, unref'd, for as long as the
 * process lives) and performance observers (prom-client's default metrics observe every GC).
 * Either holds a function of the finished file, and through it the file's whole module
 * registry and every embedded database it opened, some 250 MB of WebAssembly memory each:
 * workers grew by that much per file, to several GB, since the heap Jest watches
 * (workerIdleMemoryLimit) hardly grew. Each app the tests build starts both, and the tests
 * cannot reach them to stop them.
 */
const collectGarbage = (globalThis as { gc?: () => void }).gc;

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
    global.setInterval = ((...args: Parameters<typeof setInterval>) => {
      const interval = realSetInterval(...args);
      intervals.add(interval);
      return interval;
    }) as typeof setInterval;
    global.clearInterval = (interval?: string | number | NodeJS.Timeout) => {
      if (typeof interval === 'object') intervals.delete(interval);
      realClearInterval(interval);
    };
  }

  override async setup(): Promise<void> {
    // The previous file's realm is unreachable now; collect it before this file allocates its
    // own, or the worker holds several files' databases until V8 gets round to it (the heap
    // Jest watches says nothing of their memory). `npm test` runs node with --expose-gc.
    collectGarbage?.();
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
