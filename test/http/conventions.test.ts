import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, GOOD_PASSWORD, registerUser, uniqueEmail, uniqueUsername } from '../helpers/factories';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PROBLEM_KEYS = ['code', 'detail', 'requestId', 'status', 'title', 'type'];
/** What a V8 stack frame looks like in text ("at fn (file.ts:12:3)"). */
const STACK_FRAME = /\bat .+:\d+:\d+/;
const SECRET_PASSWORD = 'my secret passphrase 42';

type Send = (app: Harness['app']) => request.Test;

const json = (app: Harness['app'], path: string, body: object) => request(app).post(path).send(body);
const raw = (app: Harness['app'], path: string, type: string, body: string) => request(app).post(path).set('Content-Type', type).send(body);

/** Requests that fail in each way of CONTRACT.md section 2, most of them carrying a password. */
const FAILING_REQUESTS: [string, number, string, Send][] = [
  ['an unknown route', 404, 'NOT_FOUND', (app) => request(app).get('/no/such/route')],
  ['a text/plain body', 415, 'UNSUPPORTED_MEDIA_TYPE', (app) => raw(app, '/auth/login', 'text/plain', `password=${SECRET_PASSWORD}`)],
  [
    'a form body',
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    (app) => raw(app, '/auth/login', 'application/x-www-form-urlencoded', `password=${SECRET_PASSWORD}`),
  ],
  ['broken JSON', 400, 'MALFORMED_BODY', (app) => raw(app, '/auth/login', 'application/json', `{"password":"${SECRET_PASSWORD}",`)],
  ['an invalid email', 422, 'VALIDATION_FAILED', (app) => json(app, '/auth/register', { email: 'nope', password: SECRET_PASSWORD })],
  ['a weak password', 422, 'WEAK_PASSWORD', (app) => json(app, '/auth/register', { email: uniqueEmail(), password: 'password1' })],
  [
    'a password over 72 bytes',
    422,
    'WEAK_PASSWORD',
    (app) => json(app, '/auth/register', { email: uniqueEmail(), password: SECRET_PASSWORD.repeat(4) }),
  ],
  [
    'unknown credentials',
    401,
    'INVALID_CREDENTIALS',
    (app) => json(app, '/auth/login', { email: uniqueEmail(), password: SECRET_PASSWORD }),
  ],
  ['a garbage refresh token', 401, 'REFRESH_TOKEN_INVALID', (app) => json(app, '/auth/refresh', { refreshToken: 'x'.repeat(43) })],
  ['no access token', 401, 'TOKEN_MISSING', (app) => request(app).get('/users/me')],
  ['a garbage access token', 401, 'TOKEN_INVALID', (app) => request(app).get('/users/me').set('Authorization', 'Bearer a.b.c')],
];

