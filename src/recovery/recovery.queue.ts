import type { Logger } from '../logger';

/** What became of a request for a message, as the queue counts it. */
export type RecoveryOutcome = 'done' | 'dropped' | 'failed';

/** A request for a message as the queue knows it: no email, no token, only what may be logged. */
export interface RecoveryJob {
  /** `password_reset` or `email_verification`. */
  kind: string;
  /** The X-Request-Id of the request answered, to find it in the request log. */
  requestId: string | null;
  /** The work itself: a transaction, which may fail (the database is down). */
  run: () => Promise<void>;
}

export interface RecoveryQueueOptions {
  logger: Logger;
  /** Requests run at once; the rest wait. A few: the pool serves the requests being answered too. */
  concurrency?: number;
  /** Requests that may wait; one more is dropped (counted and logged), and its user asks again. */
  backlog?: number;
}

/** Pool connections the background work may take at once. */
export const RECOVERY_CONCURRENCY = 4;
/** Requests waiting beyond which new ones are dropped: a flood of requests is not kept in memory. */
export const RECOVERY_BACKLOG = 1000;

/**
 * The requests for a reset or verification message by email, run after their answer: the
 * answer is then the same 202 in the same time whether or not the email has an account (the
 * account's work — a row lock and three inserts — would otherwise show in the response time;
 * OWASP Forgot Password Cheat Sheet, "consistent response time"). In this process, at most
 * `concurrency` at a time, at most `backlog` waiting. A failure is logged with the request id
 * and counted, never thrown: nobody is left to answer. The server waits for {@link settled}
 * before it closes the pool; tests wait for it before they read the outbox.
 */
export function createRecoveryQueue(options: RecoveryQueueOptions) {
  const { logger } = options;
  const concurrency = options.concurrency ?? RECOVERY_CONCURRENCY;
  const backlog = options.backlog ?? RECOVERY_BACKLOG;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`recovery queue concurrency must be ≥ 1, got ${concurrency}`);
  if (!Number.isInteger(backlog) || backlog < 0) throw new TypeError(`recovery queue backlog must be ≥ 0, got ${backlog}`);

  const waiting: RecoveryJob[] = [];
  let running = 0;
  let idle: Array<() => void> = [];
  let count: (outcome: RecoveryOutcome) => void = () => undefined;

  function wakeIdle(): void {
    if (running > 0 || waiting.length > 0) return;
    const resolve = idle;
    idle = [];
    for (const done of resolve) done();
  }

  async function runOne(job: RecoveryJob): Promise<void> {
    try {
      await job.run();
      count('done');
    } catch (error) {
      count('failed');
      // The logger's error serializer leaves out what a driver's error may quote (logger.ts).
      logger.error({ requestId: job.requestId, kind: job.kind, err: error }, 'recovery request failed');
    }
  }

  function next(): void {
    while (running < concurrency && waiting.length > 0) {
      const job = waiting.shift()!;
      running += 1;
      void runOne(job).finally(() => {
        running -= 1;
        next();
        wakeIdle();
      });
    }
  }

  return {
    /** Queues a request, to run once fewer than `concurrency` run; when `backlog` wait besides them already, drops it. */
    push(job: RecoveryJob): void {
      if (running + waiting.length >= concurrency + backlog) {
        count('dropped');
        logger.warn({ requestId: job.requestId, kind: job.kind, backlog }, 'recovery request dropped: the queue is full');
        return;
      }
      waiting.push(job);
      // Started on the next turn of the event loop, once the answer has been written: the embedded
      // database runs its queries on this thread, and would otherwise delay the answer by the work.
      setImmediate(next);
    },

    /** Resolves once nothing runs nor waits (at once when so already). */
    settled(): Promise<void> {
      if (running === 0 && waiting.length === 0) return Promise.resolve();
      return new Promise((resolve) => idle.push(resolve));
    },

    /** Requests running or waiting. */
    pending(): number {
      return running + waiting.length;
    },

    /** Tells `counter` of each outcome (app.ts passes the metrics' counter). */
    observe(counter: (outcome: RecoveryOutcome) => void): void {
      count = counter;
    },
  };
}

export type RecoveryQueue = ReturnType<typeof createRecoveryQueue>;
