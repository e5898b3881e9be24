import { type RequestHandler, Router } from 'express';
import { requirePermission } from '../access/authenticate.middleware';
import { contextOf } from '../http/request-context';
import { AppError } from '../http/problem';
import { parse } from '../http/validate';
import type { AuthService } from './auth.service';
import { changePasswordBody, loginBody, refreshBody, registerBody } from './auth.schemas';
import { clearRefreshCookie, refreshTokenOf, setRefreshCookie } from './refresh-cookie';

export interface AuthRoutesDeps {
  auth: AuthService;
  authenticate: RequestHandler;
  refreshTokenTtl: number;
}

/** POST /auth/register, /login, /refresh, /logout, /logout-all, and the password change at /users/me/password. */
export function authRoutes({ auth, authenticate, refreshTokenTtl }: AuthRoutesDeps): Router {
  const router = Router();

  router.post('/auth/register', async (req, res) => {
    const result = await auth.register(parse(registerBody, req.body), contextOf(req));
    setRefreshCookie(res, result.refreshToken, refreshTokenTtl);
    res.status(201).json(result);
  });

  router.post('/auth/login', async (req, res) => {
    const result = await auth.login(parse(loginBody, req.body), contextOf(req));
    setRefreshCookie(res, result.refreshToken, refreshTokenTtl);
    res.json(result);
  });

  router.post('/auth/refresh', async (req, res) => {
    const token = refreshTokenOf(req, parse(refreshBody, req.body).refreshToken);
    if (token === undefined) throw new AppError('REFRESH_TOKEN_INVALID', { detail: 'No refresh token in the body or cookie' });
    const result = await auth.refresh(token, contextOf(req));
    setRefreshCookie(res, result.refreshToken, refreshTokenTtl);
    res.json(result);
  });

  router.post('/auth/logout', async (req, res) => {
    await auth.logout(refreshTokenOf(req, parse(refreshBody, req.body).refreshToken), contextOf(req));
    clearRefreshCookie(res);
    res.status(204).end();
  });

  router.post('/auth/logout-all', authenticate, async (req, res) => {
    const { userId, sessionId } = req.auth!;
    await auth.logoutAll(userId, sessionId, contextOf(req));
    clearRefreshCookie(res);
    res.status(204).end();
  });

  router.post('/users/me/password', authenticate, requirePermission('profile:write'), async (req, res) => {
    const input = parse(changePasswordBody, req.body);
    await auth.changePassword(req.auth!.userId, req.auth!.sessionId, input, contextOf(req));
    res.status(204).end();
  });

  return router;
}
