import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { OpenApiGeneratorV31, OpenAPIRegistry, type ResponseConfig, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { z } from 'zod';
import { APP_ROUTES } from '../app.routes';
import { PROBLEMS, type ProblemCode, problemType } from '../http/problem';
import { problemView } from '../http/problem.schemas';
import type { ResponseHeader, RouteSpec, Stage } from '../http/route';
import type { StagedRoutes } from '../http/router';
import {
  codesOf,
  descriptionOf,
  EDGE_HEADERS,
  REQUEST_ID_PARAMETER,
  RETRY_AFTER_CODES,
  SIGNATURE_HEADERS,
  STAGES,
  TOKEN_CODES,
} from './edge';

/*
 * The OpenAPI 3.1 document of every route in app.ts, generated from the same declarations
 * the routers are built from (APP_ROUTES): paths, permissions, schemas, responses and each
 * route's own errors come from there; what the middleware in front of a route adds (its
 * stage's errors, headers and security) from the rules in edge.ts. Nothing here names a route.
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

/** The document's tags, in the order it lists them; every route names one. */
const TAGS = [
  { name: 'auth', description: 'Register, log in, refresh, log out' },
  { name: 'users', description: 'The caller’s own account' },
  { name: 'admin', description: 'User administration and the audit trail (RBAC)' },
  { name: 'keys', description: 'Public keys for other services' },
  { name: 'operations', description: 'Probes and metrics' },
  { name: 'docs', description: 'This document and its page' },
];

type Document = ReturnType<OpenApiGeneratorV31['generateDocument']>;
type Ref = { $ref: string };
/** OpenAPI's Header Object, as the generator types it. */
type HeaderObject = Exclude<NonNullable<ResponseConfig['headers']>, z.ZodObject>[string];

/**
 * Registers what every route shares, once: security schemes, headers, the request-id parameter,
 * and an example of each problem some operation answers (`codes`; no component goes unused).
 */
function registerEdge(registry: OpenAPIRegistry, codes: ReadonlySet<ProblemCode>) {
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'at+jwt',
    description: 'An access token from register, login or refresh: an RS256 JWS with header typ "at+jwt".',
  });
  for (const [scheme, { name, description }] of Object.entries(SIGNATURE_HEADERS)) {
    registry.registerComponent('securitySchemes', scheme, {
      type: 'apiKey',
      in: 'header',
      name,
      description: `${description} One of the four request-signature headers, which go together; required when the server runs with HMAC_MODE=required.`,
    });
  }

  const headers = Object.fromEntries(
    Object.entries(EDGE_HEADERS).map(([key, { name, description, ...rest }]) => {
      const schema = 'schema' in rest ? rest.schema : { type: 'string' as const };
      return [key, registry.registerComponent('headers', name, { description, schema }).ref];
    }),
  ) as Record<keyof typeof EDGE_HEADERS, Ref>;

  const requestIdParameter = registry.registerComponent('parameters', REQUEST_ID_PARAMETER.name, REQUEST_ID_PARAMETER).ref;

  /** One example body per code, as a component: routes share them by reference. */
  const examples = Object.fromEntries(
    (Object.keys(PROBLEMS) as ProblemCode[])
      .filter((code) => codes.has(code))
      .map((code) => {
        const { status, title } = PROBLEMS[code];
        const value = { type: problemType(code), title, status, detail: title, code, requestId: '3f0c7b1e-5d2a-4c47-9b7e-2a6f1d9e8c10' };
        return [code, registry.registerComponent('examples', code, { summary: title, value }).ref];
      }),
  ) as Record<ProblemCode, Ref>;

  return { headers, requestIdParameter, examples };
}

type Edge = ReturnType<typeof registerEdge>;

const SIGNED_SCHEMES = Object.keys(SIGNATURE_HEADERS);

/**
 * On a signed route, the first requirement is the whole story with HMAC_MODE=required; the
 * second is what HMAC_MODE=optional or off also accepts. Signature headers are one requirement:
 * all four or none. A Bearer route's permission is its requirement's role (OpenAPI 3.1: the
 * array of a non-OAuth scheme lists the roles needed). A route that needs neither says so with
 * an empty list: an operation without `security` would mean "as the document's default".
 */
function securityOf(route: RouteSpec, stage: Stage): NonNullable<RouteConfig['security']> {
  const roles = route.permission === undefined ? [] : [route.permission];
  const bearer = (): Record<string, string[]> => (route.bearer ? { bearerAuth: [...roles] } : {});
  if (!STAGES[stage].signed) return route.bearer ? [bearer()] : [];
  const signed = Object.fromEntries(SIGNED_SCHEMES.map((scheme) => [scheme, [] as string[]]));
  return [{ ...signed, ...bearer() }, bearer()];
}

const problemRef = { $ref: '#/components/schemas/Problem' };

/** One response per status, its schema the Problem narrowed to the codes this route can answer. */
function problemResponses(edge: Edge, codes: ProblemCode[], rateLimited: boolean): Record<string, ResponseConfig> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) {
    const status = PROBLEMS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<string, ResponseConfig> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    const group = byStatus.get(status)!;
    responses[String(status)] = {
      description: group.map((code) => `\`${code}\`: ${PROBLEMS[code].title}`).join('\n\n'),
      headers: {
        'X-Request-Id': edge.headers.requestId,
        ...(group.some((code) => RETRY_AFTER_CODES.includes(code)) ? { 'Retry-After': edge.headers.retryAfter } : {}),
        ...(group.some((code) => TOKEN_CODES.includes(code)) ? { 'WWW-Authenticate': edge.headers.wwwAuthenticate } : {}),
        ...(rateLimited ? { 'RateLimit-Policy': edge.headers.rateLimitPolicy, RateLimit: edge.headers.rateLimit } : {}),
      },
      content: {
        'application/problem+json': {
          schema: { allOf: [problemRef, { type: 'object', properties: { code: { type: 'string', enum: group } } }] },
          examples: Object.fromEntries(group.map((code) => [code, edge.examples[code]])),
        },
      },
    };
  }
  return responses;
}

