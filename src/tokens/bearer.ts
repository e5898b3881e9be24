/**
 * The `Authorization: Bearer …` header (RFC 6750 section 2.1), read the same way by
 * Gatehouse's own routes and by `gatehouse/verify`. Dependency-free: it ships in the SDK.
 */

/** The token of a Bearer header, or which problem the header is. */
export type BearerCredentials = { ok: true; token: string } | { ok: false; code: 'TOKEN_MISSING' | 'TOKEN_INVALID' };

// The scheme is case-insensitive (RFC 9110 section 11.1); the credentials are a compact JWS:
// three non-empty base64url segments, since an RS256 token has a header, claims and a signature.
const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/i;

/**
 * No header (or a blank one) is `TOKEN_MISSING`; another scheme or anything but a compact JWS
 * after `Bearer` is `TOKEN_INVALID`. Only the shape is checked here: the token is verified next.
 */
export function parseBearer(header: string | undefined): BearerCredentials {
  if (header === undefined || header.trim() === '') return { ok: false, code: 'TOKEN_MISSING' };
  const match = BEARER.exec(header.trim());
  return match ? { ok: true, token: match[1]! } : { ok: false, code: 'TOKEN_INVALID' };
}
