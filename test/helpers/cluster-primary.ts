import { Writable } from 'node:stream';
import { superviseWorkers, type SupervisorOptions, type WorkerHandle } from '../../src/cluster';
import { createLogger } from '../../src/logger';

/** One line the primary logged. */
export interface PrimaryLogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A worker that records the signals it is sent; worker n has pid 1000 + n. */
export class FakeWorker implements WorkerHandle {
  readonly signals: NodeJS.Signals[] = [];
  readonly process;
  constructor(readonly id: number) {
    this.process = { pid: 1000 + id, kill: (signal: NodeJS.Signals = 'SIGTERM') => this.signals.push(signal) > 0 };
  }
}

/**
 * The primary of WEB_CONCURRENCY > 1 (src/cluster.ts) over fake workers, fed cluster events by
 * hand: two workers, a clock the test moves (it stands still until `wait`), and its log in
 * memory. `options` override the supervisor's.
 */
export function fakePrimary(options: Partial<SupervisorOptions<FakeWorker>> = {}) {
  const lines: PrimaryLogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as PrimaryLogLine);
      done();
    },
  });
  const forked: FakeWorker[] = [];
  const exits: number[] = [];
  let time = 0;
  const supervisor = superviseWorkers<FakeWorker>({
    workers: 2,
    fork: () => {
      const worker = new FakeWorker(forked.length + 1);
      forked.push(worker);
      return worker;
    },
    logger: createLogger('info', destination),
    stopTimeoutMs: 15_000,
    exit: (code) => exits.push(code),
    minUptimeMs: 10_000,
    maxEarlyExits: 3,
    now: () => time,
    ...options,
  });
  return {
    supervisor,
    forked,
    exits,
    lines,
    /** Moves the clock on. */
    wait: (ms: number) => (time += ms),
    /** Starts the workers and lets each listen. */
    ready() {
      supervisor.start();
      for (const worker of [...forked]) supervisor.listening(worker);
    },
  };
}
