import type { ProblemCode } from '../http/problem';
import type { RouteSpec, Stage } from '../http/route';

/*
 * What the HTTP edge adds to every route, which no route declares itself: the middleware
 * of app.ts in front of it (CONTRACT.md section 6) and the headers every response carries.
 * Said once here, applied to the document by rule from each route's stage and declaration.
 */

/** What the chain in front of a route does at each stage (see app.routes.ts). */
export const STAGES: Readonly<Record<Stage, { rateLimited: boolean; signed: boolean }>> = {
  open: { rateLimited: false, signed: false },
  limited: { rateLimited: true, signed: false },
  signed: { rateLimited: true, signed: true },
};

/** Codes that come with a Retry-After header. */
export const RETRY_AFTER_CODES: readonly ProblemCode[] = ['ACCOUNT_LOCKED', 'RATE_LIMITED', 'UNAVAILABLE'];
/** Bearer authentication's refusals, which come with WWW-Authenticate (RFC 6750). */
export const TOKEN_CODES: readonly ProblemCode[] = ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED'];
const SIGNATURE_CODES: readonly ProblemCode[] = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];
const BODY_CODES: readonly ProblemCode[] = ['MALFORMED_BODY', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];

/**
 * Every code a route can answer: its own, and those of the chain in front of it, in the
 * order the chain would answer them where they share a status.
 */
export function codesOf(route: RouteSpec, stage: Stage): ProblemCode[] {
  const { rateLimited, signed } = STAGES[stage];
  const codes: ProblemCode[] = [];
  if (route.permission !== undefined) codes.push('FORBIDDEN');
  // A path whose parameters the route does not take is answered like a path no route has.
  if (route.params) codes.push('NOT_FOUND');
  if (route.body || route.query || route.cookies) codes.push('VALIDATION_FAILED');
  codes.push(...route.errors);
  if (signed) {
    // The signature check, the database behind every signed route, and the refusal of U+0000
    // in any string of the body or query, which comes before any route's own validation.
    codes.push(...SIGNATURE_CODES, 'UNAVAILABLE', 'VALIDATION_FAILED');
    // Any request under the signed prefixes may carry a body, a GET's too (the body is parsed
    // and signed whatever the method); these come before validation.
    codes.push(...BODY_CODES);
  }
  if (route.bearer) codes.push(...TOKEN_CODES, 'ACCOUNT_DISABLED');
  if (rateLimited) codes.push('RATE_LIMITED');
  codes.push('INTERNAL');
  return [...new Set(codes)];
}

/** The request-signature headers (CONTRACT.md section 5), each a security scheme of the document. */
export const SIGNATURE_HEADERS = {
  hmacClientId: { name: 'X-Client-Id', description: "The signing client, as listed in the server's HMAC_CLIENTS." },
  hmacTimestamp: {
    name: 'X-Timestamp',
    description: "Unix seconds; refused when more than HMAC_MAX_SKEW (300 s) from the server's clock.",
  },
  hmacNonce: { name: 'X-Nonce', description: '16–64 characters of [A-Za-z0-9_-], never reused by the client within the skew window.' },
  hmacSignature: {
    name: 'X-Signature',
    description:
      '`sha256=` and the lowercase hex HMAC-SHA256, with the client\'s secret, of METHOD, path?query, X-Timestamp, X-Nonce and hex SHA-256 of the body, joined by "\\n".',
  },
} as const;

/** Response headers the edge sets, by component name. */
export const EDGE_HEADERS = {
  requestId: {
    name: 'X-Request-Id',
    description: 'The request id: the one sent, when it is 1–128 characters of [A-Za-z0-9._:-], otherwise a new UUID. Logs carry it.',
  },
  retryAfter: { name: 'Retry-After', description: 'Seconds to wait before trying again.', schema: { type: 'integer', minimum: 0 } },
  rateLimitPolicy: {
    name: 'RateLimit-Policy',
    description: 'The per-IP quota (IETF draft-ietf-httpapi-ratelimit-headers-08), e.g. `"global"; q=300; w=60`: 300 requests per 60 s.',
  },
  rateLimit: {
    name: 'RateLimit',
    description: 'What is left of the quota and when it resets (IETF draft 08), e.g. `"global"; r=299; t=42`.',
  },
  wwwAuthenticate: {
    name: 'WWW-Authenticate',
    description: 'RFC 6750: `Bearer realm="gatehouse"`, with `error="invalid_token"` when a token was sent.',
  },
} as const;

/** The request's own id, which the edge echoes (CONTRACT.md section 2). */
export const REQUEST_ID_PARAMETER = {
  name: 'X-Request-Id',
  in: 'header',
  required: false,
  description: 'Your id for this request, echoed in the response and the logs; otherwise one is made.',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
} as const;

const SIGNED_NOTE = 'Signed (HMAC_MODE decides whether the signature headers are required).';

/** A route's description, after what its stage and declaration say about who may call it. */
export function descriptionOf(route: RouteSpec, stage: Stage): string | undefined {
  const notes: (string | undefined)[] = [];
  if (STAGES[stage].signed) notes.push(SIGNED_NOTE);
  if (route.bearer) notes.push(route.permission === undefined ? 'Bearer token.' : `Bearer token with \`${route.permission}\`.`);
  notes.push(route.description);
  const text = notes.filter((note) => note !== undefined && note !== '').join(' ');
  return text === '' ? undefined : text;
}
