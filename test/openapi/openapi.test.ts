import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileErrors, validate } from '@readme/openapi-parser';
import type { Express } from 'express';
import request from 'supertest';
import type { z } from 'zod';
import { APP_ROUTES } from '../../src/app.routes';
import { authResultView, tokenPairView } from '../../src/auth/auth.schemas';
import { PROBLEMS, type ProblemCode } from '../../src/http/problem';
import { problemView } from '../../src/http/problem.schemas';
import type { RouteDeclaration, Stage } from '../../src/http/route';
import type { StagedRoutes } from '../../src/http/router';
import { buildOpenApiDocument } from '../../src/openapi/openapi.document';
import { adminUserPageView, adminUserView, auditEventPageView } from '../../src/admin/admin.schemas';
import { sessionView } from '../../src/sessions/sessions.schemas';
import { currentUserView } from '../../src/users/users.schemas';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, GOOD_PASSWORD, registerAdmin, registerUser, uniqueEmail, uniqueUsername } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { sendSigned, testClients } from '../helpers/signing';

/* eslint-disable @typescript-eslint/no-explicit-any -- the document is parsed JSON */
type Json = any;

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
const SIGNED_PREFIXES = ['/auth/', '/users/', '/admin/'];
const TOKEN_CODES: ProblemCode[] = ['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REVOKED', 'ACCOUNT_DISABLED'];
const SIGNATURE_CODES: ProblemCode[] = ['SIGNATURE_MISSING', 'SIGNATURE_INVALID', 'SIGNATURE_EXPIRED', 'SIGNATURE_REPLAYED'];

