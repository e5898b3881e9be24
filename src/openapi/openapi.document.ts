import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { OpenApiGeneratorV31, OpenAPIRegistry, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { adminUserPageView, adminUserView, auditEventPageView, listEventsQuery, listUsersQuery, setRolesBody, userIdParam } from '../admin/admin.schemas';
import { authResultView, changePasswordBody, loginBody, refreshBody, registerBody, tokenPairView } from '../auth/auth.schemas';
import { PROBLEMS, type ProblemCode, problemType } from '../http/problem';
import { problemView } from '../http/problem.schemas';
import { sessionIdParam, sessionView } from '../sessions/sessions.schemas';
import { currentUserView } from '../users/users.schemas';
import { DOCS_ASSET_NAMES } from './docs.assets';

/*
 * The OpenAPI 3.1 document of every route in app.ts. Bodies, queries and responses are
 * the zod schemas the routes validate with and the services' types are inferred from;
 * what is written here by hand is what zod cannot know: which errors each route answers
 * (from CONTRACT.md section 3 and the middleware in front of it), headers and security.
 */

/** The version in package.json, found from here both in src/ (tsx, jest) and in dist/src/. */
function packageVersion(): string {
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (manifest.name === 'gatehouse' && manifest.version) return manifest.version;
  }
  throw new Error('package.json of gatehouse not found above ' + __dirname);
}

const DESCRIPTION = `Gatehouse registers users, logs them in, and issues RS256 access tokens with rotating refresh tokens.
Other services verify access tokens offline with the keys at \`/.well-known/jwks.json\`.

**Errors** are \`application/problem+json\` (RFC 9457). Branch on \`code\`; each code always has the same status.

**Request signatures.** \`/auth/*\`, \`/users/*\` and \`/admin/*\` take the HMAC-SHA256 headers \`X-Client-Id\`, \`X-Timestamp\`,
\`X-Nonce\` and \`X-Signature\`. Whether they are required is the server's \`HMAC_MODE\`: \`required\` (the production default)
refuses a request without them; \`optional\` checks them when present; \`off\` ignores them. The signature is over
\`METHOD\\npath?query\\nX-Timestamp\\nX-Nonce\\nhex(sha256(body))\` (see the README). A browser cannot keep the secret,
so this page cannot sign requests: "Try it out" works against a server with \`HMAC_MODE\` \`optional\` or \`off\`.

**Access tokens** go in \`Authorization: Bearer …\`. They expire (\`expiresIn\` seconds); \`POST /auth/refresh\` swaps the
refresh token for a new pair. Refresh tokens are single use; presenting a spent one revokes its session.

**Every response** carries \`X-Request-Id\` (yours, when it is 1–128 characters of \`[A-Za-z0-9._:-]\`). Routes other than the
probes and \`/metrics\` are rate limited per IP, with the IETF \`RateLimit\` and \`RateLimit-Policy\` headers.`;

const registry = new OpenAPIRegistry();

// ---- security schemes -------------------------------------------------------------------

registry.registerComponent('securitySchemes', 'bearerAuth', {
  type: 'http',
  scheme: 'bearer',
  bearerFormat: 'at+jwt',
  description: 'An access token from register, login or refresh: an RS256 JWS with header typ "at+jwt".',
});

const SIGNATURE_HEADERS = {
  hmacClientId: { name: 'X-Client-Id', description: 'The signing client, as listed in the server\'s HMAC_CLIENTS.' },
  hmacTimestamp: { name: 'X-Timestamp', description: 'Unix seconds; refused when more than HMAC_MAX_SKEW (300 s) from the server\'s clock.' },
  hmacNonce: { name: 'X-Nonce', description: '16–64 characters of [A-Za-z0-9_-], never reused by the client within the skew window.' },
  hmacSignature: {
    name: 'X-Signature',
    description: '`sha256=` and the lowercase hex HMAC-SHA256, with the client\'s secret, of METHOD, path?query, X-Timestamp, X-Nonce and hex SHA-256 of the body, joined by "\\n".',
  },
} as const;

