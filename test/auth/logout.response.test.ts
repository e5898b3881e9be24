import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser } from '../helpers/factories';

/** The `refresh_token` Set-Cookie line of a response, if any. */
function refreshCookieOf(res: request.Response): string | undefined {
  const header = res.headers['set-cookie'] as unknown as string[] | undefined;
  return header?.find((line) => line.startsWith('refresh_token='));
}

/** The attributes of a Set-Cookie line, keyed in lower case. */
function attributesOf(cookie: string): Map<string, string> {
  return new Map(
    cookie
      .split(';')
      .slice(1)
      .map((part) => {
        const [key, ...value] = part.trim().split('=');
        return [key!.toLowerCase(), value.join('=')] as [string, string];
      }),
  );
}

describe('POST /auth/logout and /auth/logout-all', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const me = (accessToken: string) => request(h.app).get('/users/me').set('Authorization', `Bearer ${accessToken}`);
  const refresh = (refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
  const logout = (body?: object) => {
    const req = request(h.app).post('/auth/logout');
    return body === undefined ? req : req.send(body);
  };

  describe('logout', () => {
    it('when the body has a live refresh token, then it answers 204 with no body', async () => {
      const user = await registerUser(h.app);
      const res = await logout({ refreshToken: user.refreshToken });
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
    });

    it('when logged out, then the refresh token gets 401 REFRESH_TOKEN_INVALID and the access token 401 SESSION_REVOKED', async () => {
      const user = await registerUser(h.app);
      expect((await logout({ refreshToken: user.refreshToken })).status).toBe(204);

      expectProblem(await refresh(user.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      expectProblem(await me(user.accessToken), 401, 'SESSION_REVOKED');
    });

    it('when one session logs out, then the same user’s other sessions keep working', async () => {
      const user = await registerUser(h.app);
      const other = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
      expect((await logout({ refreshToken: user.refreshToken })).status).toBe(204);

      expect((await me(other.body.accessToken)).status).toBe(200);
      expect((await refresh(other.body.refreshToken)).status).toBe(200);
    });

    it.each<[string, () => object | undefined]>([
      ['with an unknown but well-formed token', () => ({ refreshToken: randomBytes(32).toString('base64url') })],
      ['with a garbage token', () => ({ refreshToken: 'garbage!' })],
      ['with an empty token', () => ({ refreshToken: '' })],
      ['with an empty object', () => ({})],
      ['without a body', () => undefined],
    ])('when logout is sent %s, then it still answers 204', async (_name, body) => {
      expect((await logout(body())).status).toBe(204);
    });

    it('when the token was already logged out, then it still answers 204', async () => {
      const user = await registerUser(h.app);
      expect((await logout({ refreshToken: user.refreshToken })).status).toBe(204);
      expect((await logout({ refreshToken: user.refreshToken })).status).toBe(204);
    });

    it('when the token was already rotated, then it still answers 204', async () => {
      const user = await registerUser(h.app);
      expect((await refresh(user.refreshToken)).status).toBe(200);
      expect((await logout({ refreshToken: user.refreshToken })).status).toBe(204);
    });

    it('when it logs out, then a user.logged_out audit event is written', async () => {
      const user = await registerUser(h.app);
      await logout({ refreshToken: user.refreshToken });
      const events = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', user.id).execute();
      expect(events.map((event) => event.type).sort()).toEqual(['user.logged_out', 'user.registered']);
    });

    it('when it answers, then it clears the refresh cookie with an expiry in the past on /auth', async () => {
      const user = await registerUser(h.app);
      const res = await logout({ refreshToken: user.refreshToken });
      const cookie = refreshCookieOf(res);
      expect(cookie).toMatch(/^refresh_token=;/);
      const attributes = attributesOf(cookie!);
      expect(attributes.get('path')).toBe('/auth');
      expect(new Date(attributes.get('expires')!).getTime()).toBeLessThan(Date.now());
    });
  });

  describe('cookie mode', () => {
    it('when refresh has only the cookie, then it rotates the cookie’s token and sets the new one', async () => {
      const user = await registerUser(h.app);
      // From Gatehouse's own page: a cookie-only request from elsewhere is refused (cookie.origin.test.ts).
      const res = await request(h.app)
        .post('/auth/refresh')
        .set('Sec-Fetch-Site', 'same-origin')
        .set('Cookie', `refresh_token=${user.refreshToken}`);
      expect(res.status).toBe(200);
      expect(res.body.refreshToken).not.toBe(user.refreshToken);
      const cookie = refreshCookieOf(res);
      expect(cookie?.startsWith(`refresh_token=${res.body.refreshToken};`)).toBe(true);
      expect([...attributesOf(cookie!).keys()]).toEqual(expect.arrayContaining(['httponly', 'secure', 'samesite', 'path']));
      expect((await refresh(res.body.refreshToken)).status).toBe(200);
    });

    it('when refresh has neither body token nor cookie, then it answers 401 REFRESH_TOKEN_INVALID', async () => {
      expectProblem(await request(h.app).post('/auth/refresh'), 401, 'REFRESH_TOKEN_INVALID');
    });

    it('when logout has only the cookie, then it ends that session and clears the cookie', async () => {
      const user = await registerUser(h.app);
      const res = await request(h.app)
        .post('/auth/logout')
        .set('Sec-Fetch-Site', 'same-origin')
        .set('Cookie', `refresh_token=${user.refreshToken}`);
      expect(res.status).toBe(204);
      expect(refreshCookieOf(res)).toMatch(/^refresh_token=;/);
      expectProblem(await refresh(user.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      expectProblem(await me(user.accessToken), 401, 'SESSION_REVOKED');
    });

    it('when logout has a token in both body and cookie, then the body’s is the one logged out', async () => {
      const inBody = await registerUser(h.app);
      const inCookie = await registerUser(h.app);
      const res = await request(h.app)
        .post('/auth/logout')
        .set('Cookie', `refresh_token=${inCookie.refreshToken}`)
        .send({ refreshToken: inBody.refreshToken });
      expect(res.status).toBe(204);
      expectProblem(await me(inBody.accessToken), 401, 'SESSION_REVOKED');
      expect((await me(inCookie.accessToken)).status).toBe(200);
    });
  });

  describe('logout-all', () => {
    it('when called with a live access token, then it answers 204 and revokes every session of the user', async () => {
      const user = await registerUser(h.app);
      const second = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
      expect(second.status).toBe(200);

      const res = await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.accessToken}`);
      expect(res.status).toBe(204);

      for (const session of [user, second.body as { accessToken: string; refreshToken: string }]) {
        expectProblem(await me(session.accessToken), 401, 'SESSION_REVOKED');
        expectProblem(await refresh(session.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      }
      const live = await h.database.db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', '=', user.id)
        .where('revoked_at', 'is', null)
        .execute();
      expect(live).toHaveLength(0);
    });

    it('when one user logs out everywhere, then other users are unaffected', async () => {
      const user = await registerUser(h.app);
      const bystander = await registerUser(h.app);
      expect((await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.accessToken}`)).status).toBe(204);

      expect((await me(bystander.accessToken)).status).toBe(200);
      expect((await refresh(bystander.refreshToken)).status).toBe(200);
    });

    it('when it succeeds, then it clears the refresh cookie and writes user.logged_out', async () => {
      const user = await registerUser(h.app);
      const res = await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.accessToken}`);
      expect(refreshCookieOf(res)).toMatch(/^refresh_token=;/);
      const events = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', user.id).execute();
      expect(events.map((event) => event.type)).toContain('user.logged_out');
    });

    it('when there is no access token, then it answers 401 TOKEN_MISSING with a WWW-Authenticate challenge', async () => {
      const res = await request(h.app).post('/auth/logout-all');
      expectProblem(res, 401, 'TOKEN_MISSING');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it('when the refresh token is sent instead of an access token, then it answers 401 TOKEN_INVALID and revokes nothing', async () => {
      const user = await registerUser(h.app);
      const res = await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.refreshToken}`);
      expectProblem(res, 401, 'TOKEN_INVALID');
      expect((await me(user.accessToken)).status).toBe(200);
    });

    it('when the session was already logged out, then it answers 401 SESSION_REVOKED', async () => {
      const user = await registerUser(h.app);
      await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.accessToken}`);
      expectProblem(
        await request(h.app).post('/auth/logout-all').set('Authorization', `Bearer ${user.accessToken}`),
        401,
        'SESSION_REVOKED',
      );
    });
  });
});