async function fetchDocument(app: Express): Promise<Json> {
  const res = await request(app).get('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  return res.body;
}

// ---- the app's routes, from Express's own router ------------------------------------------

interface RouterLayer {
  route?: { path: unknown; methods: Record<string, boolean | undefined> };
  handle?: { stack?: RouterLayer[] };
}

/**
 * Every `METHOD /path` the app serves, read from Express 5's router stack: app.get() layers
 * carry a route; routers mounted with app.use(router) carry their own stack. All our routers
 * are mounted at "/", so their route paths are whole paths (one mounted under a prefix would
 * show up here without it, and fail the comparison loudly rather than pass).
 */
function servedRoutes(app: Express): string[] {
  const routes: string[] = [];
  const walk = (stack: RouterLayer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const { path, methods } = layer.route;
        if (typeof path !== 'string') throw new Error(`a route path that is not a string: ${String(path)}`);
        for (const method of Object.keys(methods).filter((m) => m !== '_all')) {
          routes.push(`${method.toUpperCase()} ${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: RouterLayer[] } }).router.stack);
  return routes.sort();
}

function documentedRoutes(doc: Json): string[] {
  return Object.entries(doc.paths as Record<string, Json>)
    .flatMap(([path, item]) => METHODS.filter((method) => item[method]).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

function operations(doc: Json): { method: string; path: string; op: Json }[] {
  return Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({ method, path, op: item[method] })),
  );
}

/** The problem codes an operation documents, by the status it documents them under. */
function documentedCodes(op: Json): Map<ProblemCode, number> {
  const codes = new Map<ProblemCode, number>();
  for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
    const schema = response.content?.['application/problem+json']?.schema;
    if (!schema) continue;
    for (const code of schema.allOf[1].properties.code.enum as ProblemCode[]) codes.set(code, Number(status));
  }
  return codes;
}

// ---- a small JSON Schema check, to hold real bodies against the served document -------------

const FORMATS: Record<string, RegExp> = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/,
  email: /^[^@\s]+@[^@\s]+$/,
};

function deref(doc: Json, schema: Json): Json {
  if (!schema.$ref) return schema;
  const target = (schema.$ref as string)
    .replace(/^#\//, '')
    .split('/')
    .reduce((node: Json, key: string) => node?.[key], doc);
  if (!target) throw new Error(`unresolved ${schema.$ref}`);
  return deref(doc, target);
}

function isType(value: unknown, type: string): boolean {
  switch (type) {
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'integer':
      return Number.isInteger(value);
    default:
      return typeof value === type;
  }
}

/** Property names an object schema declares, through allOf. */
function declaredKeys(doc: Json, schema: Json): string[] {
  const s = deref(doc, schema);
  return [...Object.keys(s.properties ?? {}), ...(s.allOf ?? []).flatMap((part: Json) => declaredKeys(doc, part))];
}

/**
 * The keywords the generated document uses (2020-12 subset). Objects are taken as closed
 * unless they declare additionalProperties: a field the code sends and the document does
 * not list is drift too. Returns where the value departs from the schema; empty when it conforms.
 */
function conformance(doc: Json, schema: Json, value: unknown, at = '$', closed = true): string[] {
  const s = deref(doc, schema);
  const errors: string[] = [];
  for (const part of s.allOf ?? []) errors.push(...conformance(doc, part, value, at, false));
  if (s.anyOf && !s.anyOf.some((part: Json) => conformance(doc, part, value, at).length === 0))
    errors.push(`${at}: matches no anyOf branch`);
  if (s.oneOf && s.oneOf.filter((part: Json) => conformance(doc, part, value, at).length === 0).length !== 1)
    errors.push(`${at}: matches not exactly one oneOf branch`);
  if ('const' in s && value !== s.const) errors.push(`${at}: is not ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) errors.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (s.type) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((type) => isType(value, type))) return [...errors, `${at}: ${JSON.stringify(value)} is not ${types.join(' or ')}`];
  }
  if (typeof value === 'string') {
    if (s.format && FORMATS[s.format] && !FORMATS[s.format]!.test(value))
      errors.push(`${at}: ${JSON.stringify(value)} is not a ${s.format}`);
    if (s.pattern && !new RegExp(s.pattern, 'u').test(value)) errors.push(`${at}: does not match ${s.pattern}`);
  }
  if (typeof value === 'number' && ((s.minimum !== undefined && value < s.minimum) || (s.maximum !== undefined && value > s.maximum))) {
    errors.push(`${at}: ${value} is out of range`);
  }
  if (Array.isArray(value) && s.items) value.forEach((item, i) => errors.push(...conformance(doc, s.items, item, `${at}[${i}]`)));
  if (isType(value, 'object')) {
    const object = value as Record<string, unknown>;
    const properties: Record<string, Json> = s.properties ?? {};
    for (const key of s.required ?? []) if (!(key in object)) errors.push(`${at}.${key}: is required`);
    const known = declaredKeys(doc, s);
    for (const [key, item] of Object.entries(object)) {
      if (properties[key]) errors.push(...conformance(doc, properties[key], item, `${at}.${key}`));
      else if (typeof s.additionalProperties === 'object') errors.push(...conformance(doc, s.additionalProperties, item, `${at}.${key}`));
      else if (closed && s.additionalProperties !== true && !known.includes(key)) errors.push(`${at}.${key}: is not in the document`);
    }
  }
  return errors;
}

/**
 * Asserts a real response is one the document describes for its route: the status is
 * documented, with the content type sent, and the body conforms to its schema.
 */
function expectDocumented(doc: Json, method: string, template: string, res: request.Response): void {
  const op = doc.paths[template]?.[method];
  expect({ route: `${method.toUpperCase()} ${template}`, documented: op !== undefined }).toEqual({
    route: expect.any(String),
    documented: true,
  });
  const response = op.responses[String(res.status)];
  expect({ status: res.status, documented: response !== undefined }).toEqual({ status: res.status, documented: true });
  if (res.status === 204) {
    expect(response.content).toBeUndefined();
    return;
  }
  const type = String(res.headers['content-type']).split(';')[0]!;
  const media = response.content?.[type];
  expect({ type, documented: media !== undefined }).toEqual({ type, documented: true });
  const body = type.startsWith('text/') ? res.text : res.body;
  expect(conformance(doc, media.schema, body)).toEqual([]);
}

// ---- the document --------------------------------------------------------------------------

describe('GET /openapi.json', () => {
  let h: Harness;
  let doc: Json;
  beforeAll(async () => {
    h = await createHarness();
    doc = await fetchDocument(h.app);
  });
  afterAll(async () => {
    await h.close();
  });

  it('when the app serves a route, then the document describes it', () => {
    const documented = documentedRoutes(doc);
    expect(servedRoutes(h.app).filter((route) => !documented.includes(route))).toEqual([]);
  });

  it('when the document describes a route, then the app serves it', () => {
    const served = servedRoutes(h.app);
    expect(documentedRoutes(doc).filter((route) => !served.includes(route))).toEqual([]);
  });

  it('when the served document is checked by an OpenAPI validator, then it is valid OpenAPI 3.1 with no warnings', async () => {
    // validate() dereferences in place: give it a copy.
    const result = await validate(structuredClone(doc));
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
    expect(result.warnings).toEqual([]);
    expect(doc.openapi).toMatch(/^3\.1\./);
  });

  it('when it is read, then it names Gatehouse at the version of package.json, served from the root', () => {
    const manifest = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(doc.info).toEqual(expect.objectContaining({ title: 'Gatehouse', version: manifest.version }));
    expect(doc.servers).toEqual([{ url: '/' }]);
  });

  it('when the Problem schema is read, then its code lists every code of PROBLEMS', () => {
    expect(doc.components.schemas.Problem.properties.code.enum).toEqual(Object.keys(PROBLEMS));
  });

  it('when it is read, then it declares the Bearer scheme and the four signature headers', () => {
    const schemes = doc.components.securitySchemes;
    expect(schemes.bearerAuth).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer', bearerFormat: 'at+jwt' }));
    const signatureHeaders = Object.values(schemes as Record<string, Json>)
      .filter((scheme) => scheme.type === 'apiKey')
      .map((scheme) => [scheme.in, scheme.name]);
    expect(signatureHeaders).toEqual([
      ['header', 'X-Client-Id'],
      ['header', 'X-Timestamp'],
      ['header', 'X-Nonce'],
      ['header', 'X-Signature'],
    ]);
  });

  it('when a route is under /auth, /users or /admin, then all four signature headers make one requirement, and no other route has one', () => {
    const hmacSchemes = Object.entries(doc.components.securitySchemes as Record<string, Json>)
      .filter(([, scheme]) => scheme.type === 'apiKey')
      .map(([name]) => name);
    for (const { method, path, op } of operations(doc)) {
      const signed = SIGNED_PREFIXES.some((prefix) => path.startsWith(prefix));
      const requirement = op.security?.[0];
      expect({
        route: `${method} ${path}`,
        signed: requirement !== undefined && hmacSchemes.every((scheme) => scheme in requirement),
      }).toEqual({
        route: `${method} ${path}`,
        signed,
      });
    }
  });

  // CONTRACT.md section 3, the errors column (and 503 for /readyz); Bearer routes also answer its 401s.
  const CONTRACT_ERRORS: [string, string, ProblemCode[]][] = [
    ['post', '/auth/register', ['VALIDATION_FAILED', 'WEAK_PASSWORD', 'EMAIL_TAKEN', 'USERNAME_TAKEN']],
    ['post', '/auth/login', ['INVALID_CREDENTIALS', 'ACCOUNT_LOCKED', 'ACCOUNT_DISABLED']],
    ['post', '/auth/refresh', ['REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_EXPIRED', 'REFRESH_TOKEN_REUSED', 'ACCOUNT_DISABLED']],
    ['post', '/auth/logout-all', TOKEN_CODES],
    ['get', '/users/me', TOKEN_CODES],
    ['get', '/users/me/sessions', TOKEN_CODES],
    ['delete', '/users/me/sessions/{id}', [...TOKEN_CODES, 'NOT_FOUND']],
    ['post', '/users/me/password', [...TOKEN_CODES, 'INVALID_CREDENTIALS', 'WEAK_PASSWORD']],
    ['get', '/admin/users', [...TOKEN_CODES, 'FORBIDDEN']],
    ['put', '/admin/users/{id}/roles', [...TOKEN_CODES, 'FORBIDDEN', 'NOT_FOUND', 'VALIDATION_FAILED']],
    ['post', '/admin/users/{id}/disable', [...TOKEN_CODES, 'FORBIDDEN', 'NOT_FOUND']],
    ['post', '/admin/users/{id}/enable', [...TOKEN_CODES, 'FORBIDDEN', 'NOT_FOUND']],
    ['get', '/admin/events', [...TOKEN_CODES, 'FORBIDDEN']],
    ['get', '/readyz', ['UNAVAILABLE']],
  ];

  it.each(CONTRACT_ERRORS)('when %s %s is read, then it lists the errors the contract gives it', (method, path, codes) => {
    const documented = documentedCodes(doc.paths[path][method]);
    expect(codes.filter((code) => !documented.has(code))).toEqual([]);
  });

  it('when any route is read, then it lists the errors of the middleware in front of it', () => {
    for (const { method, path, op } of operations(doc)) {
      const expected: ProblemCode[] = ['INTERNAL'];
      if (SIGNED_PREFIXES.some((prefix) => path.startsWith(prefix))) {
        expected.push(...SIGNATURE_CODES, 'RATE_LIMITED', 'UNAVAILABLE');
        // A GET's body too is parsed (and signed): it can be refused like any other.
        expected.push('MALFORMED_BODY', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE');
      }
      if (path === '/.well-known/jwks.json') expected.push('RATE_LIMITED');
      const documented = documentedCodes(op);
      expect({ route: `${method} ${path}`, missing: expected.filter((code) => !documented.has(code)) }).toEqual({
        route: `${method} ${path}`,
        missing: [],
      });
    }
  });

  it('when an error is documented, then under its own status, as problem+json, with Retry-After where it is sent', () => {
    for (const { op } of operations(doc)) {
      for (const [code, status] of documentedCodes(op)) {
        expect({ code, status }).toEqual({ code, status: PROBLEMS[code].status });
        if (['ACCOUNT_LOCKED', 'RATE_LIMITED', 'UNAVAILABLE'].includes(code))
          expect(op.responses[String(status)].headers['Retry-After']).toBeDefined();
      }
    }
  });

  it('when any response is documented, then it carries X-Request-Id, and rate-limited routes the RateLimit headers', () => {
    for (const { path, op } of operations(doc)) {
      const limited = !['/healthz', '/readyz', '/metrics'].includes(path);
      for (const response of Object.values(op.responses as Record<string, Json>)) {
        expect(response.headers['X-Request-Id']).toBeDefined();
        expect({ path, rateLimitHeaders: 'RateLimit' in response.headers && 'RateLimit-Policy' in response.headers }).toEqual({
          path,
          rateLimitHeaders: limited,
        });
      }
    }
  });

  it('when refresh and logout are read, then they take the refresh_token cookie', () => {
    for (const path of ['/auth/refresh', '/auth/logout']) {
      expect(doc.paths[path].post.parameters).toEqual(
        expect.arrayContaining([expect.objectContaining({ in: 'cookie', name: 'refresh_token' })]),
      );
    }
  });
});

// ---- real responses against the document ----------------------------------------------------

describe.each(DATABASE_KINDS)('the document against real responses (%s)', (kind) => {
  let h: Harness;
  let doc: Json;
  beforeAll(async () => {
    h = await createHarness({ kind });
    doc = await fetchDocument(h.app);
  });
  afterAll(async () => {
    await h.close();
  });

  const post = (path: string, body?: object, token?: string) => {
    const req = request(h.app).post(path);
    if (token) req.set(bearer(token));
    return body === undefined ? req : req.send(body);
  };
  const get = (path: string, token: string) => request(h.app).get(path).set(bearer(token));

  type Case = [string, string, string, number, () => Promise<request.Response>];
  const CASES: Case[] = [
    [
      'a registration',
      'post',
      '/auth/register',
      201,
      () => post('/auth/register', { email: uniqueEmail(), password: GOOD_PASSWORD, username: uniqueUsername() }),
    ],
    [
      'a login',
      'post',
      '/auth/login',
      200,
      async () => {
        const user = await registerUser(h.app);
        return post('/auth/login', { email: user.email, password: user.password });
      },
    ],
    [
      'a refresh',
      'post',
      '/auth/refresh',
      200,
      async () => post('/auth/refresh', { refreshToken: (await registerUser(h.app)).refreshToken }),
    ],
    ['a logout', 'post', '/auth/logout', 204, async () => post('/auth/logout', { refreshToken: (await registerUser(h.app)).refreshToken })],
    [
      'a logout of every session',
      'post',
      '/auth/logout-all',
      204,
      async () => post('/auth/logout-all', undefined, (await registerUser(h.app)).accessToken),
    ],
    ['the profile', 'get', '/users/me', 200, async () => get('/users/me', (await registerUser(h.app)).accessToken)],
    ['the sessions', 'get', '/users/me/sessions', 200, async () => get('/users/me/sessions', (await registerUser(h.app)).accessToken)],
    [
      'a session revoked',
      'delete',
      '/users/me/sessions/{id}',
      204,
      async () => {
        const user = await registerUser(h.app);
        const other = await post('/auth/login', { email: user.email, password: user.password });
        const sessions = await get('/users/me/sessions', user.accessToken);
        const target = sessions.body.find((session: { current: boolean }) => !session.current);
        expect(other.status).toBe(200);
        return request(h.app).delete(`/users/me/sessions/${target.id}`).set(bearer(user.accessToken));
      },
    ],
    [
      'a password change',
      'post',
      '/users/me/password',
      204,
      async () => {
        const user = await registerUser(h.app);
        return post('/users/me/password', { currentPassword: user.password, newPassword: 'another good passphrase 9' }, user.accessToken);
      },
    ],
    [
      'a page of users',
      'get',
      '/admin/users',
      200,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        await registerUser(h.app);
        return get('/admin/users?limit=1', admin.accessToken);
      },
    ],
    [
      'roles set',
      'put',
      '/admin/users/{id}/roles',
      200,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        const user = await registerUser(h.app);
        return request(h.app)
          .put(`/admin/users/${user.id}/roles`)
          .set(bearer(admin.accessToken))
          .send({ roles: ['user', 'admin'] });
      },
    ],
    [
      'a user disabled',
      'post',
      '/admin/users/{id}/disable',
      200,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        return post(`/admin/users/${(await registerUser(h.app)).id}/disable`, undefined, admin.accessToken);
      },
    ],
    [
      'a user enabled',
      'post',
      '/admin/users/{id}/enable',
      200,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        return post(`/admin/users/${(await registerUser(h.app)).id}/enable`, undefined, admin.accessToken);
      },
    ],
    [
      'a page of audit events',
      'get',
      '/admin/events',
      200,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        return get(`/admin/events?userId=${admin.id}&limit=1`, admin.accessToken);
      },
    ],
    ['the JWKS', 'get', '/.well-known/jwks.json', 200, () => request(h.app).get('/.well-known/jwks.json')],
    ['liveness', 'get', '/healthz', 200, () => request(h.app).get('/healthz')],
    ['readiness', 'get', '/readyz', 200, () => request(h.app).get('/readyz')],
    ['the metrics', 'get', '/metrics', 200, () => request(h.app).get('/metrics')],
    ['the docs page', 'get', '/docs', 200, () => request(h.app).get('/docs')],
    ['a docs script', 'get', '/docs/{asset}', 200, () => request(h.app).get('/docs/gatehouse-docs.js')],
    // Errors: the status, and the code within the ones documented for that route.
    ['a weak password', 'post', '/auth/register', 422, () => post('/auth/register', { email: uniqueEmail(), password: 'password1' })],
    ['an invalid email', 'post', '/auth/register', 422, () => post('/auth/register', { email: 'nope', password: GOOD_PASSWORD })],
    [
      'a taken email',
      'post',
      '/auth/register',
      409,
      async () => post('/auth/register', { email: (await registerUser(h.app)).email, password: GOOD_PASSWORD }),
    ],
    [
      'a wrong password',
      'post',
      '/auth/login',
      401,
      async () => post('/auth/login', { email: (await registerUser(h.app)).email, password: 'not the password' }),
    ],
    ['a text/plain body', 'post', '/auth/login', 415, () => request(h.app).post('/auth/login').set('Content-Type', 'text/plain').send('x')],
    [
      'broken JSON',
      'post',
      '/auth/login',
      400,
      () => request(h.app).post('/auth/login').set('Content-Type', 'application/json').send('{"email":'),
    ],
    ['an unknown refresh token', 'post', '/auth/refresh', 401, () => post('/auth/refresh', { refreshToken: 'x'.repeat(43) })],
    [
      'a signature of an unknown client',
      'get',
      '/users/me',
      401,
      () => sendSigned(h.app, { id: 'stranger', secret: 's'.repeat(32) }, 'GET', '/users/me'),
    ],
    ['no access token', 'get', '/users/me', 401, () => request(h.app).get('/users/me')],
    ['a forged access token', 'get', '/users/me', 401, () => get('/users/me', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln')],
    [
      'an unknown session',
      'delete',
      '/users/me/sessions/{id}',
      404,
      async () =>
        request(h.app)
          .delete('/users/me/sessions/00000000-0000-4000-8000-000000000000')
          .set(bearer((await registerUser(h.app)).accessToken)),
    ],
    ['a user without users:read', 'get', '/admin/users', 403, async () => get('/admin/users', (await registerUser(h.app)).accessToken)],
    [
      'an unknown role',
      'put',
      '/admin/users/{id}/roles',
      422,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        return request(h.app)
          .put(`/admin/users/${admin.id}/roles`)
          .set(bearer(admin.accessToken))
          .send({ roles: ['wizard'] });
      },
    ],
    [
      'an unknown user',
      'post',
      '/admin/users/{id}/disable',
      404,
      async () =>
        post(
          '/admin/users/00000000-0000-4000-8000-000000000000/disable',
          undefined,
          (await registerAdmin(h.app, h.database.db)).accessToken,
        ),
    ],
    [
      'a foreign cursor',
      'get',
      '/admin/events',
      422,
      async () => get('/admin/events?cursor=bm90LWEtY3Vyc29y', (await registerAdmin(h.app, h.database.db)).accessToken),
    ],
    ['an unknown docs asset', 'get', '/docs/{asset}', 404, () => request(h.app).get('/docs/swagger-initializer.js')],
  ];

  it.each(CASES)('when %s is answered, then %s %s documents that answer', async (_name, method, template, status, run) => {
    const res = await run();
    expect(res.status).toBe(status);
    expectDocumented(doc, method, template, res);
  });

  // The components are generated from these zod schemas; the bodies parse with them, with nothing left over.
  const NAMED: [string, z.ZodType, () => Promise<request.Response>][] = [
    ['AuthResult', authResultView, () => post('/auth/register', { email: uniqueEmail(), password: GOOD_PASSWORD })],
    ['TokenPair', tokenPairView, async () => post('/auth/refresh', { refreshToken: (await registerUser(h.app)).refreshToken })],
    ['CurrentUser', currentUserView, async () => get('/users/me', (await registerUser(h.app)).accessToken)],
    [
      'Session',
      sessionView,
      async () => {
        const res = await get('/users/me/sessions', (await registerUser(h.app)).accessToken);
        return Object.assign(res, { body: res.body[0] });
      },
    ],
    ['AdminUserPage', adminUserPageView, async () => get('/admin/users?limit=2', (await registerAdmin(h.app, h.database.db)).accessToken)],
    [
      'AdminUser',
      adminUserView,
      async () => {
        const admin = await registerAdmin(h.app, h.database.db);
        return post(`/admin/users/${(await registerUser(h.app)).id}/enable`, undefined, admin.accessToken);
      },
    ],
    [
      'AuditEventPage',
      auditEventPageView,
      async () => get('/admin/events?limit=5', (await registerAdmin(h.app, h.database.db)).accessToken),
    ],
    ['Problem', problemView, () => post('/auth/register', { email: 'nope', password: GOOD_PASSWORD })],
  ];

  it.each(NAMED)('when a %s is sent, then its schema parses it exactly and the document has that component', async (name, schema, run) => {
    const res = await run();
    expect(res.status).toBeLessThan(500);
    expect(doc.components.schemas[name]).toBeDefined();
    expect(schema.parse(res.body)).toEqual(res.body);
    expect(conformance(doc, { $ref: `#/components/schemas/${name}` }, res.body)).toEqual([]);
  });

  // The check above must be able to fail: bodies bent the ways drift would bend them.
  const BENT: [string, (body: Json) => Json][] = [
    ['an undocumented field', (body) => ({ ...body, passwordHash: 'x' })],
    ['an undocumented nested field', (body) => ({ ...body, user: { ...body.user, isAdmin: true } })],
    ['a missing field', (body) => ({ ...body, user: { ...body.user, createdAt: undefined } })],
    ['a wrong type', (body) => ({ ...body, expiresIn: '900' })],
    ['a value outside an enum', (body) => ({ ...body, tokenType: 'Basic' })],
    ['a malformed id', (body) => ({ ...body, user: { ...body.user, id: 'not-a-uuid' } })],
  ];

  it.each(BENT)('when an AuthResult body has %s, then the document check reports it', async (_name, bend) => {
    const res = await post('/auth/register', { email: uniqueEmail(), password: GOOD_PASSWORD });
    expect(conformance(doc, { $ref: '#/components/schemas/AuthResult' }, res.body)).toEqual([]);
    expect(conformance(doc, { $ref: '#/components/schemas/AuthResult' }, JSON.parse(JSON.stringify(bend(res.body))))).not.toEqual([]);
  });

  it('when an error code is not one the route documents, then the document check reports it', async () => {
    const res = await request(h.app).get('/users/me');
    expectProblem(res, 401, 'TOKEN_MISSING');
    const schema = doc.paths['/users/me'].get.responses['401'].content['application/problem+json'].schema;
    expect(conformance(doc, schema, res.body)).toEqual([]);
    expect(conformance(doc, schema, { ...res.body, code: 'REFRESH_TOKEN_REUSED' })).not.toEqual([]);
  });
});

