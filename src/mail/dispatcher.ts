import { type Clock, addSeconds, systemClock } from '../clock';
import type { DB } from '../db/database';
import type { MailKind } from '../db/schema';
import type { Logger } from '../logger';
import { type ClaimedMail, claimDueMail, markMailFailed, markMailSent, oldestUnsentMail, scheduleMailRetry } from './outbox.repository';
import { MailSendError, type MailTransport, sendFailure } from './transport';

/**
 * What the dispatcher reports, for the metrics. (Messages are counted as queued where they are
 * committed to the outbox, app.ts's onMailQueued: with MAIL_DELIVERY=outbox there is no dispatcher.)
 */
export interface MailEvents {
  sent(kind: MailKind): void;
  retried(kind: MailKind): void;
  failed(kind: MailKind): void;
}

export interface DispatcherOptions {
  db: DB;
  transport: MailTransport;
  logger: Logger;
  /** MAIL_MAX_ATTEMPTS: after this many failed attempts a message is marked failed. */
  maxAttempts: number;
  clock?: Clock;
  events?: MailEvents;
  /** Messages claimed at once. */
  batchSize?: number;
  /** Messages of a batch sent at the same time. */
  concurrency?: number;
  /**
   * How long a claim holds (seconds): longer than a batch can take to send, given the
   * transports' own timeouts. A sender that dies leaves its messages to others after this.
   */
  leaseSeconds?: number;
  /** Delay before the second attempt (seconds); doubled for each further one. */
  retryBaseSeconds?: number;
  /** Longest delay between attempts (seconds). */
  retryMaxSeconds?: number;
  /** How often the outbox is looked at besides wake() (ms). */
  pollIntervalMs?: number;
  /**
   * The longest one send may take (seconds), whatever the transport's own timeouts: an SMTP
   * server that trickles its answers resets nodemailer's inactivity timeout at every byte. A send
   * past it counts as a failed attempt (retried), so a pass, and with it a shutdown, always ends.
   */
  sendTimeoutSeconds?: number;
  /** In [0, 1): the jitter of the backoff. */
  random?: () => number;
}

/** What one pass did. */
export interface DispatchResult {
  sent: number;
  retried: number;
  failed: number;
}

export interface MailDispatcher {
  /** Starts polling the outbox every `pollIntervalMs` (on a timer that does not hold the process open). */
  start(): void;
  /** Looks at the outbox soon: called after a message is committed. Never throws. */
  wake(): void;
  /**
   * Delivers what is due now, batch after batch until none is left, and says what it did.
   * Rejects when the database does (the background loop logs that and tries again later).
   */
  dispatchOnce(): Promise<DispatchResult>;
  /** Stops polling, lets the pass under way finish, closes the transport. */
  stop(): Promise<void>;
  /** Adds a listener of what happens to messages (the app's metrics). */
  observe(events: MailEvents): void;
}

export const DISPATCHER_DEFAULTS = {
  batchSize: 10,
  concurrency: 4,
  // A batch is three rounds of four sends, each bounded by sendTimeoutSeconds (and before that
  // by the transports' own timeouts: 10 s per connect, greeting and socket wait): inside the
  // lease, so no message is sent twice because its claim ran out while it was still being sent.
  leaseSeconds: 180,
  sendTimeoutSeconds: 45,
  retryBaseSeconds: 30,
  retryMaxSeconds: 3600,
  pollIntervalMs: 5000,
} as const;

/**
 * The delay before attempt `attempts + 1`: exponential (base × 2^(attempts−1), capped) with
 * "equal jitter" (half fixed, half random), so instances retrying after one outage spread out.
 */
export function retryDelaySeconds(attempts: number, baseSeconds: number, maxSeconds: number, random: () => number): number {
  const exponential = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempts - 1));
  return Math.max(1, Math.round(exponential / 2 + (exponential / 2) * random()));
}

/**
 * Delivers the outbox after commit: claims due messages (`FOR UPDATE SKIP LOCKED`, with a lease,
 * in a short statement of its own), sends each outside any transaction, then records it sent
 * (clearing the link), schedules a retry with backoff, or marks it failed — when the receiver
 * refused it for good, at MAIL_MAX_ATTEMPTS, or once its link has expired (then unsent).
 * Delivery is at least once: a sender that dies after sending but before recording it leaves the
 * message to be sent again when its lease runs out; receivers drop duplicates by id.
 * Logs carry the message id, kind, attempt and a short reason: never the link.
 */
