import type { CookieOptions, Request, Response } from 'express';
import { AppError } from '../http/problem';

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

/**
 * Whether a request that rides on the refresh cookie comes from a page allowed to use it:
 * its `Origin` is one of `allowedOrigins` (CORS_ORIGINS, compared exactly, as browsers
 * serialise it), or the browser says `Sec-Fetch-Site: same-origin` (Gatehouse's own page).
 *
 * Cross-site request forgery: a browser attaches the cookie to a form POST or a no-cors
 * fetch from any page, and SameSite=Strict only keeps out other *sites*, so a sibling
 * subdomain (`blog.example.com` beside `app.example.com`) gets it through. Neither header can
 * be set by a page's script (both are forbidden header names), so a page cannot claim another's.
 * A request with neither is refused: the cookie is only ever set on browsers, and every
 * browser that runs cross-site requests sends one of them on a POST.
 */
export function isFromAllowedPage(req: Request, allowedOrigins: readonly string[]): boolean {
  if (req.get('sec-fetch-site') === 'same-origin') return true;
  const origin = req.get('origin');
  return origin !== undefined && allowedOrigins.includes(origin);
}

/**
 * The refresh token of a refresh or logout (CONTRACT.md section 4): the body's, else the
 * cookie's. A body token is an app's own doing and needs no origin (a page cannot read the
 * HttpOnly cookie to copy it into a body); a cookie token is honoured only from an allowed page
 * ({@link isFromAllowedPage}), otherwise AppError ORIGIN_NOT_ALLOWED, before anything is rotated
 * or revoked. Undefined when there is neither.
 */
export function refreshTokenOf(
  req: Request,
  fromBody: string | undefined,
  fromCookie: string | undefined,
  allowedOrigins: readonly string[],
): string | undefined {
  if (fromBody !== undefined) return fromBody;
  if (fromCookie === undefined) return undefined;
  if (!isFromAllowedPage(req, allowedOrigins)) {
    throw new AppError('ORIGIN_NOT_ALLOWED', { detail: 'A refresh token taken from the cookie needs an allowed Origin' });
  }
  return fromCookie;
}
