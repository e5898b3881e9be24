import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PasswordHasher } from '../passwords/password-hasher';
import { routeOf } from '../http/route-of';

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
export function createMetrics(options: { poolStats?: (() => PoolStats) | undefined } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

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
  const bcryptDuration = new Histogram({
    name: 'gatehouse_bcrypt_duration_seconds',
    help: 'Time spent in bcrypt, by operation',
    labelNames: ['operation'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2],
    registers,
  });
  if (options.poolStats) {
    const poolStats = options.poolStats;
    new Gauge({
      name: 'gatehouse_db_pool_connections',
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
        res.type(registry.contentType).send(await registry.metrics());
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
