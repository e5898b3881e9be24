import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import type { Express } from 'express';
import request from 'supertest';
import { createApp } from '../../src/app';
import { createLogger } from '../../src/logger';
import { bearer, expectProblem, GOOD_PASSWORD, registerAdmin, registerUser, type RegisteredUser, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

/*
 * CONTRACT.md section 2: no input of any shape is ever a 500. Each request here once was one
 * (or is its neighbour); each must now be the 4xx the contract names, as problem+json, and
 * be logged as a 4xx is: one request line at info, nothing at error level.
 */

/** pino's numeric levels. */
const INFO = 30;
const ERROR = 50;

interface LogLine {
  level: number;
  reqId?: string;
  res?: { statusCode: number };
  code?: string;
  msg?: string;
}

/** The app of a harness again, over its database and keys, with its log lines kept in memory. */
function loggedApp(h: Harness): { app: Express; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const app = createApp({ config: h.config, db: h.database.db, keys: h.keys, logger, clock: h.clock.now });
  return { app, lines };
}

type Send = (app: Express, users: { user: RegisteredUser; admin: RegisteredUser }) => request.Test;

const post = (app: Express, path: string, body: unknown) =>
  request(app)
    .post(path)
    .send(body as object);
const rawJson = (app: Express, path: string, text: string) => request(app).post(path).set('Content-Type', 'application/json').send(text);

/** [what the request has, status, code, the failing field's path or undefined, how to send it] */
const HOSTILE_REQUESTS: [string, number, string, string | undefined, Send][] = [
  // U+0000 in a string: PostgreSQL refuses it mid-query.
  [
    'U+0000 in the email at login',
    422,
    'VALIDATION_FAILED',
    'email',
    (app) => post(app, '/auth/login', { email: 'a\u0000@example.test', password: GOOD_PASSWORD }),
  ],
  [
    'U+0000 in the password at register',
    422,
    'VALIDATION_FAILED',
    'password',
    (app) => post(app, '/auth/register', { email: uniqueEmail(), password: `${GOOD_PASSWORD}\u0000` }),
  ],
  [
    'U+0000 in the username at register',
    422,
    'VALIDATION_FAILED',
    'username',
    (app) => post(app, '/auth/register', { email: uniqueEmail(), password: GOOD_PASSWORD, username: 'ab\u0000cd' }),
  ],
  [
    'U+0000 in a refresh token',
    422,
    'VALIDATION_FAILED',
    'refreshToken',
    (app) => post(app, '/auth/refresh', { refreshToken: `${'a'.repeat(42)}\u0000` }),
  ],
  [
    'U+0000 deep in a field no schema reads',
    422,
    'VALIDATION_FAILED',
    'extra.list.1.name',
    (app) =>
      post(app, '/auth/login', { email: uniqueEmail(), password: GOOD_PASSWORD, extra: { list: [{ name: 'ok' }, { name: 'x\u0000' }] } }),
  ],
  [
    'U+0000 in a key',
    422,
    'VALIDATION_FAILED',
    'a\\u0000b',
    (app) => rawJson(app, '/auth/login', `{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}","a\\u0000b":1}`),
  ],
  ['a body that is one string holding U+0000', 422, 'VALIDATION_FAILED', 'body', (app) => rawJson(app, '/auth/login', '"\\u0000"')],
  [
    'U+0000 in a role',
    422,
    'VALIDATION_FAILED',
    'roles.0',
    (app, { user, admin }) =>
      request(app)
        .put(`/admin/users/${user.id}/roles`)
        .set(bearer(admin.accessToken))
        .send({ roles: ['user\u0000'] }),
  ],
  [
    'U+0000 in a query value',
    422,
    'VALIDATION_FAILED',
    'cursor',
    (app, { admin }) => request(app).get('/admin/users?cursor=%00').set(bearer(admin.accessToken)),
  ],

  // A path that cannot be percent-decoded names nothing.
  ['a bad escape in a /docs path', 404, 'NOT_FOUND', undefined, (app) => request(app).get('/docs/%E0%A4%A')],
  ['a bad escape in a session id, without a token', 404, 'NOT_FOUND', undefined, (app) => request(app).delete('/users/me/sessions/%ZZ')],
  [
    'a bad escape in a session id, with a token',
    404,
    'NOT_FOUND',
    undefined,
    (app, { user }) => request(app).delete('/users/me/sessions/%ZZ').set(bearer(user.accessToken)),
  ],
  [
    'a bad escape in a user id',
    404,
    'NOT_FOUND',
    undefined,
    (app, { admin }) =>
      request(app)
        .put('/admin/users/%E0%A4%A/roles')
        .set(bearer(admin.accessToken))
        .send({ roles: ['user'] }),
  ],
  ['a truncated escape at the end of a path', 404, 'NOT_FOUND', undefined, (app) => request(app).get('/docs/%')],
  [
    'an escaped U+0000 in a path',
    404,
    'NOT_FOUND',
    undefined,
    (app, { user }) => request(app).delete('/users/me/sessions/%00').set(bearer(user.accessToken)),
  ],

  // Bodies in a charset other than UTF-8.
  [
    'a body declared UTF-16LE',
    415,
    'UNSUPPORTED_MEDIA_TYPE',
    undefined,
    (app) =>
      request(app)
        .post('/auth/login')
        .set('Content-Type', 'application/json; charset=utf-16le')
        .send(JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD })),
  ],

  // Odd shapes that are already refused cleanly: kept here so they stay so.
  [
    'a repeated limit',
    422,
    'VALIDATION_FAILED',
    'limit',
    (app, { admin }) => request(app).get('/admin/users?limit=1&limit=2').set(bearer(admin.accessToken)),
  ],
  [
    'a repeated cursor',
    422,
    'VALIDATION_FAILED',
    'cursor',
    (app, { admin }) => request(app).get('/admin/events?cursor=a&cursor=b').set(bearer(admin.accessToken)),
  ],
  [
    'a limit past any number',
    422,
    'VALIDATION_FAILED',
    'limit',
    (app, { admin }) => request(app).get('/admin/users?limit=1e400').set(bearer(admin.accessToken)),
  ],
  [
    'a limit past the safe integers',
    422,
    'VALIDATION_FAILED',
    'limit',
    (app, { admin }) => request(app).get('/admin/events?limit=99999999999999999999999').set(bearer(admin.accessToken)),
  ],
  [
    '__proto__ as a query value',
    422,
    'VALIDATION_FAILED',
    'userId',
    (app, { admin }) => request(app).get('/admin/events?__proto__=1&userId=__proto__').set(bearer(admin.accessToken)),
  ],
  [
    'an email that is an object with __proto__',
    422,
    'VALIDATION_FAILED',
    'email',
    (app) => rawJson(app, '/auth/login', `{"email":{"__proto__":{"length":3}},"password":"${GOOD_PASSWORD}"}`),
  ],
  [
    'roles that are an object with __proto__',
    422,
    'VALIDATION_FAILED',
    'roles',
    (app, { user, admin }) =>
      request(app)
        .put(`/admin/users/${user.id}/roles`)
        .set(bearer(admin.accessToken))
        .set('Content-Type', 'application/json')
        .send('{"roles":{"__proto__":["admin"]}}'),
  ],
  ['numbers past any double', 422, 'VALIDATION_FAILED', 'email', (app) => rawJson(app, '/auth/login', '{"email":1e999,"password":-1e999}')],
  [
    'U+0000 in JSON nested 5000 deep',
    422,
    'VALIDATION_FAILED',
    Array(5000).fill('0').join('.'),
    (app) => rawJson(app, '/auth/login', `${'['.repeat(5000)}"\\u0000"${']'.repeat(5000)}`),
  ],
  [
    'JSON nested 5000 deep',
    422,
    'VALIDATION_FAILED',
    'body',
    (app) => rawJson(app, '/auth/login', `${'['.repeat(5000)}${']'.repeat(5000)}`),
  ],
];

