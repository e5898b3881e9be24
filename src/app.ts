import cors from 'cors';
import { authenticate, requirePermission } from './access/authenticate.middleware';
import { createAdminService } from './admin/admin.service';
import express, { type Express } from 'express';
import { createAuthService } from './auth/auth.service';
import { APP_ROUTES, SIGNED_PREFIXES } from './app.routes';
import { type Clock, systemClock } from './clock';
import type { Config } from './config';
import type { DB } from './db/database';
import type { MailKind } from './db/schema';
import { errorHandler, notFound } from './http/error-handler';
import { decodablePath } from './http/decodable-path';
import { jsonBody } from './http/json-body';
import { refuseNulCharacters } from './http/nul-characters';
import { requestId } from './http/request-id';
import { rateLimits } from './http/rate-limit';
import { requestLog } from './http/request-log';
import { securityHeaders } from './http/security-headers';
import { bindStages, rateLimitsOf, routerOf } from './http/router';
import type { Logger } from './logger';
import type { PrimaryChannel } from './metrics/cluster-metrics';
import { createMetrics, type PoolStats } from './metrics/metrics';
import { type MailDispatcher, oldestUnsentAgeSeconds } from './mail/dispatcher';
import { checkReadiness } from './health/health.routes';
import { openApiDocument } from './openapi/openapi.document';
import { createPasswordHasher, type PasswordHasher } from './passwords/password-hasher';
import type { Redis } from './redis';
import { MEMORY_NONCE_ENTRIES, MemoryNonceStore, nonceShareOf, type NonceStore, RedisNonceStore } from './signature/nonce-store';
import { verifySignature } from './signature/signature.middleware';
import { createAccessTokens } from './tokens/access-token';
import type { KeyRing, KeyStore } from './tokens/keys';
import { createPermissionMap } from './roles/permission-map';
import { createRecoveryQueue, type RecoveryQueue } from './recovery/recovery.queue';
import { createRecoveryService } from './recovery/recovery.service';
import { findSessionWithUser } from './sessions/session.repository';
import { createSessionsService } from './sessions/sessions.service';

export interface AppDeps {
  config: Config;
  db: DB;
  /** The key ring the server re-reads from KEYS_DIR, or a fixed key set (tests). */
  keys: KeyRing | KeyStore;
  logger: Logger;
  clock?: Clock;
  /** Shared store for rate-limit counters and nonces; without it both live in this process. */
  redis?: Redis;
  /** Overrides the nonce store chosen from `redis` (tests). */
  nonces?: NonceStore;
  /** Database pool counters for /metrics. */
  poolStats?: () => PoolStats;
  /** In a worker of WEB_CONCURRENCY > 1, its channel to the primary (`process`): /metrics answers for every worker. */
  clusterPrimary?: PrimaryChannel;
  /** The server passes bcrypt in worker threads; by default it runs on the calling thread. */
  hasher?: PasswordHasher;
  /** Called after a commit that wrote a message to the outbox (after the metrics counted it): the server wakes the mail dispatcher with it. */
  onMailQueued?: (kind: MailKind) => void;
  /** The mail dispatcher the server runs (none with MAIL_DELIVERY=outbox): the metrics count what it does. */
  mailDispatcher?: MailDispatcher;
  /**
   * Where the requests for a message by email run after their 202: the server waits for its
   * `settled()` before closing the pool, tests before reading the outbox. By default one of the app's own.
   */
  recoveryQueue?: RecoveryQueue;
}

/**
 * Builds the whole HTTP application, in the middleware order of CONTRACT.md section 6.
 * It does not listen: server.ts does, and tests drive it in-process with supertest.
 */
