import { z } from 'zod';
import { AppError } from '../http/problem';
import { defineRoute, type ResponseHeader, type RouteTable } from '../http/route';
import type { AuthService } from './auth.service';
import { authResultView, changePasswordBody, loginBody, refreshBody, registerBody, tokenPairView } from './auth.schemas';
import { clearRefreshCookie, REFRESH_COOKIE, refreshTokenOf, withRefreshCookie } from './refresh-cookie';

export interface AuthRoutesDeps {
  auth: AuthService;
  refreshTokenTtl: number;
  /** CORS_ORIGINS: the pages whose requests may use the refresh cookie (besides Gatehouse's own). */
  allowedOrigins: readonly string[];
}

/** Refresh and logout read the token from this cookie when the body has none (CONTRACT.md section 4). */
const refreshCookie = z.object({
  [REFRESH_COOKIE]: z
    .string()
    .optional()
    .meta({ description: 'The refresh token, read when the body has no `refreshToken` (cookie mode).' }),
});

const setsCookie: Record<string, ResponseHeader> = {
  'Set-Cookie': {
    id: 'Set-Cookie',
    description: 'The refresh token also as a cookie for browsers: `refresh_token=…; HttpOnly; Secure; SameSite=Strict; Path=/auth`.',
  },
};
const clearsCookie: Record<string, ResponseHeader> = {
  'Set-Cookie': { description: 'Clears the refresh_token cookie (`refresh_token=; Path=/auth; Expires=Thu, 01 Jan 1970 00:00:00 GMT`).' },
};

const STRICTER_LIMIT = 'Rate limited more strictly (AUTH_RATE_LIMIT_MAX per window, shared by register, login and the password change).';

/** CONTRACT.md section 7, as the routes that check a password tell it. */
const LOCKOUT =
  'LOGIN_MAX_FAILURES failures in a row of one email from one client address (known or unknown email alike) lock that email for that address for LOCKOUT_DURATION seconds: 423 `ACCOUNT_LOCKED`, even with the right password; other addresses are not affected, and a success starts the count again. With ACCOUNT_MAX_FAILURES above 0, that many failures of one email from all addresses within LOCKOUT_DURATION lock it for every address.';

const COOKIE_ORIGIN =
  'A token taken from the cookie is honoured only from an allowed page: an `Origin` listed in CORS_ORIGINS, or `Sec-Fetch-Site: same-origin`; otherwise 403 `ORIGIN_NOT_ALLOWED` and nothing changes (cross-site request forgery).';

/** POST /auth/register, /login, /refresh, /logout, /logout-all, and the password change at /users/me/password. */
export const authRoutes: RouteTable<AuthRoutesDeps> = [
  defineRoute({
    method: 'post',
    path: '/auth/register',
    operationId: 'register',
    tag: 'auth',
    summary: 'Create an account and log it in',
    description: `Every new account has the role \`user\`. Passwords: at least PASSWORD_MIN_LENGTH code points, at most 72 bytes, not a common password, not the email or username. ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: registerBody,
    errors: ['WEAK_PASSWORD', 'EMAIL_TAKEN', 'USERNAME_TAKEN'],
    response: { status: 201, description: 'Registered and logged in', headers: setsCookie, schema: authResultView },
    handler:
      ({ auth, refreshTokenTtl }) =>
      async ({ body, context, res }) =>
        withRefreshCookie(res, await auth.register(body, context), refreshTokenTtl),
  }),

  defineRoute({
    method: 'post',
    path: '/auth/login',
    operationId: 'login',
    tag: 'auth',
    summary: 'Log in with email and password',
    description: `An unknown email is answered exactly as a wrong password. \`ACCOUNT_DISABLED\` and, with REQUIRE_VERIFIED_EMAIL, \`EMAIL_NOT_VERIFIED\` (the email not verified yet) are told only after the right password. ${LOCKOUT} ${STRICTER_LIMIT}`,
    rateLimit: 'auth',
    body: loginBody,
    errors: ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'ACCOUNT_DISABLED', 'EMAIL_NOT_VERIFIED'],
    response: { status: 200, description: 'Logged in: a new session', headers: setsCookie, schema: authResultView },
    handler:
      ({ auth, refreshTokenTtl }) =>
      async ({ body, context, res }) =>
        withRefreshCookie(res, await auth.login(body, context), refreshTokenTtl),
  }),

  defineRoute({
    method: 'post',
    path: '/auth/refresh',
    operationId: 'refreshTokens',
    tag: 'auth',
    summary: 'Swap a refresh token for a new token pair',
    description: `The refresh token comes from the body, else from the \`refresh_token\` cookie. ${COOKIE_ORIGIN} It rotates: the answer holds its successor. Retrying the same token within REFRESH_REUSE_GRACE seconds, while the successor is unused, returns that same successor; any other reuse revokes the session (\`REFRESH_TOKEN_REUSED\`).`,
    body: refreshBody,
    cookies: refreshCookie,
    errors: ['REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_EXPIRED', 'REFRESH_TOKEN_REUSED', 'ACCOUNT_DISABLED', 'ORIGIN_NOT_ALLOWED'],
    response: { status: 200, description: 'A new token pair', headers: setsCookie, schema: tokenPairView },
    handler:
      ({ auth, refreshTokenTtl, allowedOrigins }) =>
      async ({ body, cookies, context, req, res }) => {
        const token = refreshTokenOf(req, body.refreshToken, cookies[REFRESH_COOKIE], allowedOrigins);
        if (token === undefined) throw new AppError('REFRESH_TOKEN_INVALID', { detail: 'No refresh token in the body or cookie' });
        return withRefreshCookie(res, await auth.refresh(token, context), refreshTokenTtl);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/auth/logout',
    operationId: 'logout',
    tag: 'auth',
    summary: 'End the session of a refresh token',
    description: `The refresh token comes from the body, else from the cookie. ${COOKIE_ORIGIN} An unknown or spent token is not an error.`,
    body: refreshBody,
    cookies: refreshCookie,
    errors: ['ORIGIN_NOT_ALLOWED'],
    response: { status: 204, description: 'Logged out (also for an unknown or spent token)', headers: clearsCookie },
    handler:
      ({ auth, allowedOrigins }) =>
      async ({ body, cookies, context, req, res }) => {
        await auth.logout(refreshTokenOf(req, body.refreshToken, cookies[REFRESH_COOKIE], allowedOrigins), context);
        clearRefreshCookie(res);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/auth/logout-all',
    operationId: 'logoutAll',
    tag: 'auth',
    summary: 'End every session of the caller',
    bearer: true,
    response: { status: 204, description: 'Every session of the user is revoked', headers: clearsCookie },
    handler:
      ({ auth }) =>
      async ({ auth: caller, context, res }) => {
        await auth.logoutAll(caller.userId, caller.sessionId, context);
        clearRefreshCookie(res);
      },
  }),

  defineRoute({
    method: 'post',
    path: '/users/me/password',
    operationId: 'changePassword',
    tag: 'users',
    summary: 'Change the caller’s password',
    description: `Every other session of the user is revoked. A wrong \`currentPassword\` is a failed login of the account's email from the caller's address, and a lock refuses the change, as it refuses a login. ${STRICTER_LIMIT}`,
    bearer: true,
    permission: 'profile:write',
    rateLimit: 'auth',
    body: changePasswordBody,
    errors: ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'WEAK_PASSWORD'],
    response: { status: 204, description: 'Changed; the other sessions are revoked' },
    handler:
      ({ auth }) =>
      async ({ auth: caller, body, context }) => {
        await auth.changePassword(caller.userId, caller.sessionId, body, context);
      },
  }),
];