// ---- the declarations, the document and the router: one source ------------------------------

const STAGE_NAMES: Stage[] = ['open', 'limited', 'signed'];

/** Every declared route, as app.ts mounts them. */
const DECLARED: RouteDeclaration<never>[] = STAGE_NAMES.flatMap((stage) => Object.values(APP_ROUTES[stage]).flat());
const PERMISSION_ROUTES = DECLARED.filter((route) => route.permission !== undefined).map(
  (route) => [`${route.method.toUpperCase()} ${route.path}`, route.permission!, route] as const,
);

/** APP_ROUTES with one route changed, as an edit to its declaration would change it. */
function withChangedRoute(method: string, path: string, change: (route: RouteDeclaration<never>) => RouteDeclaration<never>): StagedRoutes {
  let found = 0;
  const stages = STAGE_NAMES.map((stage) => {
    const tables = Object.entries(APP_ROUTES[stage]).map(([name, table]) => [
      name,
      table.map((route: RouteDeclaration<never>) => (route.method === method && route.path === path ? (found++, change(route)) : route)),
    ]);
    return [stage, Object.fromEntries(tables)];
  });
  expect({ route: `${method} ${path}`, found }).toEqual({ route: `${method} ${path}`, found: 1 });
  return Object.fromEntries(stages) as StagedRoutes;
}

