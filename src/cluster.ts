import type { Logger } from './logger';

/** What the supervisor needs of a worker; node:cluster's `Worker` has it. */
export interface WorkerHandle {
  readonly id: number;
  readonly process: { readonly pid?: number | undefined; kill(signal?: NodeJS.Signals): boolean };
}

export interface SupervisorOptions<W extends WorkerHandle> {
  /** How many workers to keep running (`WEB_CONCURRENCY`). */
  workers: number;
  /** Starts one worker (`cluster.fork`). */
  fork: () => W;
  logger: Pick<Logger, 'info' | 'error' | 'fatal'>;
  /**
   * How long the workers get to exit after the stop signal before they are killed: their own
   * `SHUTDOWN_TIMEOUT` plus time to close the pool. A backstop for a hung worker only.
   */
  stopTimeoutMs: number;
  /** Ends the primary (the server flushes its log first). */
  exit: (code: number) => void;
  /** A worker that exits sooner than this after it started listening (or before) exited early. */
  minUptimeMs?: number;
  /** This many early exits in a row is a crash loop: the primary stops instead of forking on. */
  maxEarlyExits?: number;
  now?: () => number;
}

/**
 * The primary's side of `WEB_CONCURRENCY`, fed node:cluster's events by the server: keeps
 * `workers` workers running, replaces one that exits, stops every worker on a signal and
 * exits once they all have.
 */
export interface Supervisor<W extends WorkerHandle> {
  /** Forks the first workers. */
  start(): void;
  /** A worker's server is listening (cluster's `listening`). */
  listening(worker: W): void;
  /** A worker has exited (cluster's `exit`): `code` is null when a signal ended it. */
  exited(worker: W, code: number | null, signal: string | null): void;
  /** SIGTERM or SIGINT reached the primary: passes it on to every worker, exits 0 once all have exited. */
  stop(signal: NodeJS.Signals): void;
  /** SIGHUP reached the primary: passes it on to every worker (each re-reads KEYS_DIR); nothing stops. */
  reload(signal: NodeJS.Signals): void;
}

interface Running<W> {
  worker: W;
  listeningSince?: number;
}

export function superviseWorkers<W extends WorkerHandle>(options: SupervisorOptions<W>): Supervisor<W> {
  const { logger, workers: wanted } = options;
  const minUptimeMs = options.minUptimeMs ?? 10_000;
  const maxEarlyExits = options.maxEarlyExits ?? 5;
  const now = options.now ?? Date.now;

  const running = new Map<number, Running<W>>();
  let anyListened = false;
  let announcedReady = false;
  let earlyExits = 0;
  let stopping: { exitCode: number } | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const pidOf = (worker: W) => worker.process.pid;

  function fork(): W {
    const worker = options.fork();
    running.set(worker.id, { worker });
    return worker;
  }

  function finish(): void {
    clearTimeout(killTimer);
    const exitCode = stopping?.exitCode ?? 0;
    logger.info({ exitCode }, 'stopped');
    options.exit(exitCode);
  }

  function stopAll(signal: NodeJS.Signals, exitCode: number): void {
    stopping = { exitCode };
    logger.info({ signal, workers: running.size }, 'shutting down: stopping every worker');
    if (running.size === 0) {
      finish();
      return;
    }
    // A worker drains as a single server does on the same signal; with Ctrl-C it has had it
    // already (the terminal signals the whole process group) and ignores the second.
    for (const { worker } of running.values()) worker.process.kill(signal);
    killTimer = setTimeout(() => {
      const stuck = [...running.values()].map(({ worker }) => pidOf(worker));
      logger.error({ workerPids: stuck }, 'workers still running after the stop timeout: killing them');
      stopping!.exitCode = 1;
      for (const { worker } of running.values()) worker.process.kill('SIGKILL');
    }, options.stopTimeoutMs);
    killTimer.unref();
  }

  return {
    start() {
      logger.info({ workers: wanted }, 'cluster primary: starting workers');
      for (let i = 0; i < wanted; i++) fork();
    },

    listening(worker) {
      const entry = running.get(worker.id);
      if (!entry || stopping) return;
      entry.listeningSince = now();
      anyListened = true;
      const ready = [...running.values()].filter((r) => r.listeningSince !== undefined);
      if (!announcedReady && ready.length === wanted) {
        announcedReady = true;
        logger.info({ workers: wanted, workerPids: ready.map((r) => pidOf(r.worker)) }, 'all workers listening');
      }
    },

    exited(worker, code, signal) {
      const entry = running.get(worker.id);
      running.delete(worker.id);
      const fields = { worker: worker.id, workerPid: pidOf(worker), code, signal };
      if (stopping) {
        logger.info(fields, 'worker stopped');
        if (running.size === 0) finish();
        return;
      }
      if (!anyListened) {
        // As a single server that fails to start exits 1: the cause is in the worker's own log line.
        logger.fatal(fields, 'a worker failed to start: stopping');
        stopAll('SIGTERM', 1);
        return;
      }
      const since = entry?.listeningSince;
      earlyExits = since === undefined || now() - since < minUptimeMs ? earlyExits + 1 : 0;
      if (earlyExits >= maxEarlyExits) {
        logger.fatal({ ...fields, earlyExits }, 'workers keep exiting right after they start: stopping');
        stopAll('SIGTERM', 1);
        return;
      }
      const replacement = fork();
      logger.error({ ...fields, replacementPid: pidOf(replacement) }, 'worker exited unexpectedly: started a replacement');
    },

    reload(signal) {
      if (stopping) return;
      logger.info({ signal, workers: running.size }, 'passing the signal on to every worker');
      for (const { worker } of running.values()) worker.process.kill(signal);
    },

    stop(signal) {
      // A second Ctrl-C while the workers drain changes nothing: they are bounded by SHUTDOWN_TIMEOUT.
      if (stopping) return;
      stopAll(signal, 0);
    },
  };
}
