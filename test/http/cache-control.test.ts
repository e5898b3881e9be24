import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db/database';
import { openTestDatabase } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, GOOD_PASSWORD, registerAdmin, registerUser, type RegisteredUser, uniqueEmail } from '../helpers/factories';
import { signedAs, testClients } from '../helpers/signing';

// CONTRACT.md section 2 (RFC 6749 section 5.1): every response of /auth/*, /users/* and
// /admin/* carries Cache-Control: no-store, its errors included; tokens and profiles are never
// kept by a browser or a shared cache.

interface Actors {
  user: RegisteredUser;
  admin: RegisteredUser;
}

type Case = [name: string, status: number, send: (h: Harness, a: Actors) => request.Test | Promise<request.Response>];

const CASES: Case[] = [
  // ---- successes ----
  ['POST /auth/register', 201, (h) => request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD })],
  ['POST /auth/login', 200, (h, a) => request(h.app).post('/auth/login').send({ email: a.user.email, password: a.user.password })],
  [
    'POST /auth/refresh',
    200,
    // A session of its own, so the shared user's tokens stay live for the other cases.
    async (h) =>
      request(h.app)
        .post('/auth/refresh')
        .send({ refreshToken: (await registerUser(h.app)).refreshToken }),
  ],
  ['POST /auth/logout', 204, (h) => request(h.app).post('/auth/logout').send({})],
  ['GET /users/me', 200, (h, a) => request(h.app).get('/users/me').set(bearer(a.user.accessToken))],
  ['GET /users/me/sessions', 200, (h, a) => request(h.app).get('/users/me/sessions').set(bearer(a.user.accessToken))],
  ['GET /admin/users', 200, (h, a) => request(h.app).get('/admin/users?limit=1').set(bearer(a.admin.accessToken))],
  ['GET /admin/events', 200, (h, a) => request(h.app).get('/admin/events?limit=1').set(bearer(a.admin.accessToken))],

  // ---- errors, from the route and from the chain in front of it ----
  [
    'POST /auth/register, an invalid email (422)',
    422,
    (h) => request(h.app).post('/auth/register').send({ email: 'nope', password: GOOD_PASSWORD }),
  ],
  [
    'POST /auth/login, wrong credentials (401)',
    401,
    (h) => request(h.app).post('/auth/login').send({ email: uniqueEmail(), password: GOOD_PASSWORD }),
  ],
  [
    'POST /auth/refresh, a garbage token (401)',
    401,
    (h) =>
      request(h.app)
        .post('/auth/refresh')
        .send({ refreshToken: 'x'.repeat(43) }),
  ],
  [
    'POST /auth/login, a text/plain body (415)',
    415,
    (h) => request(h.app).post('/auth/login').set('Content-Type', 'text/plain').send('hi'),
  ],
  [
    'POST /auth/login, broken JSON (400)',
    400,
    (h) => request(h.app).post('/auth/login').set('Content-Type', 'application/json').send('{"a":'),
  ],
  [
    'POST /auth/register, a body over BODY_LIMIT (413)',
    413,
    (h) =>
      request(h.app)
        .post('/auth/register')
        .send({ padding: 'x'.repeat(4096) }),
  ],
  ['GET /users/me, no token (401)', 401, (h) => request(h.app).get('/users/me')],
  ['GET /users/me, a garbage token (401)', 401, (h) => request(h.app).get('/users/me').set('Authorization', 'Bearer a.b.c')],
  [
    'DELETE /users/me/sessions/{id}, no such session (404)',
    404,
    (h, a) => request(h.app).delete(`/users/me/sessions/${randomUUID()}`).set(bearer(a.user.accessToken)),
  ],
  ['GET /admin/users, not an admin (403)', 403, (h, a) => request(h.app).get('/admin/users').set(bearer(a.user.accessToken))],
  [
    'GET /admin/users, a tampered cursor (422)',
    422,
    (h, a) => request(h.app).get('/admin/users?cursor=tampered').set(bearer(a.admin.accessToken)),
  ],
  ['GET /auth/nothing-here (404)', 404, (h) => request(h.app).get('/auth/nothing-here')],
  ['GET /admin/nothing-here (404)', 404, (h) => request(h.app).get('/admin/nothing-here')],
  [
    'POST /AUTH/login, a case variant of the path (401)',
    401,
    (h) => request(h.app).post('/AUTH/login').send({ email: uniqueEmail(), password: GOOD_PASSWORD }),
  ],
];

describe('Cache-Control: no-store on /auth, /users and /admin', () => {
  let database: DatabaseHandle;
  let h: Harness;
  let actors: Actors;
  beforeAll(async () => {
    database = await openTestDatabase('pglite');
    h = await createHarness({ database, env: { BODY_LIMIT: '1kb' } });
    actors = { user: await registerUser(h.app), admin: await registerAdmin(h.app, h.database.db) };
  });
  afterAll(async () => {
    await database.close();
  });

  it.each(CASES)('when %s is answered, then it carries Cache-Control: no-store', async (_name, status, send) => {
    const res = await send(h, actors);

    expect({ status: res.status, cacheControl: res.headers['cache-control'] }).toEqual({ status, cacheControl: 'no-store' });
  });

  it('when the auth rate limit is hit (429), then the refusal carries Cache-Control: no-store', async () => {
    const limited = await createHarness({ database, env: { AUTH_RATE_LIMIT_MAX: '1' } });
    const login = () => request(limited.app).post('/auth/login').send({ email: uniqueEmail(), password: GOOD_PASSWORD });
    expect((await login()).status).toBe(401);

    const res = await login();

    expect({ status: res.status, code: res.body.code, cacheControl: res.headers['cache-control'] }).toEqual({
      status: 429,
      code: 'RATE_LIMITED',
      cacheControl: 'no-store',
    });
  });

  it.each<[string, Record<string, never> | { signature: string }]>([
    ['missing (401 SIGNATURE_MISSING)', {}],
    ['wrong (401 SIGNATURE_INVALID)', { signature: `sha256=${'0'.repeat(64)}` }],
  ])('when a signature is %s, then the refusal carries Cache-Control: no-store', async (_name, options) => {
    const { ios, hmacClients } = testClients();
    const signed = await createHarness({ database, env: { HMAC_MODE: 'required', HMAC_CLIENTS: hmacClients } });

    const res =
      'signature' in options ? await signedAs(signed, ios)('GET', '/users/me', options) : await request(signed.app).get('/users/me');

    expect({ status: res.status, cacheControl: res.headers['cache-control'] }).toEqual({ status: 401, cacheControl: 'no-store' });
  });

  it.each(['/healthz', '/.well-known/jwks.json', '/openapi.json'])(
    'when GET %s (outside the prefixes) is answered, then it is not no-store',
    async (path) => {
      const res = await request(h.app).get(path);

      expect(res.status).toBe(200);
      expect(res.headers['cache-control'] ?? '').not.toContain('no-store');
    },
  );
});
