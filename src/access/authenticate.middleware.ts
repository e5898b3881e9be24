import type { RequestHandler } from 'express';
import type { Clock } from '../clock';
import { AppError } from '../http/problem';
import type { AccessTokens } from '../tokens/access-token';
import { parseBearer } from '../tokens/bearer';

/**
 * Authentication and RBAC for Gatehouse's own routes. This folder knows tokens and
 * permissions, not features: who the caller is comes from the `loadCaller` it is given,
 * and no feature imports it back (routes declare their permission; app.ts wires it).
 */

/** What `loadCaller` tells about the session of a verified token. */
export interface Caller {
  sessionId: string;
  userId: string;
  isActive: boolean;
  revokedAt: Date | null;
  expiresAt: Date;
  roles: string[];
  permissions: readonly string[];
  /** The account's own fields, so a handler can show them (GET /users/me) without another query. */
  account: { email: string; username: string | null; createdAt: Date; lastLoginAt: Date | null; emailVerifiedAt: Date | null };
}

/** Looks up a session and its user; undefined when there is no such session. */
export type LoadCaller = (sessionId: string) => Promise<Caller | undefined>;

/** Who is calling, as checked against the database on this request. */
export interface AuthContext {
  userId: string;
  sessionId: string;
  roles: string[];
  permissions: readonly string[];
  account: Caller['account'];
}

/** RFC 6750 section 3: tell the client which scheme, and, when a token was sent, that the token itself was the problem. */
function tokenProblem(code: 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'SESSION_REVOKED'): AppError {
  return new AppError(code, { challenge: code === 'TOKEN_MISSING' ? {} : { error: 'invalid_token' } });
}

/**
 * Bearer authentication: the access token must verify, and (one query, through
 * `loadCaller`) its session must be live and its user active. Roles and permissions come
 * from the database, not the token, so a change takes effect on the next request.
 */
export function authenticate(deps: { loadCaller: LoadCaller; accessTokens: AccessTokens; clock: Clock }): RequestHandler {
  return async (req, _res, next) => {
    const bearer = parseBearer(req.get('authorization'));
    if (!bearer.ok) throw tokenProblem(bearer.code);

    let claims;
    try {
      claims = deps.accessTokens.verify(bearer.token);
    } catch (error) {
      if (error instanceof AppError && (error.code === 'TOKEN_EXPIRED' || error.code === 'TOKEN_INVALID')) throw tokenProblem(error.code);
      throw error;
    }

    const caller = await deps.loadCaller(claims.sid);
    if (!caller || caller.userId !== claims.sub) throw tokenProblem('TOKEN_INVALID');
    if (!caller.isActive) throw new AppError('ACCOUNT_DISABLED');
    if (caller.revokedAt !== null || caller.expiresAt <= deps.clock()) throw tokenProblem('SESSION_REVOKED');

    req.auth = {
      userId: caller.userId,
      sessionId: claims.sid,
      roles: caller.roles,
      permissions: caller.permissions,
      account: caller.account,
    };
    next();
  };
}

/**
 * RBAC: after `authenticate`, refuses a caller without `permission` with 403 FORBIDDEN.
 * Routes declare their permission; app.ts hands this to the router builder as `authorize`.
 */
export function requirePermission(permission: string): RequestHandler {
  return (req, _res, next) => {
    if (!(req.auth?.permissions ?? []).includes(permission)) throw new AppError('FORBIDDEN');
    next();
  };
}
