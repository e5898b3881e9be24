import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, uniqueUsername } from '../helpers/factories';

describe('GET /users/me', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const me = (authorization?: string) => {
    const req = request(h.app).get('/users/me');
    return authorization === undefined ? req : req.set('Authorization', authorization);
  };

  it('when the access token is live, then it answers 200 with the User and its permissions', async () => {
    const username = uniqueUsername();
    const user = await registerUser(h.app, { username });
    const res = await me(`Bearer ${user.accessToken}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      id: user.id,
      email: user.email,
      username,
      roles: ['user'],
      createdAt: h.clock.now().toISOString(),
      lastLoginAt: null,
      emailVerified: false,
      permissions: ['profile:read', 'profile:write'],
    });
  });

  it('when the user has logged in, then lastLoginAt is the time of that login', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(30);
    const login = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
    const res = await me(`Bearer ${login.body.accessToken}`);
    expect(res.body.lastLoginAt).toBe(h.clock.now().toISOString());
  });

  it('when the scheme is written in lower case, then the token is still accepted', async () => {
    const user = await registerUser(h.app);
    expect((await me(`bearer ${user.accessToken}`)).status).toBe(200);
  });

  it('when there is no Authorization header, then it answers 401 TOKEN_MISSING with a Bearer challenge', async () => {
    const res = await me();
    expectProblem(res, 401, 'TOKEN_MISSING');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it.each<[string, (token: string) => string]>([
    ['a garbage bearer token', () => 'Bearer garbage'],
    ['a three-part garbage token', () => 'Bearer aaa.bbb.ccc'],
    ['Basic credentials', () => `Basic ${Buffer.from('someone@example.test:secret').toString('base64')}`],
    ['the scheme without a token', () => 'Bearer'],
    ['a token without a scheme', (token) => token],
    ['a token with its signature cut off', (token) => `Bearer ${token.slice(0, token.lastIndexOf('.') + 1)}`],
    [
      'a token with a changed payload',
      (token) => {
        const [header, payload, signature] = token.split('.');
        const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
        const forged = Buffer.from(JSON.stringify({ ...claims, roles: ['admin'] })).toString('base64url');
        return `Bearer ${header}.${forged}.${signature}`;
      },
    ],
  ])('when the Authorization header has %s, then it answers 401 TOKEN_INVALID with a challenge', async (_name, headerOf) => {
    const user = await registerUser(h.app);
    const res = await me(headerOf(user.accessToken));
    expectProblem(res, 401, 'TOKEN_INVALID');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
  });

  it('when the access token has expired, then it answers 401 TOKEN_EXPIRED with a challenge', async () => {
    const user = await registerUser(h.app);
    // Past the lifetime and the 30 s of allowed clock skew.
    h.clock.advance(h.config.accessTokenTtl + 31);
    const res = await me(`Bearer ${user.accessToken}`);
    expectProblem(res, 401, 'TOKEN_EXPIRED');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('when the session was logged out, then it answers 401 SESSION_REVOKED with a challenge', async () => {
    const user = await registerUser(h.app);
    expect((await request(h.app).post('/auth/logout').send({ refreshToken: user.refreshToken })).status).toBe(204);
    const res = await me(`Bearer ${user.accessToken}`);
    expectProblem(res, 401, 'SESSION_REVOKED');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
  });

  it('when the user was disabled, then a still-unexpired token gets 403 ACCOUNT_DISABLED', async () => {
    const user = await registerUser(h.app);
    await h.database.db.updateTable('users').set({ is_active: false }).where('id', '=', user.id).execute();
    expectProblem(await me(`Bearer ${user.accessToken}`), 403, 'ACCOUNT_DISABLED');
  });

  it('when it answers, then the body carries no password, hash or token', async () => {
    const user = await registerUser(h.app);
    const res = await me(`Bearer ${user.accessToken}`);
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(user.password);
    expect(text).not.toContain(user.refreshToken);
    expect(text).not.toMatch(/\$2[aby]?\$/);
  });
});
