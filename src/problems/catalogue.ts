/**
 * The machine-readable error codes of CONTRACT.md, each with its HTTP status and a fixed,
 * dull title, and the `type` URI each is answered with. Security failures never say more
 * than their title.
 *
 * Declared once for the service (`http/problem.ts`) and for the SDKs it publishes
 * (`gatehouse/verify`, `gatehouse/client`), which is why this module imports nothing:
 * it ships to other services, and a problem must read the same whoever answers it.
 */
export const PROBLEMS = {
  VALIDATION_FAILED: { status: 422, title: 'The request is not valid' },
  WEAK_PASSWORD: { status: 422, title: 'The password does not meet the password policy' },
  EMAIL_TAKEN: { status: 409, title: 'An account with this email already exists' },
  USERNAME_TAKEN: { status: 409, title: 'This username is taken' },
  INVALID_CREDENTIALS: { status: 401, title: 'Invalid email or password' },
  ACCOUNT_LOCKED: { status: 423, title: 'The account is temporarily locked' },
  ACCOUNT_DISABLED: { status: 403, title: 'The account is disabled' },
  EMAIL_NOT_VERIFIED: { status: 403, title: 'The email address is not verified' },
  REFRESH_TOKEN_INVALID: { status: 401, title: 'The refresh token is not valid' },
  RESET_TOKEN_INVALID: { status: 400, title: 'The password-reset token is not valid' },
  RESET_TOKEN_EXPIRED: { status: 400, title: 'The password-reset token has expired' },
  VERIFY_TOKEN_INVALID: { status: 400, title: 'The email-verification token is not valid' },
  VERIFY_TOKEN_EXPIRED: { status: 400, title: 'The email-verification token has expired' },
  REFRESH_TOKEN_EXPIRED: { status: 401, title: 'The refresh token has expired' },
  REFRESH_TOKEN_REUSED: { status: 401, title: 'The refresh token was already used; the session is revoked' },
  TOKEN_MISSING: { status: 401, title: 'An access token is required' },
  TOKEN_INVALID: { status: 401, title: 'The access token is not valid' },
  TOKEN_EXPIRED: { status: 401, title: 'The access token has expired' },
  SESSION_REVOKED: { status: 401, title: 'The session has been revoked' },
  SIGNATURE_MISSING: { status: 401, title: 'The request signature is missing' },
  SIGNATURE_INVALID: { status: 401, title: 'The request signature is not valid' },
  SIGNATURE_EXPIRED: { status: 401, title: 'The request timestamp is outside the allowed window' },
  SIGNATURE_REPLAYED: { status: 401, title: 'The request nonce was already used' },
  FORBIDDEN: { status: 403, title: 'Not allowed' },
  ORIGIN_NOT_ALLOWED: { status: 403, title: 'The request does not come from an allowed origin' },
  LAST_ADMIN: { status: 409, title: 'This would leave no active admin' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  MALFORMED_BODY: { status: 400, title: 'The request body is not valid JSON' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body must be application/json' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  INTERNAL: { status: 500, title: 'Internal server error' },
  UNAVAILABLE: { status: 503, title: 'The service is temporarily unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

/** The `type` URI of a problem (`urn:gatehouse:problem:token-expired`): stable, and documented in the README. */
export function problemType(code: ProblemCode): string {
  return `urn:gatehouse:problem:${code.toLowerCase().replace(/_/g, '-')}`;
}