describe('HTTP conventions', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { CORS_ORIGINS: 'https://app.example.com', BODY_LIMIT: '1kb' } });
  });
  afterAll(async () => {
    await h.close();
  });

  describe('bodies', () => {
    it('when /auth/login gets a text/plain body, then it answers 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const res = await request(h.app).post('/auth/login').set('Content-Type', 'text/plain').send('hello');
      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('when the body is gzip-compressed, then it answers 415 UNSUPPORTED_MEDIA_TYPE (signatures cover the bytes sent)', async () => {
      const body = gzipSync(JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }));
      const res = await request(h.app)
        .post('/auth/login')
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', 'gzip')
        .send(body);
      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('when the JSON is broken, then it answers 400 MALFORMED_BODY', async () => {
      const res = await request(h.app).post('/auth/login').set('Content-Type', 'application/json').send('{"email": "a@example.test",');
      expectProblem(res, 400, 'MALFORMED_BODY');
    });

    it('when the body is over BODY_LIMIT, then it answers 413 PAYLOAD_TOO_LARGE', async () => {
      const res = await request(h.app)
        .post('/auth/register')
        .send({ email: uniqueEmail(), password: GOOD_PASSWORD, padding: 'x'.repeat(2048) });
      expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
    });

    it('when the body is just under BODY_LIMIT, then it is accepted', async () => {
      const body = { email: uniqueEmail(), password: GOOD_PASSWORD, padding: '' };
      body.padding = 'x'.repeat(1024 - Buffer.byteLength(JSON.stringify(body)));
      expect(Buffer.byteLength(JSON.stringify(body))).toBe(1024);
      const res = await request(h.app).post('/auth/register').send(body);
      expect(res.status).toBe(201);
    });

    it('when the content type is application/json with a charset, then it is accepted', async () => {
      const res = await request(h.app)
        .post('/auth/register')
        .set('Content-Type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }));
      expect(res.status).toBe(201);
    });

    it.each([
      'application/json; charset=UTF-8',
      'application/json;charset="utf-8"',
      'application/json; Charset=Utf-8',
      'application/problem+json; charset=utf-8',
    ])('when the content type is %p, then the body is read as UTF-8 and accepted', async (type) => {
      const res = await raw(h.app, '/auth/register', type, JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }));
      expect(res.status).toBe(201);
    });

    it.each([
      'application/json; charset=utf-16le',
      'application/json; charset=UTF-16LE',
      'application/json; charset=utf-16',
      'application/json; charset="utf-32"',
      'application/json; charset=iso-8859-1',
      'application/json; charset=utf8',
      'application/json; charset=',
    ])(
      'when the content type is %p, then it answers 415 UNSUPPORTED_MEDIA_TYPE (JSON between systems is UTF-8, RFC 8259 section 8.1)',
      async (type) => {
        const res = await raw(h.app, '/auth/register', type, JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }));
        expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      },
    );

    it('when a body really is UTF-16LE and says so, then it answers 415 UNSUPPORTED_MEDIA_TYPE and no account is made', async () => {
      const email = uniqueEmail();
      const body = Buffer.from(JSON.stringify({ email, password: GOOD_PASSWORD }), 'utf16le');
      const res = await request(h.app).post('/auth/register').set('Content-Type', 'application/json; charset=utf-16le').send(body);
      expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      const users = await h.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
      expect(users).toEqual([]);
    });
  });

  describe('request ids', () => {
    it.each([
      ['a simple id', 'abc-123'],
      ['every allowed character', 'Az09._:-'],
      ['128 characters', 'r'.repeat(128)],
    ])('when X-Request-Id is %s, then it is echoed', async (_name, id) => {
      const res = await request(h.app).get('/healthz').set('X-Request-Id', id);
      expect(res.headers['x-request-id']).toBe(id);
    });

    it.each([
      ['129 characters long', 'r'.repeat(129)],
      ['with a space', 'abc 123'],
      ['with a slash', 'abc/123'],
      ['with angle brackets', '<script>'],
      ['with a non-ASCII letter', 'caf\u00e9'],
    ])('when X-Request-Id is %s, then it is replaced with a new UUID', async (_name, id) => {
      const res = await request(h.app).get('/healthz').set('X-Request-Id', id);
      expect(res.headers['x-request-id']).toMatch(UUID);
    });

    it('when no X-Request-Id is sent, then each response gets its own UUID', async () => {
      const [a, b] = await Promise.all([request(h.app).get('/healthz'), request(h.app).get('/healthz')]);
      expect(a.headers['x-request-id']).toMatch(UUID);
      expect(b.headers['x-request-id']).toMatch(UUID);
      expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    });

    it('when a request succeeds, then it too has X-Request-Id', async () => {
      const res = await request(h.app)
        .post('/auth/register')
        .set('X-Request-Id', 'ok-request')
        .send({ email: uniqueEmail(), password: GOOD_PASSWORD });
      expect(res.status).toBe(201);
      expect(res.headers['x-request-id']).toBe('ok-request');
    });

    it('when the caller gave a valid id, then audit events record it', async () => {
      const id = `audit-${randomUUID()}`;
      const res = await request(h.app)
        .post('/auth/register')
        .set('X-Request-Id', id)
        .send({ email: uniqueEmail(), password: GOOD_PASSWORD });
      const events = await h.database.db.selectFrom('audit_events').select(['type', 'user_id']).where('request_id', '=', id).execute();
      expect(events).toEqual([{ type: 'user.registered', user_id: res.body.user.id }]);
    });

    it.each(FAILING_REQUESTS)(
      'when the request has %s, then the error carries X-Request-Id equal to its requestId',
      async (_name, status, code, send) => {
        const valid = `err-${randomUUID()}`;
        const echoed = await send(h.app).set('X-Request-Id', valid);
        expectProblem(echoed, status, code);
        expect(echoed.headers['x-request-id']).toBe(valid);
        expect(echoed.body.requestId).toBe(valid);

        const replaced = await send(h.app).set('X-Request-Id', 'not valid!');
        expect(replaced.headers['x-request-id']).toMatch(UUID);
        expect(replaced.body.requestId).toBe(replaced.headers['x-request-id']);
      },
    );
  });

  describe('errors', () => {
    it.each(FAILING_REQUESTS)(
      'when the request has %s, then it answers %i %s as application/problem+json',
      async (_name, status, code, send) => {
        const res = await send(h.app);
        expectProblem(res, status, code);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(
          Object.keys(res.body)
            .filter((key) => key !== 'errors')
            .sort(),
        ).toEqual(PROBLEM_KEYS);
        expect(res.body.type).toMatch(/^[a-z][a-z0-9+.-]*:\S+$/);
        if (res.body.errors !== undefined) {
          expect(res.body.errors).toEqual(expect.arrayContaining([{ path: expect.any(String), message: expect.any(String) }]));
        }
      },
    );

    it.each(FAILING_REQUESTS)(
      'when the request has %s, then the error body has no stack trace and no password',
      async (_name, _status, _code, send) => {
        const text = JSON.stringify((await send(h.app)).body);
        expect(text).not.toMatch(STACK_FRAME);
        expect(text).not.toContain('stack');
        expect(text).not.toContain(SECRET_PASSWORD);
        expect(text).not.toContain('password1');
      },
    );

    it('when the body is too large and holds a password, then the 413 does not repeat it', async () => {
      const res = await request(h.app)
        .post('/auth/login')
        .send({ email: uniqueEmail(), password: SECRET_PASSWORD, padding: 'x'.repeat(2048) });
      expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
      expect(JSON.stringify(res.body)).not.toContain(SECRET_PASSWORD);
    });

    it('when a wrong password is given for a real account, then the 401 does not repeat it', async () => {
      const user = await registerUser(h.app);
      const res = await request(h.app).post('/auth/login').send({ email: user.email, password: SECRET_PASSWORD });
      expectProblem(res, 401, 'INVALID_CREDENTIALS');
      expect(JSON.stringify(res.body)).not.toContain(SECRET_PASSWORD);
    });
  });

  describe('security headers', () => {
    it.each<[string, Send]>([
      ['a success', (app) => request(app).get('/healthz')],
      ['an error', (app) => request(app).get('/no/such/route')],
    ])('when the response is %s, then helmet’s headers are present and x-powered-by is not', async (_name, send) => {
      const res = await send(h.app);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      expect(res.headers['x-frame-options']).toBeDefined();
      expect(res.headers['strict-transport-security']).toBeDefined();
      expect(res.headers['x-powered-by']).toBeUndefined();
    });
  });

  describe('CORS', () => {
    const preflight = (origin: string) =>
      request(h.app)
        .options('/auth/login')
        .set('Origin', origin)
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'content-type');

    it('when a listed origin sends a preflight, then it is allowed with credentials', async () => {
      const res = await preflight('https://app.example.com');
      expect(res.status).toBeLessThan(300);
      expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com');
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(res.headers['access-control-allow-methods']).toContain('POST');
    });

    it.each(['https://evil.example.com', 'https://app.example.com.evil.test', 'http://app.example.com', 'null'])(
      'when the unlisted origin %s sends a preflight, then no allow-origin header is given',
      async (origin) => {
        const res = await preflight(origin);
        expect(res.headers['access-control-allow-origin']).toBeUndefined();
      },
    );

    it('when a listed origin makes a request, then the response allows that origin, never "*"', async () => {
      const res = await request(h.app).get('/healthz').set('Origin', 'https://app.example.com');
      expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com');
      expect(res.headers.vary).toMatch(/Origin/i);
    });
  });

  describe('probes', () => {
    it('when the database answers, then /readyz answers 200', async () => {
      const res = await request(h.app).get('/readyz');
      expect(res.status).toBe(200);
    });

    it('when the process runs, then /healthz answers 200', async () => {
      expect((await request(h.app).get('/healthz')).status).toBe(200);
    });
  });

  describe('audit trail', () => {
    it('when every account flow has run, then no stored event holds a password or a token', async () => {
      const first = 'first passphrase for audit';
      const second = 'second passphrase for audit';
      const wrong = 'wrong passphrase for audit';
      const username = uniqueUsername();
      const user = await registerUser(h.app, { password: first, username });
      const secrets = [first, second, wrong, user.accessToken, user.refreshToken];
      const keep = (body: { accessToken?: string; refreshToken?: string }) => {
        if (body.accessToken) secrets.push(body.accessToken);
        if (body.refreshToken) secrets.push(body.refreshToken);
        return body;
      };

      const login = (email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
      const auth = (token: string) => `Bearer ${token}`;
      await login(user.email, wrong);
      await login(uniqueEmail('nobody'), wrong);
      const phone = keep((await login(user.email, first)).body);
      const laptop = keep((await login(user.email, first)).body);
      const rotated = keep((await request(h.app).post('/auth/refresh').send({ refreshToken: phone.refreshToken! })).body);
      await request(h.app).post('/auth/refresh').send({ refreshToken: phone.refreshToken! }); // a retry within grace
      await request(h.app).post('/auth/logout').send({ refreshToken: rotated.refreshToken! });
      const sessions = await request(h.app).get('/users/me/sessions').set('Authorization', auth(user.accessToken));
      const laptopSession = (sessions.body as { id: string; current: boolean }[]).find((item) => !item.current)!;
      await request(h.app).delete(`/users/me/sessions/${laptopSession.id}`).set('Authorization', auth(user.accessToken));
      await request(h.app)
        .post('/users/me/password')
        .set('Authorization', auth(user.accessToken))
        .send({ currentPassword: wrong, newPassword: second });
      await request(h.app)
        .post('/users/me/password')
        .set('Authorization', auth(user.accessToken))
        .send({ currentPassword: first, newPassword: second });
      await request(h.app).post('/auth/logout-all').set('Authorization', auth(user.accessToken));
      await request(h.app).post('/auth/refresh').send({ refreshToken: laptop.refreshToken! }); // a revoked session's token

      const events = await h.database.db.selectFrom('audit_events').selectAll().execute();
      const mine = events.filter((event) => event.user_id === user.id);
      expect(new Set(mine.map((event) => event.type))).toEqual(
        new Set([
          'user.registered',
          'auth.failed',
          'user.logged_in',
          'token.refreshed',
          'user.logged_out',
          'session.revoked',
          'password.changed',
        ]),
      );
      const stored = JSON.stringify(events);
      for (const secret of secrets) expect(stored).not.toContain(secret);
      expect(stored).not.toMatch(/\$2[aby]?\$/);
    });
  });
});