for (const [scheme, { name, description }] of Object.entries(SIGNATURE_HEADERS)) {
  registry.registerComponent('securitySchemes', scheme, {
    type: 'apiKey',
    in: 'header',
    name,
    description: `${description} One of the four request-signature headers, which go together; required when the server runs with HMAC_MODE=required.`,
  });
}

const SIGNED: Record<string, string[]> = Object.fromEntries(Object.keys(SIGNATURE_HEADERS).map((scheme) => [scheme, []]));

/**
 * The first requirement is the whole story with HMAC_MODE=required; the second is what
 * HMAC_MODE=optional or off also accepts. Signature headers are one requirement: all four or none.
 */
const SECURITY = {
  signed: [SIGNED, {}],
  signedBearer: [{ ...SIGNED, bearerAuth: [] }, { bearerAuth: [] }],
};

// ---- headers and parameters -------------------------------------------------------------

const header = (name: string, description: string, schema: Record<string, unknown> = { type: 'string' }) =>
  registry.registerComponent('headers', name, { description, schema }).ref;

const HEADERS = {
  requestId: header('X-Request-Id', 'The request id: the one sent, when it is 1–128 characters of [A-Za-z0-9._:-], otherwise a new UUID. Logs carry it.'),
  retryAfter: header('Retry-After', 'Seconds to wait before trying again.', { type: 'integer', minimum: 0 }),
  rateLimitPolicy: header('RateLimit-Policy', 'The per-IP quota (IETF draft-ietf-httpapi-ratelimit-headers-08), e.g. `"global"; q=300; w=60`: 300 requests per 60 s.'),
  rateLimit: header('RateLimit', 'What is left of the quota and when it resets (IETF draft 08), e.g. `"global"; r=299; t=42`.'),
  setRefreshCookie: header(
    'Set-Cookie',
    'The refresh token also as a cookie for browsers: `refresh_token=…; HttpOnly; Secure; SameSite=Strict; Path=/auth`.',
  ),
  wwwAuthenticate: header('WWW-Authenticate', 'RFC 6750: `Bearer realm="gatehouse"`, with `error="invalid_token"` when a token was sent.'),
};

const requestIdParameter = registry.registerComponent('parameters', 'X-Request-Id', {
  name: 'X-Request-Id',
  in: 'header',
  required: false,
  description: 'Your id for this request, echoed in the response and the logs; otherwise one is made.',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
}).ref;

const refreshCookie = z.object({
  refresh_token: z.string().optional().meta({ description: 'The refresh token, read when the body has no `refreshToken` (cookie mode).' }),
});


// ---- other response bodies ----------------------------------------------------------------

const health = z.object({ status: z.literal('ok') }).meta({ id: 'Health' });
const readiness = z
  .object({
    status: z.literal('ready'),
    checks: z.object({ database: z.literal('ok'), redis: z.literal('ok').optional().meta({ description: 'Only when REDIS_URL is set' }) }),
  })
  .meta({ id: 'Readiness' });
const jwks = z
  .object({
    keys: z.array(
      z.object({
        kty: z.literal('RSA'),
        n: z.string(),
        e: z.string(),
        kid: z.string().meta({ description: 'RFC 7638 thumbprint of the key; the `kid` of the tokens it signed' }),
        alg: z.literal('RS256'),
        use: z.literal('sig'),
      }),
    ),
  })
  .meta({ id: 'JWKS', description: 'Every published public key (RFC 7517); the newest signs' });

// ---- errors -------------------------------------------------------------------------------

/** Codes that come with a Retry-After header. */
const RETRY_AFTER_CODES: ProblemCode[] = ['ACCOUNT_LOCKED', 'RATE_LIMITED', 'UNAVAILABLE'];
const TOKEN_CODES: ProblemCode[] = ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED'];
const SIGNATURE_CODES: ProblemCode[] = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];
const BODY_CODES: ProblemCode[] = ['MALFORMED_BODY', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];