export function createMailDispatcher(options: DispatcherOptions): MailDispatcher {
  const { db, transport, logger, maxAttempts } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const settings = { ...DISPATCHER_DEFAULTS, ...definedOnly(options) };
  const observers: MailEvents[] = options.events ? [options.events] : [];
  const events: MailEvents = {
    sent: (kind) => observers.forEach((o) => o.sent(kind)),
    retried: (kind) => observers.forEach((o) => o.retried(kind)),
    failed: (kind) => observers.forEach((o) => o.failed(kind)),
  };
  const log = logger.child({ component: 'mail', transport: transport.name });

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let lastDatabaseError = 0;

  async function fail(mail: ClaimedMail, reason: string): Promise<boolean> {
    const marked = await markMailFailed(db, mail.id, mail.attempts, clock(), reason);
    if (marked) {
      events.failed(mail.kind);
      log.error({ mailId: mail.id, kind: mail.kind, attempt: mail.attempts, reason }, 'mail delivery failed for good');
    }
    return marked;
  }

  /** Sends one claimed message and records the outcome; says which it was. */
  async function deliver(mail: ClaimedMail): Promise<keyof DispatchResult | undefined> {
    const now = clock();
    if (mail.link === null) return (await fail(mail, 'no link')) ? 'failed' : undefined;
    if (mail.expiresAt.getTime() <= now.getTime()) {
      // The token is dead: sending it now would only mislead the recipient.
      return (await fail(mail, 'expired before delivery')) ? 'failed' : undefined;
    }
    if (mail.attempts > maxAttempts) {
      // Its last attempt's sender died before recording the outcome.
      return (await fail(mail, 'attempts exhausted')) ? 'failed' : undefined;
    }
    try {
      await within(
        settings.sendTimeoutSeconds * 1000,
        () => new MailSendError('send timed out', false),
        transport.send({
          id: mail.id,
          kind: mail.kind,
          to: mail.recipient,
          link: mail.link,
          expiresAt: mail.expiresAt,
          createdAt: mail.createdAt,
          attempt: mail.attempts,
        }),
      );
    } catch (error) {
      const failure = sendFailure(error);
      if (failure.permanent || mail.attempts >= maxAttempts) {
        const reason = failure.permanent ? `${failure.reason} (refused)` : `${failure.reason} (after ${mail.attempts} attempts)`;
        return (await fail(mail, reason)) ? 'failed' : undefined;
      }
      const delay = retryDelaySeconds(mail.attempts, settings.retryBaseSeconds, settings.retryMaxSeconds, random);
      const scheduled = await scheduleMailRetry(db, mail.id, mail.attempts, addSeconds(clock(), delay), failure.reason);
      if (!scheduled) return undefined;
      events.retried(mail.kind);
      log.warn(
        { mailId: mail.id, kind: mail.kind, attempt: mail.attempts, reason: failure.reason, retryIn: delay },
        'mail delivery failed; will retry',
      );
      return 'retried';
    }
    events.sent(mail.kind);
    await markMailSent(db, mail.id, clock());
    log.info({ mailId: mail.id, kind: mail.kind, attempt: mail.attempts }, 'mail sent');
    return 'sent';
  }

  async function dispatchOnce(): Promise<DispatchResult> {
    const result: DispatchResult = { sent: 0, retried: 0, failed: 0 };
    for (;;) {
      const now = clock();
      const batch = await claimDueMail(db, now, addSeconds(now, settings.leaseSeconds), settings.batchSize);
      let next = 0;
      let failure: { error: unknown } | undefined;
      const worker = async () => {
        while (next < batch.length) {
          try {
            const outcome = await deliver(batch[next++]!);
            if (outcome) result[outcome]++;
          } catch (error) {
            // Recording an outcome failed (the database): the lease brings the message back.
            // The other workers finish theirs first, so nothing is left sending after a stop.
            failure ??= { error };
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(settings.concurrency, batch.length) }, worker));
      if (failure) throw failure.error;
      // A short batch was the last of what is due; and a stop waits for no more than this one.
      if (batch.length < settings.batchSize || stopped) return result;
    }
  }

  /** One background pass; a second wake() during it runs another right after. */
  function runPass(): void {
    // A wake() scheduled just before stop() finds the transport closing: nothing more starts.
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    again = false;
    running = dispatchOnce()
      .then(
        () => undefined,
        (error: unknown) => {
          // The database is down or slow: the next poll tries again. Logged at most once a minute.
          if (Date.now() - lastDatabaseError > 60_000) {
            lastDatabaseError = Date.now();
            log.error(
              { err: { type: error instanceof Error ? error.name : 'Error', message: errorMessage(error) } },
              'mail dispatch pass failed',
            );
          }
        },
      )
      .finally(() => {
        running = undefined;
        if (again && !stopped) runPass();
      });
  }

  return {
    start() {
      if (timer || stopped) return;
      timer = setInterval(() => runPass(), settings.pollIntervalMs);
      timer.unref();
      runPass();
    },
    wake() {
      if (!stopped) setImmediate(runPass);
    },
    dispatchOnce,
    observe(listener) {
      observers.push(listener);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      await running;
      await transport.close();
    },
  };
}

/**
 * `work`, or a rejection with `timedOut()` once `ms` have passed. The work is abandoned, not
 * cancelled: a send that still gets through is sent again by the retry (at least once). Its
 * later rejection is no unhandled one: the race has handled it.
 */
async function within<T>(ms: number, timedOut: () => Error, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The options a caller gave, without the ones it left undefined (so defaults stay). */
function definedOnly(options: DispatcherOptions): Partial<typeof DISPATCHER_DEFAULTS> {
  const keys = Object.keys(DISPATCHER_DEFAULTS) as Array<keyof typeof DISPATCHER_DEFAULTS>;
  return Object.fromEntries(keys.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]));
}

/** A database error's message: ours and pg's carry no message content (the link is a parameter, never in the text). */
function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Seconds since the oldest unsent message was queued (0 when none waits), for the gauge: a
 * cheap query on the outbox's partial index of unsent rows. Rejects after `timeoutMs`, so a
 * scrape does not hang on a database that does not answer.
 */
export async function oldestUnsentAgeSeconds(db: DB, clock: Clock = systemClock, timeoutMs = 1000): Promise<number> {
  const oldest = await within(timeoutMs, () => new Error('outbox query timed out'), oldestUnsentMail(db));
  return oldest ? Math.max(0, (clock().getTime() - oldest.getTime()) / 1000) : 0;
}