describe('HTTP conventions when the database cannot be reached', () => {
  let working: Harness;
  let dead: Harness;
  let deadDatabase: DatabaseHandle;
  beforeAll(async () => {
    working = await createHarness();
    // Nothing listens on port 1: every connection attempt is refused at once.
    deadDatabase = await openDatabase({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', connectTimeoutMs: 500 });
    dead = await createHarness({ database: deadDatabase, keys: working.keys });
  });
  afterAll(async () => {
    await dead.close();
    await deadDatabase.close();
    await working.close();
  });

  it.each<[string, Send]>([
    ['login', (app) => request(app).post('/auth/login').send({ email: uniqueEmail(), password: GOOD_PASSWORD })],
    ['register', (app) => request(app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD })],
    [
      'refresh',
      (app) =>
        request(app)
          .post('/auth/refresh')
          .send({ refreshToken: 'A'.repeat(43) }),
    ],
  ])('when %s is called, then it answers 503 UNAVAILABLE with Retry-After', async (_name, send) => {
    const res = await send(dead.app).set('X-Request-Id', 'db-down');
    expectProblem(res, 503, 'UNAVAILABLE');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.headers['x-request-id']).toBe('db-down');
    expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres:|select|insert/i);
  });

  it('when a valid access token is checked, then it answers 503 UNAVAILABLE rather than 401', async () => {
    const user = await registerUser(working.app);
    const res = await request(dead.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`);
    expectProblem(res, 503, 'UNAVAILABLE');
    expect(res.headers['retry-after']).toBeDefined();
  });

  it('when /readyz is asked, then it answers 503 UNAVAILABLE with Retry-After', async () => {
    const res = await request(dead.app).get('/readyz');
    expectProblem(res, 503, 'UNAVAILABLE');
    expect(res.headers['retry-after']).toBeDefined();
  });

  it('when /healthz is asked, then it still answers 200', async () => {
    expect((await request(dead.app).get('/healthz')).status).toBe(200);
  });
});