const problemRef = { $ref: '#/components/schemas/Problem' };

/** One example body per code, as a component: routes share them by reference. */
const problemExamples = Object.fromEntries(
  (Object.keys(PROBLEMS) as ProblemCode[]).map((code) => {
    const { status, title } = PROBLEMS[code];
    const value = { type: problemType(code), title, status, detail: title, code, requestId: '3f0c7b1e-5d2a-4c47-9b7e-2a6f1d9e8c10' };
    return [code, registry.registerComponent('examples', code, { summary: title, value }).ref];
  }),
) as Record<ProblemCode, { $ref: string }>;

/** One response per status, its schema the Problem narrowed to the codes this route can answer. */
function problemResponses(codes: ProblemCode[], rateLimited: boolean): Record<string, ResponseConfig> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of new Set(codes)) {
    const status = PROBLEMS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<string, ResponseConfig> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    const group = byStatus.get(status)!;
    responses[String(status)] = {
      description: group.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('\n\n'),
      headers: {
        'X-Request-Id': HEADERS.requestId,
        ...(group.some((code) => RETRY_AFTER_CODES.includes(code)) ? { 'Retry-After': HEADERS.retryAfter } : {}),
        ...(group.some((code) => TOKEN_CODES.includes(code)) ? { 'WWW-Authenticate': HEADERS.wwwAuthenticate } : {}),
        ...(rateLimited ? { 'RateLimit-Policy': HEADERS.rateLimitPolicy, RateLimit: HEADERS.rateLimit } : {}),
      },
      content: {
        'application/problem+json': {
          schema: { allOf: [problemRef, { type: 'object', properties: { code: { type: 'string', enum: group } } }] },
          examples: Object.fromEntries(group.map((code) => [code, problemExamples[code]])),
        },
      },
    };
  }
  return responses;
}

// ---- routes -------------------------------------------------------------------------------

/** Where a route sits in app.ts's middleware chain, which decides the errors in front of it. */
type Stage =
  /** Before the rate limiter and signing: probes, metrics, this document. */
  | 'open'
  /** Rate limited, not signed: the JWKS. */
  | 'limited'
  /** Rate limited, body parsed, HMAC checked, on the database: /auth, /users, /admin. */
  | 'signed';

interface Operation extends Omit<RouteConfig, 'responses' | 'security' | 'parameters'> {
  stage: Stage;
  bearer?: boolean;
  /** Route-specific codes; the chain's own are added from the stage. */
  errors?: ProblemCode[];
  responses: Record<string, ResponseConfig>;
}

function operation({ stage, bearer = false, errors = [], responses, ...route }: Operation): RouteConfig {
  const rateLimited = stage !== 'open';
  const codes: ProblemCode[] = [...errors];
  if (stage === 'signed') {
    codes.push(...SIGNATURE_CODES, 'UNAVAILABLE');
    // Any request under the signed prefixes may carry a body; these come before validation.
    if (route.method !== 'get') codes.push(...BODY_CODES);
  }
  if (bearer) codes.push(...TOKEN_CODES, 'ACCOUNT_DISABLED');
  if (rateLimited) codes.push('RATE_LIMITED');
  codes.push('INTERNAL');

  const withHeaders = Object.fromEntries(
    Object.entries(responses).map(([status, response]) => [
      status,
      {
        ...response,
        headers: {
          'X-Request-Id': HEADERS.requestId,
          ...(rateLimited ? { 'RateLimit-Policy': HEADERS.rateLimitPolicy, RateLimit: HEADERS.rateLimit } : {}),
          ...(response.headers as Record<string, unknown> | undefined),
        },
      },
    ]),
  );

  return {
    ...route,
    parameters: [requestIdParameter],
    ...(stage === 'signed' ? { security: bearer ? SECURITY.signedBearer : SECURITY.signed } : {}),
    responses: { ...withHeaders, ...problemResponses(codes, rateLimited) },
  };
}

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const noContent = (description: string): ResponseConfig => ({ description });
const withCookie = { 'Set-Cookie': HEADERS.setRefreshCookie };
const clearsCookie = {
  'Set-Cookie': { description: 'Clears the refresh_token cookie (`refresh_token=; Path=/auth; Expires=Thu, 01 Jan 1970 00:00:00 GMT`).', schema: { type: 'string' as const } },
};
const SIGNED_NOTE = 'Signed (HMAC_MODE decides whether the signature headers are required).';
const bearerNote = (permission: string) => `${SIGNED_NOTE} Bearer token with \`${permission}\`.`;

