import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PasswordHasher } from '../passwords/password-hasher';
import { routeOf } from '../http/route-of';
import { joinClusterMetrics, type PrimaryChannel } from './cluster-metrics';

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/**
 * Gatehouse's Prometheus metrics, in a registry of their own (not prom-client's global one),
 * so several apps in one process — tests, or two instances — never share counters.
 * Every label takes values from a fixed set: route templates, methods, statuses, error codes.
 */
export function createMetrics(
  options: {
    poolStats?: (() => PoolStats) | undefined;
    /** The checks of /readyz, run at each scrape: each dependency's name, true when it answered. */
    readiness?: (() => Promise<Readonly<Record<string, boolean | undefined>>>) | undefined;
    /** Seconds since the oldest unsent message was queued, asked at each scrape; it may reject (the database is down). */
    mailBacklogAge?: (() => Promise<number>) | undefined;
    /**
     * A worker of WEB_CONCURRENCY > 1: its channel to the cluster primary (`process`). /metrics
     * then answers the whole instance's metrics, summed by the primary (cluster-metrics.ts);
     * each gauge's `aggregator` says how its workers' values combine.
     */
    clusterPrimary?: PrimaryChannel | undefined;
  } = {},
) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  /** What /metrics answers: this process's registry, or the whole instance's in a worker of a cluster. */
  const exposition = options.clusterPrimary ? joinClusterMetrics(options.clusterPrimary, registry) : () => registry.metrics();

  const httpDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const resultCounter = (name: string, help: string) => new Counter({ name, help, labelNames: ['result'] as const, registers });
  const logins = resultCounter('gatehouse_logins_total', 'Login attempts by result (success or error code)');
  const registrations = resultCounter('gatehouse_registrations_total', 'Registrations by result (success or error code)');
  const refreshes = resultCounter('gatehouse_refreshes_total', 'Refresh-token uses by result (success or error code)');
  const signatureFailures = new Counter({
    name: 'gatehouse_signature_failures_total',
    help: 'Requests refused by the HMAC signature check, by reason',
    labelNames: ['reason'] as const,
    registers,
  });
  const reuseDetected = new Counter({
    name: 'gatehouse_refresh_token_reuse_detected_total',
    help: 'Rotated refresh tokens presented again (each revoked a session)',
    registers,
  });
  const lockouts = new Counter({
    name: 'gatehouse_account_lockouts_total',
    help: 'Lockouts set by repeated failed logins: an email locked for one client address, or for every address',
    registers,
  });
  const rateLimitStoreErrors = new Counter({
    name: 'gatehouse_rate_limit_store_errors_total',
    help: 'Requests let through uncounted because the rate-limit store failed',
    registers,
  });
  const nonceStoreErrors = new Counter({
    name: 'gatehouse_nonce_store_errors_total',
    help: 'Signed requests refused (503) because the nonce store could not record their nonce',
    registers,
  });
  const bcryptDuration = new Histogram({
    name: 'gatehouse_bcrypt_duration_seconds',
    help: 'Time spent in bcrypt, by operation',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2],
    registers,
  });
  if (options.readiness) {
    const readiness = options.readiness;
    // Asked at scrape time, so the gauge needs no prober calling /readyz, and says what /readyz would.
    new Gauge({
      name: 'gatehouse_dependency_up',
      help: 'Whether a dependency answered the readiness check of /readyz at scrape time (1) or not (0)',
      labelNames: ['dependency'] as const,
      registers,
      // Across workers: down when any worker finds it down, as some requests then fail.
      aggregator: 'min',
      async collect() {
        for (const [dependency, up] of Object.entries(await readiness())) {
          if (up !== undefined) this.set({ dependency }, up ? 1 : 0);
        }
      },
    });
  }
  const mailCounter = (name: string, help: string) => new Counter({ name, help, labelNames: ['kind'] as const, registers });
  const mailQueued = mailCounter(
    'gatehouse_mail_messages_queued_total',
    'Messages committed to the outbox (a reset or verification link to send), by kind',
  );
  const mailSent = mailCounter('gatehouse_mail_messages_sent_total', 'Messages the webhook or SMTP server accepted, by kind');
  const mailRetried = mailCounter('gatehouse_mail_messages_retried_total', 'Failed delivery attempts scheduled for another try, by kind');
  const mailFailed = mailCounter(
    'gatehouse_mail_messages_failed_total',
    'Messages given up for good (refused, MAIL_MAX_ATTEMPTS reached, or expired unsent), by kind',
  );
  const recoveryRequests = new Counter({
    name: 'gatehouse_recovery_requests_total',
    help: 'Requests for a reset or verification message by email, run after their answer, by outcome (done, dropped: the queue was full, failed)',
    labelNames: ['outcome'] as const,
    registers,
  });
  if (options.mailBacklogAge) {
    const backlogAge = options.mailBacklogAge;
    new Gauge({
      name: 'gatehouse_mail_outbox_oldest_unsent_age_seconds',
      // Across workers: every worker reads the same outbox; the oldest age (NaN if any could not read it).
      aggregator: 'max',
      help: 'Age of the oldest outbox message neither sent nor failed (0 when none waits); NaN when the database did not answer',
      registers,
      async collect() {
        // A scrape must not fail because the database is down; NaN, not 0, which would read as "all sent".
        try {
          this.set(await backlogAge());
        } catch {
          this.set(Number.NaN);
        }
      },
    });
  }
  if (options.poolStats) {
    const poolStats = options.poolStats;
    new Gauge({
      name: 'gatehouse_db_pool_connections',
      // Across workers: each has a pool of its own; the instance holds their sum.
      aggregator: 'sum',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const stats = poolStats();
        this.set({ state: 'in_use' }, stats.total - stats.idle);
        this.set({ state: 'idle' }, stats.idle);
        this.set({ state: 'waiting' }, stats.waiting);
      },
    });
  }

  // Every request observes one series: its labelled child is looked up by the label values
  // themselves, not by an object prom-client would validate, sort and hash on each request.
  const durationOf = childrenBy((route: string, method: string, status: number) => httpDuration.labels(route, method, String(status)));
  /** Per-route outcome counters, fed from the response code of the routes they describe. */
  const outcome = (counter: Counter<'result'>) => childBy((result: string) => counter.labels(result));
  const outcomesByRoute: Record<string, ReturnType<typeof outcome>> = {
    '/auth/login': outcome(logins),
    '/auth/register': outcome(registrations),
    '/auth/refresh': outcome(refreshes),
  };

  return {
    registry,
    signatureFailures,
    reuseDetected,
    lockouts,
    rateLimitStoreErrors,
    nonceStoreErrors,
    /** What the mail dispatcher reports (`dispatcher.observe(metrics.mail)`), and `queued`, which app.ts counts at each commit that queued a message. */
    mail: {
      queued: (kind: string) => mailQueued.inc({ kind }),
      sent: (kind: string) => mailSent.inc({ kind }),
      retried: (kind: string) => mailRetried.inc({ kind }),
      failed: (kind: string) => mailFailed.inc({ kind }),
    },
    /** What the recovery queue reports of each request it was given (`queue.observe(...)`). */
    recoveryRequests: (outcome: 'done' | 'dropped' | 'failed') => recoveryRequests.inc({ outcome }),

    /** Times every request and counts the outcomes of login, registration and refresh. */
    middleware(): RequestHandler {
      return (req, res, next) => {
        const started = performance.now();
        res.on('finish', () => {
          const route = routeOf(req);
          durationOf(route, req.method, res.statusCode).observe((performance.now() - started) / 1000);
          const counter = outcomesByRoute[route];
          if (counter) {
            const code = res.locals.problemCode as string | undefined;
            counter(code ? code.toLowerCase() : 'success').inc();
          }
        });
        next();
      };
    },

    /** Wraps a hasher so every bcrypt call is timed. */
    instrumentHasher(hasher: PasswordHasher): PasswordHasher {
      const timed =
        <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
        async (...args: A): Promise<R> => {
          const stop = bcryptDuration.startTimer({ operation });
          try {
            return await fn(...args);
          } finally {
            stop();
          }
        };
      return {
        hash: timed('hash', (password: string) => hasher.hash(password)),
        verify: timed('compare', (password: string, hash: string) => hasher.verify(password, hash)),
        verifyNobody: timed('compare', (password: string) => hasher.verifyNobody(password)),
        close: () => hasher.close(),
      };
    },

    /** GET /metrics: Prometheus text. */
    handler(): RequestHandler {
      return async (_req, res) => {
        res.type(registry.contentType).send(await exposition());
      };
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The labelled children of one metric, made on first use and kept in maps by their label
 * values: finding a known series builds no key. Every label takes values from a fixed set
 * (see createMetrics), so the maps stay small.
 */
function childrenBy<A, B, C, Child>(make: (a: A, b: B, c: C) => Child): (a: A, b: B, c: C) => Child {
  const byA = new Map<A, Map<B, Map<C, Child>>>();
  return (a, b, c) => {
    let byB = byA.get(a);
    if (byB === undefined) byA.set(a, (byB = new Map<B, Map<C, Child>>()));
    let byC = byB.get(b);
    if (byC === undefined) byB.set(b, (byC = new Map<C, Child>()));
    let child = byC.get(c);
    if (child === undefined) byC.set(c, (child = make(a, b, c)));
    return child;
  };
}

/** {@link childrenBy} for a metric with one label. */
function childBy<A, Child>(make: (a: A) => Child): (a: A) => Child {
  const children = new Map<A, Child>();
  return (a) => {
    let child = children.get(a);
    if (child === undefined) children.set(a, (child = make(a)));
    return child;
  };
}
