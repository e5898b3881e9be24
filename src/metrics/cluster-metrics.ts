import * as promClient from 'prom-client';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import { AppError } from '../http/problem';

/*
 * /metrics with WEB_CONCURRENCY > 1. Each worker counts in a registry of its own, and the
 * primary hands each connection to any worker, so a worker answering alone would give the
 * scraper a different process's counters at each scrape (a drop reads as a reset to rate()).
 * Instead the worker that takes the scrape asks the primary, the primary asks every
 * listening worker for its registry (as JSON) over IPC, adds them up with prom-client's
 * AggregatorRegistry.aggregate (each metric by its `aggregator`: counters and histograms
 * summed) and answers the text, which the worker sends.
 *
 * Not prom-client's own clusterMetrics(): its 5 s timeout is fixed, a worker that exits while
 * it is asked costs every scrape in flight that timeout, and a replaced worker's counts
 * vanish from the sum, which Prometheus reads as a counter reset and then counts the
 * survivors' whole totals as an increase (one false GatehouseRefreshTokenReuse per crash).
 * Here the primary keeps the counters and histograms a worker last reported once it exits,
 * so an instance's counters only go down when the primary restarts.
 */

/** How long the primary waits for every worker's registry: above the 2 s of the readiness gauge, below Prometheus's 10 s scrape timeout. */
export const COLLECT_TIMEOUT_MS = 4000;
/** How long a worker waits for the primary's answer: the primary's own bound, and a margin for the IPC. */
const ASK_TIMEOUT_MS = COLLECT_TIMEOUT_MS + 1000;
/** What a failed scrape tells the scraper to wait (UNAVAILABLE answers carry Retry-After). */
const RETRY_AFTER_SECONDS = 5;

const ASK = 'gatehouse:metrics:ask'; // worker → primary: the instance's metrics, please
const ANSWER = 'gatehouse:metrics:answer'; // primary → worker: { text } or { error }
const COLLECT = 'gatehouse:metrics:collect'; // primary → worker: your registry as JSON
const COLLECTED = 'gatehouse:metrics:collected'; // worker → primary: { metrics } or { error }

interface Message {
  type: string;
  id: number;
  text?: string;
  error?: string;
  metrics?: MetricObjectWithValues<MetricValue<string>>[];
}

function isMessage(message: unknown): message is Message {
  return typeof message === 'object' && message !== null && typeof (message as Message).type === 'string';
}

type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/** prom-client's aggregator functions, which aggregate() applies: exported, but missing from its type declarations. */
const { aggregators } = promClient as unknown as { aggregators: { sum(metrics: Metrics): Metrics[number] } };

