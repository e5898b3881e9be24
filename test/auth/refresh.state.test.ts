import { randomBytes } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, sha256, sessionIdOf } from '../helpers/factories';

function refresh(app: Express, refreshToken: string) {
  return request(app).post('/auth/refresh').send({ refreshToken });
}

function me(app: Express, accessToken: string) {
  return request(app).get('/users/me').set('Authorization', `Bearer ${accessToken}`);
}

async function auditTypes(h: Harness, userId: string): Promise<string[]> {
  const rows = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', userId).execute();
  // Sorted: the frozen clock gives events of one test the same created_at, so their order is not stored.
  return rows.map((row) => row.type).sort();
}

/** A second app over the same database with other settings (the harness leaves a given database open). */
function withEnv(h: Harness, env: Record<string, string>): Promise<Harness> {
  return createHarness({ database: h.database, env, keys: h.keys });
}

describe.each(DATABASE_KINDS)('POST /auth/refresh state (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  describe('rotation', () => {
    it('when a live token is presented, then it answers 200 with a new token pair', async () => {
      const user = await registerUser(h.app);

      const res = await refresh(h.app, user.refreshToken);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        accessToken: expect.any(String),
        refreshToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        tokenType: 'Bearer',
        expiresIn: h.config.accessTokenTtl,
      });
      expect(res.body.refreshToken).not.toBe(user.refreshToken);
    });

    it('when a token is rotated, then the new access token works and the new refresh token rotates again', async () => {
      const user = await registerUser(h.app);

      const first = await refresh(h.app, user.refreshToken);
      const profile = await me(h.app, first.body.accessToken);
      const second = await refresh(h.app, first.body.refreshToken);

      expect(first.status).toBe(200);
      expect(profile.status).toBe(200);
      expect(profile.body.id).toBe(user.id);
      expect(second.status).toBe(200);
      expect(second.body.refreshToken).not.toBe(first.body.refreshToken);
      expect(second.body.refreshToken).not.toBe(user.refreshToken);
    });

    it('when a token is rotated, then a token.refreshed audit event is written', async () => {
      const user = await registerUser(h.app);

      await refresh(h.app, user.refreshToken).expect(200);

      expect(await auditTypes(h, user.id)).toEqual(['token.refreshed', 'user.registered']);
    });

    it('when tokens are rotated, then the database holds only their SHA-256 hashes, never the tokens', async () => {
      const user = await registerUser(h.app);
      const rotated = await refresh(h.app, user.refreshToken);
      const sessionId = sessionIdOf(rotated.body.accessToken);

      const rows = await h.database.db.selectFrom('refresh_tokens').selectAll().where('session_id', '=', sessionId).execute();
      const events = await h.database.db.selectFrom('audit_events').selectAll().where('user_id', '=', user.id).execute();

      expect(rows.map((row) => row.token_hash).sort()).toEqual([sha256(user.refreshToken), sha256(rotated.body.refreshToken)].sort());
      for (const token of [user.refreshToken, rotated.body.refreshToken]) {
        expect(JSON.stringify(rows)).not.toContain(token);
        expect(JSON.stringify(events)).not.toContain(token);
      }
    });
  });

  describe('reuse', () => {
    it('when a rotated token is presented after the grace window, then it answers 401 REFRESH_TOKEN_REUSED', async () => {
      const user = await registerUser(h.app);
      await refresh(h.app, user.refreshToken).expect(200);
      h.clock.advance(h.config.refreshReuseGrace + 1);

      const res = await refresh(h.app, user.refreshToken);

      expectProblem(res, 401, 'REFRESH_TOKEN_REUSED');
    });

    it('when reuse is detected, then the whole session is revoked and a token.reuse_detected event is written', async () => {
      const user = await registerUser(h.app);
      const rotated = await refresh(h.app, user.refreshToken);
      h.clock.advance(h.config.refreshReuseGrace + 1);

      await refresh(h.app, user.refreshToken).expect(401);
      const newest = await refresh(h.app, rotated.body.refreshToken);
      const profile = await me(h.app, rotated.body.accessToken);

      expectProblem(newest, 401, 'REFRESH_TOKEN_INVALID');
      expectProblem(profile, 401, 'SESSION_REVOKED');
      expect(await auditTypes(h, user.id)).toContain('token.reuse_detected');
    });

    it('when reuse revokes one session, then the user’s other sessions stay live', async () => {
      const user = await registerUser(h.app);
      const login = await request(h.app).post('/auth/login').send({ email: user.email, password: user.password }).expect(200);
      await refresh(h.app, user.refreshToken).expect(200);
      h.clock.advance(h.config.refreshReuseGrace + 1);

      await refresh(h.app, user.refreshToken).expect(401);
      const other = await refresh(h.app, login.body.refreshToken);

      expect(other.status).toBe(200);
    });
  });

  describe('grace window (idempotent retry)', () => {
    it.each([
      ['at once', 0],
      ['at the end of the window', 'grace'],
    ] as const)('when a rotated token is retried %s, then it gets the same successor and a working access token', async (_when, offset) => {
      const user = await registerUser(h.app);
      const rotated = await refresh(h.app, user.refreshToken).expect(200);
      h.clock.advance(offset === 'grace' ? h.config.refreshReuseGrace : offset);

      const retry = await refresh(h.app, user.refreshToken);
      const again = await refresh(h.app, user.refreshToken);

      expect(retry.status).toBe(200);
      expect(retry.body.refreshToken).toBe(rotated.body.refreshToken);
      expect(again.status).toBe(200);
      expect(again.body.refreshToken).toBe(rotated.body.refreshToken);
      expect((await me(h.app, retry.body.accessToken)).status).toBe(200);
    });

    it('when the successor has been used, then the old token is REFRESH_TOKEN_REUSED even within the window', async () => {
      const user = await registerUser(h.app);
      const first = await refresh(h.app, user.refreshToken).expect(200);
      const second = await refresh(h.app, first.body.refreshToken).expect(200);

      const res = await refresh(h.app, user.refreshToken);

      expectProblem(res, 401, 'REFRESH_TOKEN_REUSED');
      expectProblem(await refresh(h.app, second.body.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
    });

    it('when the grace is 0 (strict), then an immediate retry is REFRESH_TOKEN_REUSED', async () => {
      const strict = await withEnv(h, { REFRESH_REUSE_GRACE: '0' });
      try {
        const user = await registerUser(strict.app);
        await refresh(strict.app, user.refreshToken).expect(200);

        const res = await refresh(strict.app, user.refreshToken);

        expectProblem(res, 401, 'REFRESH_TOKEN_REUSED');
      } finally {
        await strict.close();
      }
    });
  });

  describe('expiry', () => {
    const env = { REFRESH_TOKEN_TTL: '100', SESSION_MAX_AGE: '250', ACCESS_TOKEN_TTL: '60' };
    let short: Harness;
    beforeAll(async () => {
      short = await withEnv(h, env);
    });
    afterAll(async () => {
      await short.close();
    });

    it('when an unrotated token is used just before REFRESH_TOKEN_TTL, then it still rotates', async () => {
      const user = await registerUser(short.app);
      short.clock.advance(99);

      expect((await refresh(short.app, user.refreshToken)).status).toBe(200);
    });

    it('when an unrotated token is used past REFRESH_TOKEN_TTL, then it answers 401 REFRESH_TOKEN_EXPIRED', async () => {
      const user = await registerUser(short.app);
      short.clock.advance(101);

      expectProblem(await refresh(short.app, user.refreshToken), 401, 'REFRESH_TOKEN_EXPIRED');
    });

    it('when a session is refreshed regularly, then it still ends at SESSION_MAX_AGE', async () => {
      const user = await registerUser(short.app);
      let token = user.refreshToken;
      // Every 80 s, well inside the 100 s sliding lifetime: 80, 160 and 240 s are inside the 250 s session.
      for (let i = 0; i < 3; i += 1) {
        short.clock.advance(80);
        const res = await refresh(short.app, token);
        expect(res.status).toBe(200);
        token = res.body.refreshToken;
      }
      // At 320 s the last token's own sliding lifetime (until 340 s) would still run; the session's does not.
      short.clock.advance(80);

      expectProblem(await refresh(short.app, token), 401, 'REFRESH_TOKEN_EXPIRED');
    });

    it('when an access token is within the 30 s leeway past its expiry, then /users/me still accepts it', async () => {
      const user = await registerUser(short.app);
      short.clock.advance(60 + 20);

      expect((await me(short.app, user.accessToken)).status).toBe(200);
    });

    it('when an access token is past its expiry plus the leeway, then /users/me answers 401 TOKEN_EXPIRED', async () => {
      const user = await registerUser(short.app);
      short.clock.advance(60 + 31);

      expectProblem(await me(short.app, user.accessToken), 401, 'TOKEN_EXPIRED');
    });
  });

  describe('bad input', () => {
    it.each([
      ['a garbage string', 'not-a-token'],
      ['an empty string', ''],
      ['a well-formed token that was never issued', randomBytes(32).toString('base64url')],
      ['a token with one character too many', `${randomBytes(32).toString('base64url')}A`],
    ])('when the token is %s, then it answers 401 REFRESH_TOKEN_INVALID', async (_what, token) => {
      expectProblem(await refresh(h.app, token), 401, 'REFRESH_TOKEN_INVALID');
    });

    it.each([
      ['no body', undefined],
      ['an empty object', {}],
    ])('when there is %s and no cookie, then it answers 401 REFRESH_TOKEN_INVALID', async (_what, body) => {
      const req = request(h.app).post('/auth/refresh');
      const res = body === undefined ? await req : await req.send(body);

      expectProblem(res, 401, 'REFRESH_TOKEN_INVALID');
    });

    it.each([
      ['a number', 12345],
      ['null', null],
      ['an array', ['token']],
    ])('when refreshToken is %s, then it answers 422 VALIDATION_FAILED', async (_what, value) => {
      const res = await request(h.app).post('/auth/refresh').send({ refreshToken: value });

      expectProblem(res, 422, 'VALIDATION_FAILED');
    });

    it('when the user is disabled, then it answers 403 ACCOUNT_DISABLED', async () => {
      const user = await registerUser(h.app);
      await h.database.db.updateTable('users').set({ is_active: false }).where('id', '=', user.id).execute();

      expectProblem(await refresh(h.app, user.refreshToken), 403, 'ACCOUNT_DISABLED');
    });

    it('when the session was logged out, then its token answers 401 REFRESH_TOKEN_INVALID', async () => {
      const user = await registerUser(h.app);
      await request(h.app).post('/auth/logout').send({ refreshToken: user.refreshToken }).expect(204);

      expectProblem(await refresh(h.app, user.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
    });
  });

  describe('cookie mode', () => {
    it('when only the refresh_token cookie is sent, then it rotates and sets the new token as a hardened cookie', async () => {
      const user = await registerUser(h.app);

      // From Gatehouse's own page: a cookie-only request from elsewhere is refused (cookie.origin.test.ts).
      const res = await request(h.app)
        .post('/auth/refresh')
        .set('Sec-Fetch-Site', 'same-origin')
        .set('Cookie', `refresh_token=${user.refreshToken}`);

      expect(res.status).toBe(200);
      expect(res.body.refreshToken).not.toBe(user.refreshToken);
      const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
      const cookie = cookies.find((c) => c.startsWith('refresh_token='));
      expect(cookie).toBeDefined();
      const [pair, ...attributes] = cookie!.split(';').map((part) => part.trim());
      expect(pair).toBe(`refresh_token=${res.body.refreshToken}`);
      expect(attributes).toEqual(expect.arrayContaining(['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/auth']));
    });

    it('when the body and the cookie both carry a token, then the body wins', async () => {
      const user = await registerUser(h.app);
      const other = await registerUser(h.app);

      const res = await request(h.app)
        .post('/auth/refresh')
        .set('Cookie', `refresh_token=${other.refreshToken}`)
        .send({ refreshToken: user.refreshToken });

      expect(res.status).toBe(200);
      expect(sessionIdOf(res.body.accessToken)).toBe(sessionIdOf(user.accessToken));
    });
  });
});
