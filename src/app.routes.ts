import { adminRoutes } from './admin/admin.routes';
import { authRoutes } from './auth/auth.routes';
import { healthRoutes } from './health/health.routes';
import type { StagedRoutes } from './http/router';
import { metricsRoutes } from './metrics/metrics.routes';
import { recoveryRoutes } from './recovery/recovery.routes';
import { docsRoutes } from './openapi/docs.routes';
import { sessionsRoutes } from './sessions/sessions.routes';
import { jwksRoutes } from './tokens/jwks.routes';
import { usersRoutes } from './users/users.routes';

/**
 * Every route of the service, by where app.ts mounts it in the middleware chain of
 * CONTRACT.md section 6. The stage is said here once: app.ts mounts each group at its
 * place, and the OpenAPI document adds, by rule, what the chain in front of it can answer.
 */
export const APP_ROUTES = {
  /** Before the rate limiter and signing: CONTRACT.md exempts probes and metrics from both. */
  open: { health: healthRoutes, metrics: metricsRoutes },
  /** Rate limited, never signed, before body parsing: public keys and the API documents. */
  limited: { jwks: jwksRoutes, docs: docsRoutes },
  /** Rate limited, body parsed, HMAC-signed: everything under /auth, /users and /admin. */
  signed: { auth: authRoutes, recovery: recoveryRoutes, users: usersRoutes, sessions: sessionsRoutes, admin: adminRoutes },
} as const satisfies StagedRoutes;

/** The path prefixes app.ts puts behind the request signature (CONTRACT.md section 5). */
export const SIGNED_PREFIXES = ['/auth', '/users', '/admin'] as const;

const underSignedPrefix = (path: string) => SIGNED_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));

// The signature is mounted by prefix, the document marks routes signed by stage: they must agree.
for (const [stage, tables] of Object.entries(APP_ROUTES) as [string, StagedRoutes[keyof StagedRoutes]][]) {
  for (const { method, path } of Object.values(tables).flat()) {
    if (underSignedPrefix(path) !== (stage === 'signed')) {
      throw new TypeError(
        `APP_ROUTES: ${method.toUpperCase()} ${path} is in stage ${stage}, but ${SIGNED_PREFIXES.join(', ')} are exactly the signed prefixes`,
      );
    }
  }
}
