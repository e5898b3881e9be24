import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, type RegisteredUser, sessionIdOf, uniqueEmail, uniqueUsername } from '../helpers/factories';

const NEW_PASSWORD = 'a brand new passphrase';
const WRONG_PASSWORD = 'not my password at all';
const MAX_FAILURES = 3;
/** Documentation addresses (RFC 5737): TRUST_PROXY=1 makes X-Forwarded-For the client address. */
const HERE = '203.0.113.9';
const THERE = '198.51.100.9';

describe('POST /users/me/password', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { LOGIN_MAX_FAILURES: String(MAX_FAILURES), TRUST_PROXY: '1' } });
  });
  afterAll(async () => {
    await h.close();
  });

  const change = (accessToken: string, body: object) =>
    request(h.app).post('/users/me/password').set('Authorization', `Bearer ${accessToken}`).send(body);
  const login = (email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
  const me = (accessToken: string) => request(h.app).get('/users/me').set('Authorization', `Bearer ${accessToken}`);
  const refresh = (refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
  const changeFrom = (ip: string, accessToken: string, currentPassword: string) =>
    request(h.app)
      .post('/users/me/password')
      .set('X-Forwarded-For', ip)
      .set('Authorization', `Bearer ${accessToken}`)
      .send({ currentPassword, newPassword: NEW_PASSWORD });
  const loginFrom = (ip: string, email: string, password: string) =>
    request(h.app).post('/auth/login').set('X-Forwarded-For', ip).send({ email, password });
  const eventsOf = (userId: string, type: string) =>
    h.database.db.selectFrom('audit_events').select(['ip', 'data']).where('user_id', '=', userId).where('type', '=', type).execute();

  /** The user, plus a second session of theirs on another device. */
  async function userWithTwoSessions(): Promise<{ user: RegisteredUser; other: { accessToken: string; refreshToken: string } }> {
    const user = await registerUser(h.app);
    const other = await login(user.email, user.password);
    expect(other.status).toBe(200);
    return { user, other: other.body };
  }

  describe('success', () => {
    it('when the current password is right and the new one strong, then it answers 204 with no body', async () => {
      const user = await registerUser(h.app);
      const res = await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD });
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
    });

    it('when it succeeds, then the old password stops working for login and the new one works', async () => {
      const user = await registerUser(h.app);
      expect((await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD })).status).toBe(204);

      expectProblem(await login(user.email, user.password), 401, 'INVALID_CREDENTIALS');
      expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
    });

    it('when it succeeds, then every other session is revoked and the current one keeps working', async () => {
      const { user, other } = await userWithTwoSessions();
      expect((await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD })).status).toBe(204);

      expectProblem(await me(other.accessToken), 401, 'SESSION_REVOKED');
      expectProblem(await refresh(other.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      expect((await me(user.accessToken)).status).toBe(200);
      expect((await refresh(user.refreshToken)).status).toBe(200);
    });

    it('when it succeeds, then other users are unaffected', async () => {
      const user = await registerUser(h.app);
      const bystander = await registerUser(h.app);
      await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD });
      expect((await me(bystander.accessToken)).status).toBe(200);
      expect((await login(bystander.email, bystander.password)).status).toBe(200);
    });

    it('when it succeeds, then a password.changed audit event is written without either password', async () => {
      const { user } = await userWithTwoSessions();
      await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD });

      const events = await h.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', user.id).execute();
      expect(events.filter((event) => event.type === 'password.changed')).toHaveLength(1);
      const stored = JSON.stringify(events);
      expect(stored).not.toContain(user.password);
      expect(stored).not.toContain(NEW_PASSWORD);
    });
  });

  describe('a wrong current password is a failed login (CONTRACT.md sections 3 and 7)', () => {
    it('when the current password is wrong, then it counts as a failed login of that email from that address, and is audited', async () => {
      const user = await registerUser(h.app);
      for (let i = 0; i < MAX_FAILURES - 1; i += 1)
        expectProblem(await changeFrom(HERE, user.accessToken, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');

      // One failed login more from the same address is the last one allowed.
      expectProblem(await loginFrom(HERE, user.email, WRONG_PASSWORD), 423, 'ACCOUNT_LOCKED');
      const failed = await eventsOf(user.id, 'auth.failed');
      expect(failed).toHaveLength(MAX_FAILURES);
      expect(failed.filter((event) => event.data.reason === 'wrong_current_password')).toEqual(
        Array(MAX_FAILURES - 1).fill({ ip: HERE, data: { reason: 'wrong_current_password', sessionId: sessionIdOf(user.accessToken) } }),
      );
      expect(JSON.stringify(failed)).not.toContain(WRONG_PASSWORD);
    });

    it(`when ${MAX_FAILURES} current passwords are wrong, then the last answers 423 with Retry-After, the lock is audited, and the right password is refused there`, async () => {
      const user = await registerUser(h.app);
      const responses = [];
      for (let i = 0; i < MAX_FAILURES; i += 1) responses.push(await changeFrom(HERE, user.accessToken, WRONG_PASSWORD));

      for (const res of responses.slice(0, -1)) expectProblem(res, 401, 'INVALID_CREDENTIALS');
      expectProblem(responses.at(-1)!, 423, 'ACCOUNT_LOCKED');
      expect(Number(responses.at(-1)!.headers['retry-after'])).toBe(h.config.lockoutDuration);
      const lockedUntil = new Date(h.clock.now().getTime() + h.config.lockoutDuration * 1000).toISOString();
      expect(await eventsOf(user.id, 'user.locked')).toEqual([
        { ip: HERE, data: { scope: 'address', failures: MAX_FAILURES, lockedUntil } },
      ]);

      h.clock.advance(30);
      const right = await changeFrom(HERE, user.accessToken, user.password);
      expectProblem(right, 423, 'ACCOUNT_LOCKED');
      expect(Number(right.headers['retry-after'])).toBe(h.config.lockoutDuration - 30);
      expectProblem(await loginFrom(HERE, user.email, user.password), 423, 'ACCOUNT_LOCKED');
      // Nothing changed: the old password still logs in from elsewhere, the new one does not.
      expect((await loginFrom(THERE, user.email, user.password)).status).toBe(200);
      expectProblem(await loginFrom(THERE, user.email, NEW_PASSWORD), 401, 'INVALID_CREDENTIALS');
      expect(await eventsOf(user.id, 'password.changed')).toEqual([]);
    });

    it('when failed logins locked the email for an address, then a password change from there answers 423, and from another address works', async () => {
      const user = await registerUser(h.app);
      for (let i = 0; i < MAX_FAILURES; i += 1) await loginFrom(HERE, user.email, WRONG_PASSWORD);

      expectProblem(await changeFrom(HERE, user.accessToken, user.password), 423, 'ACCOUNT_LOCKED');
      expect((await changeFrom(THERE, user.accessToken, user.password)).status).toBe(204);
    });

    it('when the lock has run out, then the right current password changes it', async () => {
      const user = await registerUser(h.app);
      for (let i = 0; i < MAX_FAILURES; i += 1) await changeFrom(HERE, user.accessToken, WRONG_PASSWORD);
      h.clock.advance(h.config.lockoutDuration + 1);

      expect((await changeFrom(HERE, user.accessToken, user.password)).status).toBe(204);
      expect((await loginFrom(HERE, user.email, NEW_PASSWORD)).status).toBe(200);
    });

    it('when the OpenAPI document is read, then the route lists 423 ACCOUNT_LOCKED with Retry-After', async () => {
      const doc = (await request(h.app).get('/openapi.json').expect(200)).body;
      const locked = doc.paths['/users/me/password'].post.responses['423'];
      expect(locked).toBeDefined();
      expect(locked.headers['Retry-After']).toBeDefined();
    });
  });

  describe('refusals', () => {
    it('when the current password is wrong, then it answers 401 INVALID_CREDENTIALS and changes nothing', async () => {
      const { user, other } = await userWithTwoSessions();
      const res = await change(user.accessToken, { currentPassword: 'not my password at all', newPassword: NEW_PASSWORD });
      expectProblem(res, 401, 'INVALID_CREDENTIALS');

      expect((await me(user.accessToken)).status).toBe(200);
      expect((await me(other.accessToken)).status).toBe(200);
      expect((await login(user.email, user.password)).status).toBe(200);
      expectProblem(await login(user.email, NEW_PASSWORD), 401, 'INVALID_CREDENTIALS');
    });

    it.each<[string, (user: RegisteredUser) => string]>([
      ['too short', () => 'xq7#Lm2'],
      ['7 emoji', () => '🔑🐙🌵🎲🧩🚲🪁'],
      ['over 72 bytes in UTF-8', () => '€'.repeat(25)],
      ['on the common-password list', () => 'iloveyou'],
      ['the email', (user) => user.email],
      ['the username', (user) => user.username!],
      ['the current password', (user) => user.password],
    ])('when the new password is %s, then it answers 422 WEAK_PASSWORD and changes nothing', async (_name, newPasswordOf) => {
      const user = await registerUser(h.app, { username: uniqueUsername() });
      const newPassword = newPasswordOf(user);
      const res = await change(user.accessToken, { currentPassword: user.password, newPassword });

      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path: 'newPassword', message: expect.any(String) }]));
      expect(JSON.stringify(res.body)).not.toContain(newPassword);
      expect((await login(user.email, user.password)).status).toBe(200);
    });

    it.each<[string, object]>([
      ['the new password is missing', { currentPassword: 'whatever it is' }],
      ['the current password is missing', { newPassword: NEW_PASSWORD }],
      ['a password is not a string', { currentPassword: 12345678, newPassword: NEW_PASSWORD }],
    ])('when %s, then it answers 422 VALIDATION_FAILED', async (_name, body) => {
      const user = await registerUser(h.app);
      expectProblem(await change(user.accessToken, body), 422, 'VALIDATION_FAILED');
    });

    it('when there is no access token, then it answers 401 TOKEN_MISSING', async () => {
      const res = await request(h.app).post('/users/me/password').send({ currentPassword: 'whatever it is', newPassword: NEW_PASSWORD });
      expectProblem(res, 401, 'TOKEN_MISSING');
    });

    it('when the session was revoked, then it answers 401 SESSION_REVOKED and the password stays', async () => {
      const user = await registerUser(h.app);
      await request(h.app).post('/auth/logout').send({ refreshToken: user.refreshToken });
      expectProblem(await change(user.accessToken, { currentPassword: user.password, newPassword: NEW_PASSWORD }), 401, 'SESSION_REVOKED');
      expect((await login(user.email, user.password)).status).toBe(200);
    });
  });
});

describe('POST /users/me/password shares the register/login rate limit (CONTRACT.md section 7)', () => {
  const AUTH_LIMIT = 3;
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ env: { AUTH_RATE_LIMIT_MAX: String(AUTH_LIMIT), RATE_LIMIT_MAX: '1000' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it(`when a registration, a login and a password change used the ${AUTH_LIMIT} allowed, then the next change and the next login answer 429, and other /users routes do not`, async () => {
    const user = await registerUser(h.app);
    expectProblem(
      await request(h.app)
        .post('/auth/login')
        .send({ email: uniqueEmail('nobody'), password: WRONG_PASSWORD }),
      401,
      'INVALID_CREDENTIALS',
    );
    const change = () =>
      request(h.app)
        .post('/users/me/password')
        .set('Authorization', `Bearer ${user.accessToken}`)
        .send({ currentPassword: WRONG_PASSWORD, newPassword: NEW_PASSWORD });
    expectProblem(await change(), 401, 'INVALID_CREDENTIALS');

    const limited = await change();
    expectProblem(limited, 429, 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expectProblem(await request(h.app).post('/auth/login').send({ email: user.email, password: user.password }), 429, 'RATE_LIMITED');
    expect((await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`)).status).toBe(200);
  });
});