export function createApp(deps: AppDeps): Express {
  const { config, db, keys, logger, redis } = deps;
  const clock = deps.clock ?? systemClock;
  const nonces =
    deps.nonces ??
    (redis
      ? new RedisNonceStore(redis, `${config.redisPrefix}nonce:`)
      : new MemoryNonceStore(clock, MEMORY_NONCE_ENTRIES, nonceShareOf(config.hmacClients.size)));
  const metrics = createMetrics({
    poolStats: deps.poolStats,
    clusterPrimary: deps.clusterPrimary,
    readiness: () => checkReadiness({ db, redis }),
    mailBacklogAge: () => oldestUnsentAgeSeconds(db, clock),
  });
  deps.mailDispatcher?.observe(metrics.mail);
  const limits = rateLimits({ config, redis, logger, onStoreError: () => metrics.rateLimitStoreErrors.inc() });

  const hasher = metrics.instrumentHasher(deps.hasher ?? createPasswordHasher(config.bcryptCost));
  const accessTokens = createAccessTokens({
    keys,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    ttl: config.accessTokenTtl,
    clock,
  });
  // Counted when committed to the outbox, whatever MAIL_DELIVERY then does with it ("outbox" sends nothing).
  const onMailQueued = (kind: MailKind) => {
    metrics.mail.queued(kind);
    deps.onMailQueued?.(kind);
  };
  const recoveryQueue = deps.recoveryQueue ?? createRecoveryQueue({ logger });
  recoveryQueue.observe(metrics.recoveryRequests);
  const recovery = createRecoveryService({ db, config, hasher, clock, onMailQueued, queue: recoveryQueue });
  const auth = createAuthService({
    db,
    config,
    hasher,
    accessTokens,
    clock,
    onRegister: (trx, user, at) => recovery.queueVerificationOnRegister(trx, user, at),
    onMailQueued,
    events: { accountLocked: () => metrics.lockouts.inc(), refreshTokenReused: () => metrics.reuseDetected.inc() },
  });
  const sessions = createSessionsService({ db, clock });
  const admin = createAdminService({ db, clock });
  const permissionMap = createPermissionMap(db);
  const requireAuth = authenticate({
    loadCaller: async (sessionId) => {
      const session = await findSessionWithUser(db, sessionId);
      return session && { ...session, permissions: await permissionMap.permissionsOf(session.roles, session.rolesRevision) };
    },
    accessTokens,
    clock,
  });
  // Every route is declared once (APP_ROUTES); each group is mounted below at its stage.
  const routes = bindStages(APP_ROUTES, {
    open: { health: { db, redis }, metrics: { metrics } },
    limited: { jwks: { keys }, docs: { document: openApiDocument } },
    signed: {
      auth: { auth, refreshTokenTtl: config.refreshTokenTtl, allowedOrigins: config.corsOrigins },
      users: {},
      recovery: { recovery },
      sessions: { sessions },
      admin: { admin },
    },
  });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);

  // 1. Request id, 2. logging.
  app.use(requestId());
  app.use(requestLog(logger));
  app.use(metrics.middleware());
  // 3. Security headers for a JSON API: nothing here is a page to frame or to run scripts in.
  //    helmet's, computed once: these options are constants.
  app.use(
    securityHeaders({
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      crossOriginResourcePolicy: { policy: 'same-site' },
    }),
  );
  // Tokens and profiles are never cached (RFC 6749 section 5.1): every answer under the signed
  // prefixes, set before anything can answer there, so errors (429, 401, 404…) carry it too.
  app.use([...SIGNED_PREFIXES], (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  // 4. CORS: only the listed origins, with credentials (the refresh cookie); never "*".
  app.use(cors({ origin: config.corsOrigins.length > 0 ? [...config.corsOrigins] : false, credentials: true, maxAge: 600 }));
  // A path that cannot be percent-decoded names no route: 404 before any router fails to decode it.
  app.use(decodablePath());

  // Probes and metrics (stage "open") sit before rate limiting and signing: CONTRACT.md exempts them from both.
  app.use(routerOf(routes.open));

  // 5. Rate limits, before any body is read or hash computed.
  app.use(limits.global);
  app.use(rateLimitsOf([...routes.limited, ...routes.signed], { auth: limits.auth }));

  // Public keys and the API documents (stage "limited") are rate limited but never signed.
  // /docs sets its own, page-shaped CSP.
  app.use(routerOf(routes.limited));

  // 6. Body parsing, raw bytes kept for the signature.
  app.use(jsonBody(config.bodyLimit));
  //    No U+0000 in any string of the body or query (PostgreSQL cannot store it): 422, once for every route.
  app.use(refuseNulCharacters());

  // 7. HMAC signature on the signed prefixes, before any token work.
  //    8–10 (authentication, RBAC, validation) are per route, as each declares them.
  app.use(
    [...SIGNED_PREFIXES],
    verifySignature({
      mode: config.hmacMode,
      clients: config.hmacClients,
      maxSkew: config.hmacMaxSkew,
      nonces,
      clock,
      onFailure: (reason) => metrics.signatureFailures.inc({ reason: reason.toLowerCase() }),
      onStoreError: () => metrics.nonceStoreErrors.inc(),
    }),
  );
  // Stage "signed": each route behind authentication and RBAC as it declares them, then validation.
  app.use(routerOf(routes.signed, { authenticate: requireAuth, authorize: requirePermission }));

  app.use(notFound());
  app.use(errorHandler({ exposeDetails: !config.isProduction }));
  return app;
}
