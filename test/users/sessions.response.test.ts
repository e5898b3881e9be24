import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, type RegisteredUser, sessionIdOf } from '../helpers/factories';

describe('/users/me/sessions', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const bearer = (token: string) => `Bearer ${token}`;
  const list = (accessToken: string) => request(h.app).get('/users/me/sessions').set('Authorization', bearer(accessToken));
  const revoke = (accessToken: string, id: string) =>
    request(h.app)
      .delete(`/users/me/sessions/${encodeURIComponent(id)}`)
      .set('Authorization', bearer(accessToken));
  const me = (accessToken: string) => request(h.app).get('/users/me').set('Authorization', bearer(accessToken));

  /** A second session of the same user, from another "device". */
  async function loginAgain(user: RegisteredUser, userAgent: string) {
    const res = await request(h.app).post('/auth/login').set('User-Agent', userAgent).send({ email: user.email, password: user.password });
    expect(res.status).toBe(200);
    return res.body as { accessToken: string; refreshToken: string };
  }

  describe('GET', () => {
    it('when the user has two sessions, then both are listed with the caller’s marked current', async () => {
      const user = await registerUser(h.app);
      h.clock.advance(10);
      const phone = await loginAgain(user, 'phone-app/2.1');

      const res = await list(user.accessToken);
      expect(res.status).toBe(200);
      expect(res.body).toHaveLength(2);
      for (const item of res.body) {
        expect(Object.keys(item).sort()).toEqual(['createdAt', 'current', 'id', 'ip', 'lastUsedAt', 'userAgent']);
        expect(item).toEqual(
          expect.objectContaining({
            id: expect.any(String),
            createdAt: expect.any(String),
            lastUsedAt: expect.any(String),
            ip: expect.any(String),
          }),
        );
        expect(new Date(item.createdAt).toISOString()).toBe(item.createdAt);
      }
      const byId = new Map((res.body as { id: string }[]).map((item) => [item.id, item]));
      expect(byId.get(sessionIdOf(user.accessToken))).toEqual(expect.objectContaining({ current: true }));
      expect(byId.get(sessionIdOf(phone.accessToken))).toEqual(
        expect.objectContaining({ current: false, userAgent: 'phone-app/2.1', createdAt: h.clock.now().toISOString() }),
      );
    });

    it('when a session is refreshed, then its lastUsedAt moves to that time', async () => {
      const user = await registerUser(h.app);
      const createdAt = h.clock.now().toISOString();
      h.clock.advance(120);
      const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken });
      expect(refreshed.status).toBe(200);

      const res = await list(refreshed.body.accessToken);
      expect(res.body).toEqual([expect.objectContaining({ createdAt, lastUsedAt: h.clock.now().toISOString(), current: true })]);
    });

    it('when asked from the other session, then that one is the current one', async () => {
      const user = await registerUser(h.app);
      const phone = await loginAgain(user, 'phone-app/2.1');
      const res = await list(phone.accessToken);
      const current = (res.body as { id: string; current: boolean }[]).filter((item) => item.current).map((item) => item.id);
      expect(current).toEqual([sessionIdOf(phone.accessToken)]);
    });

    it('when a session was logged out, then it is no longer listed', async () => {
      const user = await registerUser(h.app);
      const phone = await loginAgain(user, 'phone-app/2.1');
      expect((await request(h.app).post('/auth/logout').send({ refreshToken: phone.refreshToken })).status).toBe(204);

      const res = await list(user.accessToken);
      expect((res.body as { id: string }[]).map((item) => item.id)).toEqual([sessionIdOf(user.accessToken)]);
    });

    it('when other users have sessions, then they are not listed', async () => {
      const user = await registerUser(h.app);
      await registerUser(h.app);
      const res = await list(user.accessToken);
      expect((res.body as { id: string }[]).map((item) => item.id)).toEqual([sessionIdOf(user.accessToken)]);
    });

    it('when there is no access token, then it answers 401 TOKEN_MISSING', async () => {
      expectProblem(await request(h.app).get('/users/me/sessions'), 401, 'TOKEN_MISSING');
    });
  });

  describe('DELETE /:id', () => {
    it('when the session is the caller’s other live one, then it answers 204 and its tokens stop working', async () => {
      const user = await registerUser(h.app);
      const phone = await loginAgain(user, 'phone-app/2.1');

      const res = await revoke(user.accessToken, sessionIdOf(phone.accessToken));
      expect(res.status).toBe(204);
      expect(res.text).toBe('');

      expectProblem(await me(phone.accessToken), 401, 'SESSION_REVOKED');
      expectProblem(await request(h.app).post('/auth/refresh').send({ refreshToken: phone.refreshToken }), 401, 'REFRESH_TOKEN_INVALID');
      expect((await me(user.accessToken)).status).toBe(200);
    });

    it('when the session is the current one, then it answers 204 and the caller is signed out', async () => {
      const user = await registerUser(h.app);
      expect((await revoke(user.accessToken, sessionIdOf(user.accessToken))).status).toBe(204);
      expectProblem(await me(user.accessToken), 401, 'SESSION_REVOKED');
    });

    it('when a session is revoked, then a session.revoked audit event names it', async () => {
      const user = await registerUser(h.app);
      const phone = await loginAgain(user, 'phone-app/2.1');
      const sessionId = sessionIdOf(phone.accessToken);
      await revoke(user.accessToken, sessionId);

      const events = await h.database.db
        .selectFrom('audit_events')
        .select(['type', 'data'])
        .where('user_id', '=', user.id)
        .where('type', '=', 'session.revoked')
        .execute();
      expect(events).toEqual([{ type: 'session.revoked', data: expect.objectContaining({ sessionId }) }]);
    });

    it('when the session belongs to another user, then it answers 404 NOT_FOUND and that session keeps working', async () => {
      const user = await registerUser(h.app);
      const victim = await registerUser(h.app);
      expectProblem(await revoke(user.accessToken, sessionIdOf(victim.accessToken)), 404, 'NOT_FOUND');
      expect((await me(victim.accessToken)).status).toBe(200);
    });

    it.each<[string, () => string]>([
      ['an unknown uuid', () => randomUUID()],
      ['not a uuid', () => 'not-a-uuid'],
      ['a uuid with SQL after it', () => `${randomUUID()}' or '1'='1`],
    ])('when the id is %s, then it answers 404 NOT_FOUND', async (_name, id) => {
      const user = await registerUser(h.app);
      expectProblem(await revoke(user.accessToken, id()), 404, 'NOT_FOUND');
    });

    it('when the session was already revoked, then it answers 404 NOT_FOUND', async () => {
      const user = await registerUser(h.app);
      const phone = await loginAgain(user, 'phone-app/2.1');
      const sessionId = sessionIdOf(phone.accessToken);
      expect((await revoke(user.accessToken, sessionId)).status).toBe(204);
      expectProblem(await revoke(user.accessToken, sessionId), 404, 'NOT_FOUND');
    });

    it('when there is no access token, then it answers 401 TOKEN_MISSING and revokes nothing', async () => {
      const user = await registerUser(h.app);
      expectProblem(await request(h.app).delete(`/users/me/sessions/${sessionIdOf(user.accessToken)}`), 401, 'TOKEN_MISSING');
      expect((await me(user.accessToken)).status).toBe(200);
    });
  });
});