/** A route's own response headers: shared components by `id`, registered on first use. */
function routeHeaders(
  registry: OpenAPIRegistry,
  shared: Map<string, { header: ResponseHeader; ref: Ref }>,
  headers: RouteSpec['response']['headers'],
) {
  return Object.fromEntries(
    Object.entries(headers ?? {}).map(([name, header]) => {
      const object = { description: header.description, schema: header.schema ?? { type: 'string' } } as HeaderObject;
      if (header.id === undefined) return [name, object];
      let entry = shared.get(header.id);
      if (!entry) {
        entry = { header, ref: registry.registerComponent('headers', header.id, object).ref };
        shared.set(header.id, entry);
      } else if (JSON.stringify(entry.header) !== JSON.stringify(header)) {
        throw new TypeError(`openApiDocument: two different response headers are both named ${header.id}`);
      }
      return [name, entry.ref];
    }),
  );
}

/** The OpenAPI operation of one declared route at its stage. */
function operationOf(
  registry: OpenAPIRegistry,
  edge: Edge,
  shared: Map<string, { header: ResponseHeader; ref: Ref }>,
  route: RouteSpec,
  stage: Stage,
): RouteConfig {
  const { rateLimited } = STAGES[stage];
  const { response } = route;
  const description = descriptionOf(route, stage);
  const success: ResponseConfig = {
    description: response.description,
    headers: {
      'X-Request-Id': edge.headers.requestId,
      ...(rateLimited ? { 'RateLimit-Policy': edge.headers.rateLimitPolicy, RateLimit: edge.headers.rateLimit } : {}),
      ...routeHeaders(registry, shared, response.headers),
    },
    ...('schema' in response ? { content: { 'application/json': { schema: response.schema } } } : {}),
    ...('content' in response ? { content: response.content as ResponseConfig['content'] } : {}),
  };
  // A conditional GET answered from the client's cache: the success's headers, no body.
  const notModified: Record<string, ResponseConfig> =
    response.notModified === undefined
      ? {}
      : {
          '304': {
            description: response.notModified,
            headers: {
              'X-Request-Id': edge.headers.requestId,
              ...(rateLimited ? { 'RateLimit-Policy': edge.headers.rateLimitPolicy, RateLimit: edge.headers.rateLimit } : {}),
            },
          },
        };
  const request: RouteConfig['request'] = {
    ...(route.params ? { params: route.params } : {}),
    ...(route.query ? { query: route.query } : {}),
    ...(route.cookies ? { cookies: route.cookies } : {}),
    // A body schema that takes "no body" (undefined) makes the body optional.
    ...(route.body
      ? { body: { required: !route.body.safeParse(undefined).success, content: { 'application/json': { schema: route.body } } } }
      : {}),
  };
  return {
    method: route.method,
    path: route.path,
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(description === undefined ? {} : { description }),
    ...(Object.keys(request).length > 0 ? { request } : {}),
    parameters: [edge.requestIdParameter],
    security: securityOf(route, stage),
    responses: { [String(response.status)]: success, ...notModified, ...problemResponses(edge, codesOf(route, stage), rateLimited) },
  };
}

/**
 * The OpenAPI 3.1 document of the given routes (by default the service's), with the edge's
 * rules applied by stage. Declaration mistakes it cannot represent are a TypeError.
 */
export function buildOpenApiDocument(routes: StagedRoutes = APP_ROUTES): Document {
  const staged = (Object.keys(STAGES) as Stage[]).flatMap((stage) =>
    Object.values(routes[stage]).flatMap((table) => table.map((route) => ({ route, stage }))),
  );
  const registry = new OpenAPIRegistry();
  const edge = registerEdge(registry, new Set(staged.flatMap(({ route, stage }) => codesOf(route, stage))));
  const shared = new Map<string, { header: ResponseHeader; ref: Ref }>();
  const tagIndex = (route: RouteSpec) => {
    const index = TAGS.findIndex((tag) => tag.name === route.tag);
    if (index < 0)
      throw new TypeError(
        `openApiDocument: ${route.method.toUpperCase()} ${route.path} has the tag ${route.tag}, which the document does not list`,
      );
    return index;
  };
  // Client generators name a method after its operationId: two operations cannot share one.
  const operationIds = new Map<string, RouteSpec>();
  for (const { route } of staged) {
    const other = operationIds.get(route.operationId);
    if (other)
      throw new TypeError(
        `openApiDocument: ${route.method.toUpperCase()} ${route.path} and ${other.method.toUpperCase()} ${other.path} are both ${route.operationId}`,
      );
    operationIds.set(route.operationId, route);
  }
  // By tag, as the page shows them; within a tag, in declaration order (Array.prototype.sort is stable).
  staged.sort((a, b) => tagIndex(a.route) - tagIndex(b.route));
  for (const { route, stage } of staged) registry.registerPath(operationOf(registry, edge, shared, route, stage));

  // Problem is only referenced from raw schemas, so it is listed itself. (As a definition
  // object: a bare zod 4 schema has a `type` property and the generator would skip it.)
  return new OpenApiGeneratorV31([...registry.definitions, { type: 'schema', schema: problemView }]).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse',
      version: packageVersion(),
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags: TAGS,
  });
}

let document: Document | undefined;

/** The OpenAPI 3.1 document of the whole service; generated once, on first use. */
export function openApiDocument(): Document {
  document ??= buildOpenApiDocument();
  return document;
}