/** The Bearer roles of an operation's requirements; undefined when it takes no Bearer token. */
function bearerRoles(op: Json): (string[] | undefined)[] {
  return (op.security ?? []).map((requirement: Json) => requirement.bearerAuth);
}

describe('the route declarations and the document', () => {
  const doc: Json = JSON.parse(JSON.stringify(buildOpenApiDocument()));

  it('when the service is built, then every route is declared once', () => {
    const names = DECLARED.map((route) => `${route.method} ${route.path}`);
    expect(names.filter((name, i) => names.indexOf(name) !== i)).toEqual([]);
    expect(names.length).toBe(documentedRoutes(doc).length);
  });

  it.each(DECLARED.map((route) => [`${route.method.toUpperCase()} ${route.path}`, route] as const))(
    'when %s is declared, then its operation shows its permission, its errors and its success as declared',
    (_name, route) => {
      const op = doc.paths[route.path][route.method];
      const documented = documentedCodes(op);
      expect(route.errors.filter((code) => documented.get(code) !== PROBLEMS[code].status)).toEqual([]);
      expect(documented.has('FORBIDDEN')).toBe(route.permission !== undefined);
      expect(op.responses[String(route.response.status)]).toBeDefined();
      expect(op.tags).toEqual([route.tag]);
      if (!route.bearer) {
        expect(bearerRoles(op).filter((roles) => roles !== undefined)).toEqual([]);
        return;
      }
      const roles = route.permission === undefined ? [] : [route.permission];
      // Both requirements (signed, and unsigned where HMAC_MODE allows it) need the token and its permission.
      expect(bearerRoles(op)).toEqual([roles, roles]);
      if (route.permission !== undefined) expect(op.description).toContain(`\`${route.permission}\``);
    },
  );

  it('when a declared permission changes, then the document requires the new one', () => {
    const changed = buildOpenApiDocument(withChangedRoute('get', '/admin/users', (route) => ({ ...route, permission: 'audit:read' })));
    const op = changed.paths!['/admin/users']!.get as Json;
    expect(bearerRoles(op)).toEqual([['audit:read'], ['audit:read']]);
    expect(op.description).toContain('`audit:read`');
    expect(op.description).not.toContain('users:read');
  });

  it('when a declared permission is removed, then the document no longer lists FORBIDDEN for that route', () => {
    const changed = buildOpenApiDocument(withChangedRoute('get', '/admin/events', (route) => ({ ...route, permission: undefined })));
    const op = changed.paths!['/admin/events']!.get as Json;
    expect(documentedCodes(op).has('FORBIDDEN')).toBe(false);
    expect(bearerRoles(op)).toEqual([[], []]);
  });

  it('when a declared error list changes, then the document lists the codes of the new one', () => {
    const path = '/admin/users/{id}/enable';
    expect(documentedCodes(doc.paths[path].post).has('LAST_ADMIN')).toBe(false);
    const added = buildOpenApiDocument(withChangedRoute('post', path, (route) => ({ ...route, errors: [...route.errors, 'LAST_ADMIN'] })));
    expect(documentedCodes(added.paths![path]!.post as Json).get('LAST_ADMIN')).toBe(409);

    const disable = '/admin/users/{id}/disable';
    const removed = buildOpenApiDocument(
      withChangedRoute('post', disable, (route) => ({ ...route, errors: route.errors.filter((code) => code !== 'LAST_ADMIN') })),
    );
    expect(documentedCodes(removed.paths![disable]!.post as Json).has('LAST_ADMIN')).toBe(false);
  });
});