/** The worker's end of its IPC channel: `process` in a node:cluster worker. */
export interface PrimaryChannel {
  send?: ((message: unknown, sendHandle: undefined, options: undefined, callback: (error: Error | null) => void) => boolean) | undefined;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

/** What the primary needs of a worker; node:cluster's `Worker` has it. */
export interface ClusterWorker {
  readonly id: number;
  send(message: unknown, sendHandle: undefined, options: undefined, callback: (error: Error | null) => void): boolean;
  isConnected(): boolean;
}

/**
 * A worker's side: answers the primary's requests with `registry`, and returns what its
 * /metrics answers: the whole instance's text, asked of the primary. Rejects with
 * UNAVAILABLE when the primary does not answer in time or some worker did not.
 */
export function joinClusterMetrics(channel: PrimaryChannel, registry: Registry, timeoutMs = ASK_TIMEOUT_MS): () => Promise<string> {
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  // A closed channel (the primary is gone) must not throw out of process.send: the scrape times out instead.
  const send = (message: Message) => channel.send?.(message, undefined, undefined, () => undefined);

  channel.on('message', (message) => {
    if (!isMessage(message)) return;
    if (message.type === COLLECT) {
      registry.getMetricsAsJSON().then(
        (metrics) => send({ type: COLLECTED, id: message.id, metrics }),
        (error: unknown) => send({ type: COLLECTED, id: message.id, error: error instanceof Error ? error.message : String(error) }),
      );
    } else if (message.type === ANSWER) {
      const asked = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.text !== undefined) asked?.resolve(message.text);
      else asked?.reject(unavailable(message.error ?? 'no answer'));
    }
  });

  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(unavailable(`the cluster primary did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle =
        <A>(then: (value: A) => void) =>
        (value: A) => {
          clearTimeout(timer);
          then(value);
        };
      waiting.set(id, { resolve: settle(resolve), reject: settle(reject) });
      send({ type: ASK, id });
    });
}

function unavailable(reason: string): AppError {
  return new AppError('UNAVAILABLE', {
    detail: `The metrics of every worker could not be collected: ${reason}`,
    retryAfter: RETRY_AFTER_SECONDS,
  });
}

/** One collection from every listening worker, shared by the scrapes that arrive while it runs. */
interface Round {
  /** Workers asked that have neither answered nor exited. */
  pending: Set<number>;
  replies: Map<number, Metrics>;
  /** Answers the sum once no worker is pending. */
  settle(): void;
  fail(reason: string): void;
}

/**
 * The primary's side, fed node:cluster's events by the server: which workers listen (only
 * they are asked: a worker still starting answers nothing), which exited, and the messages
 * they send.
 */
export function collectClusterMetrics(options: { timeoutMs?: number } = {}) {
  const timeoutMs = options.timeoutMs ?? COLLECT_TIMEOUT_MS;
  const listening = new Map<number, ClusterWorker>();
  /** Each listening worker's counters and histograms as it last reported them. */
  const lastReported = new Map<number, Metrics>();
  /** The counters and histograms of the workers that exited, summed: the instance's counts never go down. */
  let retired: Metrics = [];
  let nextId = 0;
  const rounds = new Map<number, Round>();
  let current: Promise<string> | undefined;

  function collect(): Promise<string> {
    const id = nextId++;
    return new Promise<string>((resolve, reject) => {
      const workers = [...listening.values()].filter((worker) => worker.isConnected());
      const timer = setTimeout(
        () => round.fail(`worker ${[...round.pending].join(', ')} did not answer within ${timeoutMs} ms`),
        timeoutMs,
      );
      const end = () => {
        clearTimeout(timer);
        rounds.delete(id);
      };
      const round: Round = {
        pending: new Set(workers.map((worker) => worker.id)),
        replies: new Map(),
        settle() {
          if (round.pending.size > 0 || !rounds.has(id)) return;
          end();
          const counted = [retired, ...round.replies.values()];
          // aggregate() throws on an unknown aggregator: a failed scrape, never a crashed primary.
          Promise.resolve()
            .then(() => AggregatorRegistry.aggregate(counted).metrics())
            .then(resolve, reject);
        },
        fail(reason) {
          if (!rounds.has(id)) return;
          end();
          reject(new Error(reason));
        },
      };
      rounds.set(id, round);
      for (const worker of workers) worker.send({ type: COLLECT, id } satisfies Message, undefined, undefined, () => undefined);
      round.settle();
    });
  }

  /** Concurrent scrapes (an HA pair of Prometheus) share the collection under way. */
  function instanceMetrics(): Promise<string> {
    current ??= collect().finally(() => (current = undefined));
    return current;
  }

  return {
    /** A worker listens (cluster's `listening`): from now on it is asked. */
    listening(worker: ClusterWorker): void {
      listening.set(worker.id, worker);
    },

    /** A worker exited (cluster's `exit`): its last counts are kept, and no collection waits for it. */
    exited(worker: ClusterWorker): void {
      listening.delete(worker.id);
      const last = lastReported.get(worker.id);
      lastReported.delete(worker.id);
      if (last) retired = sumCounts(retired, last);
      for (const round of [...rounds.values()]) {
        // Its reply in a round under way is in `retired` now: counted once, not twice.
        round.replies.delete(worker.id);
        round.pending.delete(worker.id);
        round.settle();
      }
    },

    /** A message from a worker (cluster's `message`); anything not about metrics is left alone. */
    message(worker: ClusterWorker, message: unknown): void {
      if (!isMessage(message)) return;
      if (message.type === ASK) {
        const answer = (reply: Pick<Message, 'text' | 'error'>) =>
          worker.send({ type: ANSWER, id: message.id, ...reply } satisfies Message, undefined, undefined, () => undefined);
        instanceMetrics().then(
          (text) => answer({ text }),
          (error: unknown) => answer({ error: error instanceof Error ? error.message : String(error) }),
        );
      } else if (message.type === COLLECTED) {
        const round = rounds.get(message.id);
        if (!round?.pending.delete(worker.id)) return;
        if (message.metrics) {
          round.replies.set(worker.id, message.metrics);
          lastReported.set(worker.id, countsOf(message.metrics));
          round.settle();
        } else {
          // Without one worker's registry the sums would drop: the scrape fails instead.
          round.fail(`worker ${worker.id} could not collect its metrics: ${message.error ?? 'no reason given'}`);
        }
      }
    },
  };
}

/** The metrics whose values only grow while their process lives: what is kept of a worker that exits. */
function countsOf(metrics: Metrics): Metrics {
  // `type` is the text's name ('counter') at run time, whatever prom-client's types say.
  return metrics.filter((metric) => ['counter', 'histogram'].includes(String(metric.type)));
}

/** Two sets of counters and histograms added up, series by series. */
function sumCounts(a: Metrics, b: Metrics): Metrics {
  const byName = new Map<string, Metrics>();
  for (const metric of [...a, ...b]) byName.set(metric.name, [...(byName.get(metric.name) ?? []), metric]);
  return [...byName.values()].map((same) => aggregators.sum(same));
}
