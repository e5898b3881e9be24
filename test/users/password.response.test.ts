import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, type RegisteredUser, uniqueUsername } from '../helpers/factories';

const NEW_PASSWORD = 'a brand new passphrase';

describe('POST /users/me/password', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const change = (accessToken: string, body: object) =>
    request(h.app).post('/users/me/password').set('Authorization', `Bearer ${accessToken}`).send(body);
  const login = (email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
  const me = (accessToken: string) => request(h.app).get('/users/me').set('Authorization', `Bearer ${accessToken}`);
  const refresh = (refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });

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