describe('no 500 for any input (CONTRACT.md section 2)', () => {
  let h: Harness;
  let logged: { app: Express; lines: LogLine[] };
  let users: { user: RegisteredUser; admin: RegisteredUser };
  beforeAll(async () => {
    h = await createHarness();
    logged = loggedApp(h);
    users = { user: await registerUser(h.app), admin: await registerAdmin(h.app, h.database.db) };
  });
  afterAll(async () => {
    await h.close();
  });

  it.each(HOSTILE_REQUESTS)('when the request has %s, then it answers %i %s as problem+json', async (_name, status, code, path, send) => {
    const res = await send(logged.app, users);

    expectProblem(res, status, code);
    if (path !== undefined) expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
  });

  it.each(HOSTILE_REQUESTS)(
    'when the request has %s, then it is logged at info with its code, and nothing at error level',
    async (_name, status, code, _path, send) => {
      const id = `hostile-${randomUUID()}`;
      const before = logged.lines.length;

      const res = await send(logged.app, users).set('X-Request-Id', id);
      // The line is written when the response finishes; let that event run.
      await new Promise((resolve) => setImmediate(resolve));

      expect(res.status).toBe(status);
      const written = logged.lines.slice(before);
      expect(written.filter((line) => line.level >= ERROR)).toEqual([]);
      expect(
        written.filter((line) => line.reqId === id).map((line) => ({ level: line.level, status: line.res?.statusCode, code: line.code })),
      ).toEqual([{ level: INFO, status, code }]);
    },
  );

  it('when a body has U+0000 in many strings, then each is named, up to twenty', async () => {
    const res = await post(logged.app, '/auth/login', {
      email: uniqueEmail(),
      password: GOOD_PASSWORD,
      list: Array.from({ length: 50 }, () => '\u0000'),
    });

    expectProblem(res, 422, 'VALIDATION_FAILED');
    expect(res.body.errors).toEqual(Array.from({ length: 20 }, (_, index) => ({ path: `list.${index}`, message: expect.any(String) })));
  });

  it('when a path holds a well-formed escape, then it is decoded and routed as before', async () => {
    const res = await request(logged.app).get('/docs/index%2Ecss');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/css/);
  });
});