const ROUTES: Operation[] = [
  // auth
  {
    method: 'post',
    path: '/auth/register',
    tags: ['auth'],
    summary: 'Create an account and log it in',
    description: `${SIGNED_NOTE} Every new account has the role \`user\`. Passwords: at least PASSWORD_MIN_LENGTH code points, at most 72 bytes, not a common password, not the email or username. Rate limited more strictly (AUTH_RATE_LIMIT_MAX per window).`,
    stage: 'signed',
    request: { body: { required: true, ...json(registerBody) } },
    errors: ['VALIDATION_FAILED', 'WEAK_PASSWORD', 'EMAIL_TAKEN', 'USERNAME_TAKEN'],
    responses: { 201: { description: 'Registered and logged in', headers: withCookie, ...json(authResultView) } },
  },
  {
    method: 'post',
    path: '/auth/login',
    tags: ['auth'],
    summary: 'Log in with email and password',
    description: `${SIGNED_NOTE} An unknown email is answered exactly as a wrong password. LOGIN_MAX_FAILURES wrong passwords in a row lock the account for LOCKOUT_DURATION seconds. Rate limited more strictly (AUTH_RATE_LIMIT_MAX per window).`,
    stage: 'signed',
    request: { body: { required: true, ...json(loginBody) } },
    errors: ['VALIDATION_FAILED', 'INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'ACCOUNT_DISABLED'],
    responses: { 200: { description: 'Logged in: a new session', headers: withCookie, ...json(authResultView) } },
  },
  {
    method: 'post',
    path: '/auth/refresh',
    tags: ['auth'],
    summary: 'Swap a refresh token for a new token pair',
    description: `${SIGNED_NOTE} The refresh token comes from the body, else from the \`refresh_token\` cookie. It rotates: the answer holds its successor. Retrying the same token within REFRESH_REUSE_GRACE seconds, while the successor is unused, returns that same successor; any other reuse revokes the session (\`REFRESH_TOKEN_REUSED\`).`,
    stage: 'signed',
    request: { body: { required: false, ...json(refreshBody) }, cookies: refreshCookie },
    errors: ['VALIDATION_FAILED', 'REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_EXPIRED', 'REFRESH_TOKEN_REUSED', 'ACCOUNT_DISABLED'],
    responses: { 200: { description: 'A new token pair', headers: withCookie, ...json(tokenPairView) } },
  },
  {
    method: 'post',
    path: '/auth/logout',
    tags: ['auth'],
    summary: 'End the session of a refresh token',
    description: `${SIGNED_NOTE} The refresh token comes from the body, else from the cookie. An unknown or spent token is not an error.`,
    stage: 'signed',
    request: { body: { required: false, ...json(refreshBody) }, cookies: refreshCookie },
    errors: ['VALIDATION_FAILED'],
    responses: { 204: { ...noContent('Logged out (also for an unknown or spent token)'), headers: clearsCookie } },
  },
  {
    method: 'post',
    path: '/auth/logout-all',
    tags: ['auth'],
    summary: 'End every session of the caller',
    description: `${SIGNED_NOTE} Bearer token.`,
    stage: 'signed',
    bearer: true,
    responses: { 204: { ...noContent('Every session of the user is revoked'), headers: clearsCookie } },
  },

  // users
  {
    method: 'get',
    path: '/users/me',
    tags: ['users'],
    summary: 'The caller’s account and permissions',
    description: bearerNote('profile:read'),
    stage: 'signed',
    bearer: true,
    errors: ['FORBIDDEN'],
    responses: { 200: { description: 'The account with its effective permissions', ...json(currentUserView) } },
  },
  {
    method: 'get',
    path: '/users/me/sessions',
    tags: ['users'],
    summary: 'The caller’s live sessions',
    description: bearerNote('profile:read'),
    stage: 'signed',
    bearer: true,
    errors: ['FORBIDDEN'],
    responses: { 200: { description: 'Live sessions, the current one marked', ...json(z.array(sessionView)) } },
  },
  {
    method: 'delete',
    path: '/users/me/sessions/{id}',
    tags: ['users'],
    summary: 'Revoke one of the caller’s sessions',
    description: `${bearerNote('profile:write')} Another user's session is NOT_FOUND, like one that does not exist.`,
    stage: 'signed',
    bearer: true,
    request: { params: sessionIdParam },
    errors: ['FORBIDDEN', 'NOT_FOUND'],
    responses: { 204: noContent('Revoked') },
  },
  {
    method: 'post',
    path: '/users/me/password',
    tags: ['users'],
    summary: 'Change the caller’s password',
    description: `${bearerNote('profile:write')} Every other session of the user is revoked.`,
    stage: 'signed',
    bearer: true,
    request: { body: { required: true, ...json(changePasswordBody) } },
    errors: ['FORBIDDEN', 'VALIDATION_FAILED', 'INVALID_CREDENTIALS', 'WEAK_PASSWORD'],
    responses: { 204: noContent('Changed; the other sessions are revoked') },
  },

  // admin
  {
    method: 'get',
    path: '/admin/users',
    tags: ['admin'],
    summary: 'List users, oldest first',
    description: bearerNote('users:read'),
    stage: 'signed',
    bearer: true,
    request: { query: listUsersQuery },
    errors: ['FORBIDDEN', 'VALIDATION_FAILED'],
    responses: { 200: { description: 'One page of users', ...json(adminUserPageView) } },
  },
  {
    method: 'put',
    path: '/admin/users/{id}/roles',
    tags: ['admin'],
    summary: 'Replace a user’s roles',
    description: `${bearerNote('users:write')} An unknown role is VALIDATION_FAILED; removing the last active admin is LAST_ADMIN.`,
    stage: 'signed',
    bearer: true,
    request: { params: userIdParam, body: { required: true, ...json(setRolesBody) } },
    errors: ['FORBIDDEN', 'NOT_FOUND', 'VALIDATION_FAILED', 'LAST_ADMIN'],
    responses: { 200: { description: 'The user with its new roles', ...json(adminUserView) } },
  },
  {
    method: 'post',
    path: '/admin/users/{id}/disable',
    tags: ['admin'],
    summary: 'Disable a user',
    description: `${bearerNote('users:write')} Every session of the user is revoked; its logins and tokens are refused until enabled. Disabling the last active admin is LAST_ADMIN.`,
    stage: 'signed',
    bearer: true,
    request: { params: userIdParam },
    errors: ['FORBIDDEN', 'NOT_FOUND', 'LAST_ADMIN'],
    responses: { 200: { description: 'The user, now inactive', ...json(adminUserView) } },
  },
  {
    method: 'post',
    path: '/admin/users/{id}/enable',
    tags: ['admin'],
    summary: 'Enable a disabled user',
    description: bearerNote('users:write'),
    stage: 'signed',
    bearer: true,
    request: { params: userIdParam },
    errors: ['FORBIDDEN', 'NOT_FOUND'],
    responses: { 200: { description: 'The user, now active', ...json(adminUserView) } },
  },
  {
    method: 'get',
    path: '/admin/events',
    tags: ['admin'],
    summary: 'The audit trail, newest first',
    description: bearerNote('audit:read'),
    stage: 'signed',
    bearer: true,
    request: { query: listEventsQuery },
    errors: ['FORBIDDEN', 'VALIDATION_FAILED'],
    responses: { 200: { description: 'One page of audit events', ...json(auditEventPageView) } },
  },

  // keys
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    tags: ['keys'],
    summary: 'Public keys for verifying access tokens',
    description: 'Not signed. Verify access tokens with these: RS256 only, header typ "at+jwt", the right iss and aud, exp. Refetch on an unknown kid: keys rotate.',
    stage: 'limited',
    responses: {
      200: {
        description: 'The JSON Web Key Set',
        headers: { 'Cache-Control': { description: 'Cacheable for a few minutes: `public, max-age=300`', schema: { type: 'string' as const } } },
        ...json(jwks),
      },
    },
  },

  // operations
  {
    method: 'get',
    path: '/healthz',
    tags: ['operations'],
    summary: 'Liveness: the process runs',
    description: 'Never signed, never rate limited.',
    stage: 'open',
    responses: { 200: { description: 'Alive', ...json(health) } },
  },
  {
    method: 'get',
    path: '/readyz',
    tags: ['operations'],
    summary: 'Readiness: the database (and Redis, if configured) answers',
    description: 'Never signed, never rate limited.',
    stage: 'open',
    errors: ['UNAVAILABLE'],
    responses: { 200: { description: 'Ready to serve', ...json(readiness) } },
  },
  {
    method: 'get',
    path: '/metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics',
    description: 'Never signed, never rate limited: keep it off the public network.',
    stage: 'open',
    responses: {
      200: {
        description: 'Prometheus text exposition format (version 0.0.4)',
        content: { 'text/plain': { schema: { type: 'string' } } },
      },
    },
  },

  // docs
  {
    method: 'get',
    path: '/openapi.json',
    tags: ['docs'],
    summary: 'This document',
    description: 'OpenAPI 3.1. Never signed; rate limited like the API.',
    stage: 'limited',
    responses: {
      200: {
        description: 'The OpenAPI document of every route',
        content: { 'application/json': { schema: { type: 'object', description: 'An OpenAPI 3.1 document' } } },
      },
    },
  },
  {
    method: 'get',
    path: '/docs',
    tags: ['docs'],
    summary: 'This page: interactive documentation',
    description: 'Swagger UI, served from the swagger-ui-dist package: it loads nothing from other origins. Never signed; rate limited like the API.',
    stage: 'limited',
    responses: { 200: { description: 'The HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
  },
  {
    method: 'get',
    path: '/docs/{asset}',
    tags: ['docs'],
    summary: 'The scripts, styles and icons of /docs',
    stage: 'limited',
    request: { params: z.object({ asset: z.enum(DOCS_ASSET_NAMES) }) },
    errors: ['NOT_FOUND'],
    responses: {
      200: {
        description: 'The file',
        content: {
          'text/css': { schema: { type: 'string' } },
          'text/javascript': { schema: { type: 'string' } },
          'image/png': { schema: { type: 'string', contentMediaType: 'image/png' } },
        },
      },
    },
  },
];

for (const route of ROUTES) registry.registerPath(operation(route));

let document: ReturnType<OpenApiGeneratorV31['generateDocument']> | undefined;

/** The OpenAPI 3.1 document of the whole service; generated once, on first use. */
export function openApiDocument(): ReturnType<OpenApiGeneratorV31['generateDocument']> {
  // Problem is only referenced from raw schemas, so it is listed itself. (As a definition
  // object: a bare zod 4 schema has a `type` property and the generator would skip it.)
  document ??= new OpenApiGeneratorV31([...registry.definitions, { type: 'schema', schema: problemView }]).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse',
      version: packageVersion(),
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'auth', description: 'Register, log in, refresh, log out' },
      { name: 'users', description: 'The caller’s own account' },
      { name: 'admin', description: 'User administration and the audit trail (RBAC)' },
      { name: 'keys', description: 'Public keys for other services' },
      { name: 'operations', description: 'Probes and metrics' },
      { name: 'docs', description: 'This document and its page' },
    ],
  });
  return document;
}
