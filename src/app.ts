import cors from 'cors';
import { authenticate } from './access/authenticate.middleware';
import { adminRoutes } from './admin/admin.routes';
import { createAdminService } from './admin/admin.service';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { createAuthService } from './auth/auth.service';
import { authRoutes } from './auth/auth.routes';
import { type Clock, systemClock } from './clock';
import type { Config } from './config';
import type { DB } from './db/database';
import { healthRoutes } from './health/health.routes';
import { errorHandler, notFound } from './http/error-handler';
import { jsonBody } from './http/json-body';
import { requestId } from './http/request-id';
import { rateLimits } from './http/rate-limit';
import { requestLog } from './http/request-log';
import type { Logger } from './logger';
import { createMetrics, type PoolStats } from './metrics/metrics';
import { docsRoutes } from './openapi/docs.routes';
import { createPasswordHasher, type PasswordHasher } from './passwords/password-hasher';
import type { Redis } from './redis';
import { MemoryNonceStore, type NonceStore, RedisNonceStore } from './signature/nonce-store';
import { verifySignature } from './signature/signature.middleware';
import { createAccessTokens } from './tokens/access-token';
import { jwksRoutes } from './tokens/jwks.routes';
import type { KeyStore } from './tokens/keys';
import { findSessionWithUser } from './sessions/session.repository';
import { sessionsRoutes } from './sessions/sessions.routes';
import { createSessionsService } from './sessions/sessions.service';
import { usersRoutes } from './users/users.routes';

export interface AppDeps {
  config: Config;
  db: DB;
  keys: KeyStore;
  logger: Logger;
  clock?: Clock;
  /** Shared store for rate-limit counters and nonces; without it both live in this process. */
  redis?: Redis;
  /** Overrides the nonce store chosen from `redis` (tests). */
  nonces?: NonceStore;
  /** Database pool counters for /metrics. */
  poolStats?: () => PoolStats;
  /** The server passes bcrypt in worker threads; by default it runs on the calling thread. */
  hasher?: PasswordHasher;
}

/**
 * Builds the whole HTTP application, in the middleware order of CONTRACT.md section 6.
 * It does not listen: server.ts does, and tests drive it in-process with supertest.
 */
export function createApp(deps: AppDeps): Express {
  const { config, db, keys, logger, redis } = deps;
  const clock = deps.clock ?? systemClock;
  const nonces = deps.nonces ?? (redis ? new RedisNonceStore(redis, `${config.redisPrefix}nonce:`) : new MemoryNonceStore(clock));
  const metrics = createMetrics({ poolStats: deps.poolStats });
  const limits = rateLimits({ config, redis, logger, onStoreError: () => metrics.rateLimitStoreErrors.inc() });

  const hasher = metrics.instrumentHasher(deps.hasher ?? createPasswordHasher(config.bcryptCost));
  const accessTokens = createAccessTokens({
    keys,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    ttl: config.accessTokenTtl,
    clock,
  });
  const auth = createAuthService({
    db,
    config,
    hasher,
    accessTokens,
    clock,
    events: { accountLocked: () => metrics.lockouts.inc(), refreshTokenReused: () => metrics.reuseDetected.inc() },
  });
  const sessions = createSessionsService({ db, clock });
  const admin = createAdminService({ db, clock });
  const requireAuth = authenticate({ loadCaller: (sessionId) => findSessionWithUser(db, sessionId), accessTokens, clock });

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('etag', false);

  // 1. Request id, 2. logging.
  app.use(requestId());
  app.use(requestLog(logger));
  app.use(metrics.middleware());
  // 3. Security headers for a JSON API: nothing here is a page to frame or to run scripts in.
  app.use(
    helmet({
      contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
      crossOriginResourcePolicy: { policy: 'same-site' },
    }),
  );
  // 4. CORS: only the listed origins, with credentials (the refresh cookie); never "*".
  app.use(cors({ origin: config.corsOrigins.length > 0 ? [...config.corsOrigins] : false, credentials: true, maxAge: 600 }));

  // Probes sit before rate limiting and signing: CONTRACT.md exempts them from both.
  app.use(healthRoutes({ db, redis }));
  app.get('/metrics', metrics.handler());

  // 5. Rate limits, before any body is read or hash computed.
  app.use(limits.global);
  app.use(['/auth/register', '/auth/login'], limits.auth);

  // Public keys and the API documents are rate limited but never signed.
  // /docs sets its own, page-shaped CSP.
  app.use(jwksRoutes({ keys }));
  app.use(docsRoutes());

  // 6. Body parsing, raw bytes kept for the signature.
  app.use(jsonBody(config.bodyLimit));

  // 7. HMAC signature on the signed prefixes, before any token work.
  //    8–10 (authentication, RBAC, validation) are per route.
  app.use(
    ['/auth', '/users', '/admin'],
    verifySignature({
      mode: config.hmacMode,
      clients: config.hmacClients,
      maxSkew: config.hmacMaxSkew,
      nonces,
      clock,
      onFailure: (reason) => metrics.signatureFailures.inc({ reason: reason.toLowerCase() }),
    }),
  );
  app.use(authRoutes({ auth, authenticate: requireAuth, refreshTokenTtl: config.refreshTokenTtl }));
  app.use(usersRoutes({ authenticate: requireAuth }));
  app.use(sessionsRoutes({ sessions, authenticate: requireAuth }));
  app.use(adminRoutes({ admin, authenticate: requireAuth }));

  app.use(notFound());
  app.use(errorHandler({ exposeDetails: !config.isProduction }));
  return app;
}