describe('no 500 for any input, in production (unsigned, no token)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { NODE_ENV: 'production', HMAC_CLIENTS: `app:${'s'.repeat(32)}` } });
  });
  afterAll(async () => {
    await h.close();
  });

  it.each(['/docs/%E0%A4%A', '/docs/%ZZ', '/users/me/sessions/%ZZ', '/admin/users/%E0%A4%A/roles'])(
    'when %s is asked with no signature and no token, then it answers 404 NOT_FOUND',
    async (path) => {
      const res = await request(h.app).get(path);
      expectProblem(res, 404, 'NOT_FOUND');
    },
  );

  it('when /docs/{asset} is asked unsigned, then it is served (the check did not put /docs behind the signature)', async () => {
    const res = await request(h.app).get('/docs/index.css');
    expect(res.status).toBe(200);
  });
});

describe('the /docs assets, whatever the request headers', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it.each([
    ['an unsatisfiable Range', 'Range', 'bytes=999999999-'],
    ['a Range past the end of a small file', 'Range', 'bytes=100000-200000'],
    ['an If-Match no version has', 'If-Match', '"not-this-one"'],
    ['an If-Unmodified-Since before the file existed', 'If-Unmodified-Since', 'Thu, 01 Jan 1970 00:00:00 GMT'],
  ])('when an asset is asked with %s, then it is sent whole (200), never a 500', async (_name, header, value) => {
    for (const asset of ['favicon-16x16.png', 'swagger-ui.css', 'gatehouse-docs.js']) {
      const res = await request(h.app).get(`/docs/${asset}`).set(header, value);
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
    }
  });

  it('when an asset is asked again with its ETag, then it answers 304 with no body', async () => {
    const first = await request(h.app).get('/docs/swagger-ui.css');
    expect(first.status).toBe(200);
    expect(first.headers.etag).toEqual(expect.stringMatching(/^"[^"]+"$/));
    expect(first.headers['cache-control']).toBe('public, max-age=3600');

    const again = await request(h.app).get('/docs/swagger-ui.css').set('If-None-Match', first.headers.etag!);
    expect(again.status).toBe(304);
    expect(again.text ?? '').toBe('');
  });

  it('when an image asset is asked, then its bytes are the file’s', async () => {
    const res = await request(h.app)
      .get('/docs/favicon-16x16.png')
      .buffer(true)
      .parse((response, done) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => done(null, Buffer.concat(chunks)));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect((res.body as Buffer).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });
});

describe('the client address behind a proxy (TRUST_PROXY=1)', () => {
  let h: Harness;
  /** What the service records for this test's own connection, with no X-Forwarded-For. */
  let socketAddress: string;
  beforeAll(async () => {
    h = await createHarness({ env: { TRUST_PROXY: '1' } });
    socketAddress = (await loginFrom(undefined)).ip;
  });
  afterAll(async () => {
    await h.close();
  });

  /** Logs a new user in with the given X-Forwarded-For; the ip its session and login event recorded. */
  async function loginFrom(forwardedFor: string | undefined): Promise<{ status: number; ip: string; eventIp: string | null }> {
    const user = await registerUser(h.app);
    const login = request(h.app).post('/auth/login');
    if (forwardedFor !== undefined) void login.set('X-Forwarded-For', forwardedFor);
    const res = await login.send({ email: user.email, password: user.password });
    expect(res.status).toBe(200);
    const sessions = await request(h.app).get('/users/me/sessions').set(bearer(res.body.accessToken));
    const current = (sessions.body as { ip: string; current: boolean }[]).find((session) => session.current)!;
    const event = await h.database.db
      .selectFrom('audit_events')
      .select('ip')
      .where('user_id', '=', user.id)
      .where('type', '=', 'user.logged_in')
      .executeTakeFirstOrThrow();
    return { status: res.status, ip: current.ip, eventIp: event.ip };
  }

  it('when no X-Forwarded-For is sent, then the socket’s address is an IP', () => {
    expect(isIP(socketAddress)).not.toBe(0);
  });

  it.each([
    ['an IPv4 address', '203.0.113.7', '203.0.113.7'],
    ['an IPv6 address', '2001:db8::1', '2001:db8::1'],
    ['a chain whose last hop is an address', 'garbage, 198.51.100.2', '198.51.100.2'],
  ])('when X-Forwarded-For is %s, then the session and its event record it', async (_name, header, expected) => {
    const { ip, eventIp } = await loginFrom(header);
    expect({ ip, eventIp }).toEqual({ ip: expected, eventIp: expected });
  });

  it.each([
    ['a word', 'unknown'],
    ['a host name', 'proxy.internal.example'],
    ['300 characters', 'x'.repeat(300)],
    ['an address with a 100-character IPv6 zone', `fe80::1%${'z'.repeat(100)}`],
    ['an address and a port', '203.0.113.7:4711'],
    ['an obfuscated field of RFC 7239', '_hidden'],
  ])('when X-Forwarded-For is %s, then the login succeeds and records the socket’s address', async (_name, header) => {
    const { status, ip, eventIp } = await loginFrom(header);
    expect({ status, ip, eventIp }).toEqual({ status: 200, ip: socketAddress, eventIp: socketAddress });
  });

  it('when registration comes with a 300-character X-Forwarded-For, then it succeeds (201) and records the socket’s address', async () => {
    const res = await request(h.app)
      .post('/auth/register')
      .set('X-Forwarded-For', 'y'.repeat(300))
      .send({ email: uniqueEmail(), password: GOOD_PASSWORD });
    expect(res.status).toBe(201);
    const event = await h.database.db
      .selectFrom('audit_events')
      .select('ip')
      .where('user_id', '=', res.body.user.id)
      .executeTakeFirstOrThrow();
    expect(event.ip).toBe(socketAddress);
  });
});
