import { AppError } from '../../src/http/problem';
import { type ClusterWorker, collectClusterMetrics, joinClusterMetrics, type PrimaryChannel } from '../../src/metrics/cluster-metrics';
import { createMetrics, type Metrics } from '../../src/metrics/metrics';

// The IPC between the cluster primary and its workers (src/metrics/cluster-metrics.ts), with
// the channels replaced by in-process ones that copy each message as `serialization:
// 'advanced'` does. A real cluster answering /metrics is test/server/cluster.metrics.test.ts.

type Listener = (message: unknown) => void;
type Primary = ReturnType<typeof collectClusterMetrics>;

/** One worker: its own Metrics, and both ends of its channel to the primary. */
class FakeWorker implements ClusterWorker {
  private readonly listeners: Listener[] = [];
  /** A stuck worker: what the primary sends it is never read. */
  stuck = false;
  connected = true;
  readonly metrics: Metrics;
  /** What this worker's /metrics answers. */
  readonly scrape: () => Promise<string>;

  constructor(
    readonly id: number,
    primary: Primary,
    gauges: { databaseUp: boolean; backlogAge: number },
  ) {
    this.metrics = createMetrics({
      readiness: () => Promise.resolve({ database: gauges.databaseUp }),
      mailBacklogAge: () => Promise.resolve(gauges.backlogAge),
    });
    const channel: PrimaryChannel = {
      send: (message, _handle, _options, callback) => {
        setImmediate(() => {
          primary.message(this, structuredClone(message));
          callback(null);
        });
        return true;
      },
      on: (_event, listener) => this.listeners.push(listener),
    };
    this.scrape = joinClusterMetrics(channel, this.metrics.registry);
  }

  send(message: unknown, _handle: undefined, _options: undefined, callback: (error: Error | null) => void): boolean {
    if (!this.connected) {
      setImmediate(() => callback(new Error('channel closed')));
      return false;
    }
    setImmediate(() => {
      if (!this.stuck) for (const listener of this.listeners) listener(structuredClone(message));
      callback(null);
    });
    return true;
  }

  isConnected(): boolean {
    return this.connected;
  }
}

/** The value of one sample line of the Prometheus text, undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}} ` : `${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function cluster(
  options: { timeoutMs?: number } = {},
  gauges = [
    { databaseUp: true, backlogAge: 3 },
    { databaseUp: true, backlogAge: 3 },
  ],
) {
  const primary = collectClusterMetrics(options);
  const workers = gauges.map((g, i) => new FakeWorker(i + 1, primary, g));
  for (const worker of workers) primary.listening(worker);
  return { primary, workers: workers as [FakeWorker, FakeWorker] };
}

describe('/metrics across the workers of a cluster', () => {
  it('when each worker counted its own requests, then either worker answers the sums of both', async () => {
    const { workers } = cluster();
    const [a, b] = workers;
    a.metrics.reuseDetected.inc(2);
    b.metrics.reuseDetected.inc(3);
    a.metrics.lockouts.inc();

    const texts = [await a.scrape(), await b.scrape(), await a.scrape()];

    for (const text of texts) {
      expect(sample(text, 'gatehouse_refresh_token_reuse_detected_total')).toBe(5);
      expect(sample(text, 'gatehouse_account_lockouts_total')).toBe(1);
    }
    // One series per metric, not one per worker.
    expect(texts[0]!.split('\n').filter((l) => l.startsWith('# TYPE gatehouse_refresh_token_reuse_detected_total'))).toHaveLength(1);
  });

  it('when the workers see different gauges, then each gauge combines by its aggregator', async () => {
    const { workers } = cluster({}, [
      { databaseUp: true, backlogAge: 3 },
      { databaseUp: false, backlogAge: 7 },
    ]);

    const text = await workers[0].scrape();

    // Down when any worker finds it down; the oldest age; the process start time is no one worker's.
    expect(sample(text, 'gatehouse_dependency_up', 'dependency="database"')).toBe(0);
    expect(sample(text, 'gatehouse_mail_outbox_oldest_unsent_age_seconds')).toBe(7);
    expect(sample(text, 'process_start_time_seconds')).toBeUndefined();
  });

  it('when a worker could not read a gauge (NaN), then NaN arrives and wins the max', async () => {
    const { workers } = cluster({}, [
      { databaseUp: true, backlogAge: 3 },
      { databaseUp: true, backlogAge: Number.NaN },
    ]);

    const text = await workers[0].scrape();

    expect(sample(text, 'gatehouse_mail_outbox_oldest_unsent_age_seconds')).toBeNaN();
  });

  it('when a worker exits after it was counted, then its counts stay in the sums and they never go down', async () => {
    const { primary, workers } = cluster();
    const [a, b] = workers;
    a.metrics.reuseDetected.inc(2);
    b.metrics.reuseDetected.inc(3);
    expect(sample(await a.scrape(), 'gatehouse_refresh_token_reuse_detected_total')).toBe(5);

    b.connected = false;
    primary.exited(b);
    const replacement = new FakeWorker(3, primary, { databaseUp: true, backlogAge: 3 });
    primary.listening(replacement);
    replacement.metrics.reuseDetected.inc();

    const afterExit = await replacement.scrape();
    expect(sample(afterExit, 'gatehouse_refresh_token_reuse_detected_total')).toBe(6);
    // A second exit adds to what the first left, not replaces it.
    a.connected = false;
    primary.exited(a);
    expect(sample(await replacement.scrape(), 'gatehouse_refresh_token_reuse_detected_total')).toBe(6);
  });

  it('when a worker does not answer, then the scrape fails with UNAVAILABLE after the timeout instead of hanging', async () => {
    const { workers } = cluster({ timeoutMs: 50 });
    workers[1].stuck = true;

    const failure = await workers[0].scrape().catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(AppError);
    expect(failure).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryAfter: 5 });
    expect((failure as AppError).detail).toMatch(/worker 2 did not answer within 50 ms/);
    // The next scrape, once the worker answers again, succeeds.
    workers[1].stuck = false;
    expect(sample(await workers[0].scrape(), 'gatehouse_refresh_token_reuse_detected_total')).toBe(0);
  });

  it('when a worker exits while it is asked, then the scrape answers without it, not after the timeout', async () => {
    const { primary, workers } = cluster({ timeoutMs: 60_000 });
    const [a, b] = workers;
    a.metrics.lockouts.inc();
    b.stuck = true;

    const scraped = a.scrape();
    await new Promise((resolve) => setTimeout(resolve, 20));
    b.connected = false;
    primary.exited(b);

    expect(sample(await scraped, 'gatehouse_account_lockouts_total')).toBe(1);
  });

  it('when the primary does not answer, then the scrape fails with UNAVAILABLE after its own timeout', async () => {
    const registry = createMetrics().registry;
    const silent: PrimaryChannel = { send: () => true, on: () => undefined };

    const failure = await joinClusterMetrics(silent, registry, 30)().catch((error: unknown) => error);

    expect(failure).toMatchObject({ code: 'UNAVAILABLE', status: 503 });
  });

  it('when a worker sends a message not about metrics, then the primary leaves it alone', () => {
    const { primary, workers } = cluster();

    for (const message of [null, 'text', 42, { cmd: 'other' }, { type: 'gatehouse:metrics:collected', id: 99 }]) {
      expect(() => primary.message(workers[0], message)).not.toThrow();
    }
  });
});