describe('the declared permissions, enforced', () => {
  const SOME_ID = '00000000-0000-4000-8000-000000000000';
  let h: Harness;
  let everyPermission: string[];
  beforeAll(async () => {
    h = await createHarness();
    const rows = await h.database.db.selectFrom('role_permissions').select('permission').distinct().execute();
    everyPermission = rows.map((row) => row.permission);
  });
  afterAll(async () => {
    await h.close();
  });

  /** A user whose only role grants exactly `permissions`. */
  async function userWith(name: string, permissions: string[]) {
    const { db } = h.database;
    await db
      .insertInto('roles')
      .values({ name, description: 'test' })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    if (permissions.length > 0) {
      await db
        .insertInto('role_permissions')
        .values(permissions.map((permission) => ({ role: name, permission })))
        .onConflict((oc) => oc.columns(['role', 'permission']).doNothing())
        .execute();
    }
    const user = await registerUser(h.app);
    await db.deleteFrom('user_roles').where('user_id', '=', user.id).execute();
    await db.insertInto('user_roles').values({ user_id: user.id, role: name }).execute();
    return user;
  }

  function call(route: RouteDeclaration<never>, accessToken: string) {
    const req = request(h.app)
      [route.method](route.path.replace(/\{[^}]+\}/g, SOME_ID))
      .set(bearer(accessToken));
    return route.method === 'get' ? req : req.send({});
  }

  it('when routes are declared, then some declare a permission (the check below checks something)', () => {
    expect(PERMISSION_ROUTES.length).toBeGreaterThanOrEqual(5);
  });

  it.each(PERMISSION_ROUTES)(
    'when %s is called without %s, then it answers 403 FORBIDDEN; with only it, not',
    async (_name, permission, route) => {
      expect(everyPermission).toContain(permission);
      const slug = permission.replace(':', '-');
      const lacking = await userWith(
        `lacks-${slug}`,
        everyPermission.filter((p) => p !== permission),
      );
      expectProblem(await call(route, lacking.accessToken), 403, 'FORBIDDEN');

      const holding = await userWith(`only-${slug}`, [permission]);
      const res = await call(route, holding.accessToken);
      expect({ status: res.status, code: res.body.code }).not.toEqual({ status: 403, code: 'FORBIDDEN' });
    },
  );
});

