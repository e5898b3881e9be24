import type { CookieOptions, Response } from 'express';

export const REFRESH_COOKIE = 'refresh_token';

/** CONTRACT.md section 4: HttpOnly, Secure, SameSite=Strict, only sent to /auth. */
function cookieOptions(maxAgeSeconds?: number): CookieOptions {
  return { httpOnly: true, secure: true, sameSite: 'strict', path: '/auth', ...(maxAgeSeconds ? { maxAge: maxAgeSeconds * 1000 } : {}) };
}

/** Register, login and refresh answer with tokens, and also set the refresh token as a cookie for browsers. */
export function withRefreshCookie<T extends { refreshToken: string }>(res: Response, result: T, maxAgeSeconds: number): T {
  res.cookie(REFRESH_COOKIE, result.refreshToken, cookieOptions(maxAgeSeconds));
  return result;
}

export function clearRefreshCookie(res: Response): void {
  res.clearCookie(REFRESH_COOKIE, cookieOptions());
}
