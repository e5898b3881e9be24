import type { RequestHandler } from 'express';
import type { Clock } from '../clock';
import type { DB } from '../db/database';
import { AppError } from '../http/problem';
import type { AccessTokens } from '../tokens/access-token';
import { findSessionAccess, toUserView, type UserView } from '../users/user.repository';

/** Who is calling, as checked against the database on this request. */
export interface AuthContext {
  userId: string;
  sessionId: string;
  user: UserView;
  roles: string[];
  permissions: string[];
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i;

/** RFC 6750 section 3: tell the client which scheme, and that the token itself was the problem. */
const CHALLENGE = 'Bearer realm="gatehouse"';
const INVALID_CHALLENGE = `${CHALLENGE}, error="invalid_token"`;

function tokenProblem(code: 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'SESSION_REVOKED'): AppError {
  return new AppError(code, { headers: { 'WWW-Authenticate': code === 'TOKEN_MISSING' ? CHALLENGE : INVALID_CHALLENGE } });
}

/**
 * Bearer authentication for Gatehouse's own routes: the access token must verify, and
 * (one query) its session must be live and its user active. Roles and permissions come
 * from the database, not the token, so a change takes effect on the next request.
 */
export function authenticate(deps: { db: DB; accessTokens: AccessTokens; clock: Clock }): RequestHandler {
  return async (req, _res, next) => {
    const header = req.get('authorization');
    if (header === undefined || header.trim() === '') throw tokenProblem('TOKEN_MISSING');
    const match = BEARER.exec(header.trim());
    if (!match) throw tokenProblem('TOKEN_INVALID');

    let claims;
    try {
      claims = deps.accessTokens.verify(match[1]!);
    } catch (error) {
      if (error instanceof AppError && (error.code === 'TOKEN_EXPIRED' || error.code === 'TOKEN_INVALID')) throw tokenProblem(error.code);
      throw error;
    }

    const access = await findSessionAccess(deps.db, claims.sid);
    if (!access || access.id !== claims.sub) throw tokenProblem('TOKEN_INVALID');
    if (!access.is_active) throw new AppError('ACCOUNT_DISABLED');
    if (access.revoked_at !== null || access.expires_at <= deps.clock()) throw tokenProblem('SESSION_REVOKED');

    req.auth = {
      userId: access.id,
      sessionId: claims.sid,
      user: toUserView(access, access.roles),
      roles: access.roles,
      permissions: access.permissions,
    };
    next();
  };
}

/** RBAC: after `authenticate`, refuses callers lacking any of the permissions with 403 FORBIDDEN. */
export function requirePermission(...permissions: string[]): RequestHandler {
  return (req, _res, next) => {
    const granted = req.auth?.permissions ?? [];
    if (!permissions.every((permission) => granted.includes(permission))) throw new AppError('FORBIDDEN');
    next();
  };
}