// ---- the docs page ---------------------------------------------------------------------------

/** The URLs of the page's <script src> and <link href>. */
function assetUrls(html: string): string[] {
  const scripts = [...html.matchAll(/<script\b[^>]*\bsrc="([^"]*)"/g)].map((m) => m[1]!);
  const links = [...html.matchAll(/<link\b[^>]*\bhref="([^"]*)"/g)].map((m) => m[1]!);
  return [...scripts, ...links];
}

function cspDirectives(header: string): Map<string, string[]> {
  return new Map(
    header
      .split(';')
      .map((part) => part.trim().split(/\s+/))
      .filter((words) => words[0])
      .map(([name, ...values]) => [name!, values]),
  );
}

describe('GET /docs', () => {
  const clients = testClients();
  let h: Harness;
  beforeAll(async () => {
    // Signatures required: /docs must not need one.
    h = await createHarness({ env: { HMAC_MODE: 'required', HMAC_CLIENTS: clients.hmacClients } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when the page is fetched, then it is HTML that loads only same-origin assets, each of which is served', async () => {
    const res = await request(h.app).get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const urls = assetUrls(res.text);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    expect(urls.filter((url) => !url.startsWith('/') || url.startsWith('//'))).toEqual([]);
    expect(res.text).not.toMatch(/<(script|link)\b[^>]*(https?:)?\/\//);

    for (const url of urls) {
      const asset = await request(h.app).get(url);
      expect({ url, status: asset.status }).toEqual({ url, status: 200 });
      const expectedType = url.endsWith('.js') ? /^text\/javascript/ : url.endsWith('.css') ? /^text\/css/ : /^image\/png/;
      expect(asset.headers['content-type']).toMatch(expectedType);
    }
  });

  it('when the page is fetched, then it has no inline script and its initializer loads the document from this origin', async () => {
    const page = await request(h.app).get('/docs');
    const scripts = [...page.text.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    expect(scripts.filter(([, attributes, body]) => !/\bsrc="/.test(attributes!) || body!.trim() !== '')).toEqual([]);

    const initializer = await request(h.app).get('/docs/gatehouse-docs.js');
    expect(initializer.status).toBe(200);
    expect(initializer.text).toContain("url: '/openapi.json'");
    expect(initializer.text).not.toMatch(/https?:\/\//);
  });

  it("when the page is fetched, then its CSP allows scripts and styles from 'self' only, without unsafe-inline or eval", async () => {
    const res = await request(h.app).get('/docs');
    const csp = cspDirectives(res.headers['content-security-policy'] ?? '');
    expect(csp.get('default-src')).toEqual(["'none'"]);
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('style-src')).toEqual(["'self'"]);
    expect(csp.get('connect-src')).toEqual(["'self'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
  });

  it('when an API route is fetched, then it keeps the strict CSP of the API', async () => {
    const res = await request(h.app).get('/healthz');
    expect(cspDirectives(res.headers['content-security-policy'] ?? '').get('default-src')).toEqual(["'none'"]);
    expect(res.headers['content-security-policy']).not.toContain('script-src');
  });

  it('when an asset outside the list is asked for, then it is 404, though the package has it', async () => {
    for (const path of ['/docs/swagger-initializer.js', '/docs/index.html', '/docs/package.json', '/docs/..%2Fpackage.json']) {
      expectProblem(await request(h.app).get(path), 404, 'NOT_FOUND');
    }
  });

  it('when the page, its assets and the document are fetched unsigned, then none is refused, and like the API they are rate limited', async () => {
    const limited = await createHarness({ env: { HMAC_MODE: 'required', HMAC_CLIENTS: clients.hmacClients, RATE_LIMIT_MAX: '3' } });
    try {
      // The control first: unsigned API calls are refused.
      expectProblem(await request(limited.app).get('/users/me'), 401, 'SIGNATURE_MISSING');
      // CONTRACT.md section 1 exempts only health and metrics from the per-IP limit (3 here; one used above).
      for (const path of ['/openapi.json', '/docs']) {
        const res = await request(limited.app).get(path);
        expect({ path, status: res.status, limited: 'ratelimit' in res.headers }).toEqual({ path, status: 200, limited: true });
      }
      expectProblem(await request(limited.app).get('/docs/swagger-ui.css'), 429, 'RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });
});
