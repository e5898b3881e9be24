import { parse as parseCookies } from 'cookie';
import type { CookieOptions, Request, Response } from 'express';

export const REFRESH_COOKIE = 'refresh_token';

/** CONTRACT.md section 4: HttpOnly, Secure, SameSite=Strict, only sent to /auth. */
function cookieOptions(maxAgeSeconds?: number): CookieOptions {
  return { httpOnly: true, secure: true, sameSite: 'strict', path: '/auth', ...(maxAgeSeconds ? { maxAge: maxAgeSeconds * 1000 } : {}) };
}

export function setRefreshCookie(res: Response, token: string, maxAgeSeconds: number): void {
  res.cookie(REFRESH_COOKIE, token, cookieOptions(maxAgeSeconds));
}

export function clearRefreshCookie(res: Response): void {
  res.clearCookie(REFRESH_COOKIE, cookieOptions());
}

/** The refresh token from the body, else from the cookie. */
export function refreshTokenOf(req: Request, fromBody: string | undefined): string | undefined {
  if (fromBody !== undefined) return fromBody;
  const header = req.headers.cookie;
  return header ? parseCookies(header)[REFRESH_COOKIE] : undefined;
}
