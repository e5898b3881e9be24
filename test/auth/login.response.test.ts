import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { DATABASE_KINDS } from '../helpers/databases';
import { expectProblem, GOOD_PASSWORD, registerUser, uniqueEmail } from '../helpers/factories';

const MAX_FAILURES = 3;
const WRONG_PASSWORD = 'not the right password';

// Lockout is counted in the database (CONTRACT.md section 7), so it runs on both kinds.
describe.each(DATABASE_KINDS)('POST /auth/login (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: { LOGIN_MAX_FAILURES: String(MAX_FAILURES) } });
  });
  afterAll(async () => {
    await h.close();
  });

  const login = (email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });

  /** The failure counter of an email (these tests all come from supertest's one address); undefined when there is none. */
  const counterOf = (email: string) =>
    h.database.db.selectFrom('login_failures').select(['failures', 'locked_until']).where('email', '=', email).executeTakeFirst();

  /** A user's audit events, sorted by type: the frozen clock gives many of them one timestamp. */
  const eventsOf = async (userId: string) => {
    const events = await h.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', userId).execute();
    return events.sort((a, b) => a.type.localeCompare(b.type));
  };

  describe('success', () => {
    it('when the credentials are right, then it answers 200 with an AuthResult and lastLoginAt set', async () => {
      const user = await registerUser(h.app);
      h.clock.advance(60);
      const res = await login(user.email, user.password);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        user: {
          id: user.id,
          email: user.email,
          username: null,
          roles: ['user'],
          createdAt: expect.any(String),
          lastLoginAt: h.clock.now().toISOString(),
          emailVerified: false,
        },
        accessToken: expect.any(String),
        refreshToken: expect.any(String),
        tokenType: 'Bearer',
        expiresIn: 900,
      });
      expect(res.body.refreshToken).not.toBe(user.refreshToken);
      expect(JSON.stringify(res.body)).not.toContain(user.password);
    });

    it('when it succeeds, then the new access token works and a refresh cookie is set', async () => {
      const user = await registerUser(h.app);
      const res = await login(user.email, user.password);
      const me = await request(h.app).get('/users/me').set('Authorization', `Bearer ${res.body.accessToken}`);
      expect(me.status).toBe(200);
      const cookies = res.headers['set-cookie'] as unknown as string[];
      expect(cookies.find((line) => line.startsWith(`refresh_token=${res.body.refreshToken};`))).toMatch(/HttpOnly/);
    });

    it.each([
      ['in capitals', (email: string) => email.toUpperCase()],
      ['with surrounding whitespace', (email: string) => `  ${email}\t`],
      ['in mixed case with whitespace', (email: string) => ` ${email.charAt(0).toUpperCase()}${email.slice(1)} `],
    ])('when the email is given %s, then it still logs in', async (_name, variant) => {
      const user = await registerUser(h.app);
      const res = await login(variant(user.email), user.password);
      expect(res.status).toBe(200);
      expect(res.body.user.id).toBe(user.id);
    });

    it('when it succeeds, then a user.logged_in audit event is written', async () => {
      const user = await registerUser(h.app);
      const res = await login(user.email, user.password);
      expect(res.status).toBe(200);
      expect((await eventsOf(user.id)).map((event) => event.type)).toEqual(['user.logged_in', 'user.registered']);
    });
  });

  describe('failures that must not reveal anything', () => {
    it('when the password is wrong or the email unknown, then both answer 401 INVALID_CREDENTIALS with the same body', async () => {
      const user = await registerUser(h.app);
      const wrongPassword = await login(user.email, WRONG_PASSWORD);
      const unknownEmail = await login(uniqueEmail('nobody'), WRONG_PASSWORD);

      expectProblem(wrongPassword, 401, 'INVALID_CREDENTIALS');
      expectProblem(unknownEmail, 401, 'INVALID_CREDENTIALS');
      const comparable = ({ type, title, status, detail, code }: Record<string, unknown>) => ({ type, title, status, detail, code });
      expect(comparable(unknownEmail.body)).toEqual(comparable(wrongPassword.body));
      expect(Object.keys(unknownEmail.body).sort()).toEqual(Object.keys(wrongPassword.body).sort());
      expect(unknownEmail.headers['retry-after']).toBeUndefined();
      expect(wrongPassword.headers['retry-after']).toBeUndefined();
    });

    it('when the email is unknown, then an auth.failed event without a user is written', async () => {
      const requestId = `login-${randomUUID()}`;
      const res = await request(h.app)
        .post('/auth/login')
        .set('X-Request-Id', requestId)
        .send({ email: uniqueEmail('nobody'), password: WRONG_PASSWORD });
      expectProblem(res, 401, 'INVALID_CREDENTIALS');
      const events = await h.database.db
        .selectFrom('audit_events')
        .select(['type', 'user_id'])
        .where('request_id', '=', requestId)
        .execute();
      expect(events).toEqual([{ type: 'auth.failed', user_id: null }]);
    });

    it.each<[string, unknown]>([
      ['the email is missing', { password: GOOD_PASSWORD }],
      ['the password is missing', { email: 'someone@example.test' }],
      ['the password is not a string', { email: 'someone@example.test', password: 12345678 }],
      ['the body is an array', []],
    ])('when %s, then it answers 422 VALIDATION_FAILED', async (_name, body) => {
      const res = await request(h.app)
        .post('/auth/login')
        .send(body as object);
      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path: expect.any(String), message: expect.any(String) }]));
    });
  });

  describe('disabled accounts', () => {
    const disable = (id: string) => h.database.db.updateTable('users').set({ is_active: false }).where('id', '=', id).execute();

    it('when the account is disabled and the password right, then it answers 403 ACCOUNT_DISABLED', async () => {
      const user = await registerUser(h.app);
      await disable(user.id);
      expectProblem(await login(user.email, user.password), 403, 'ACCOUNT_DISABLED');
    });

    it('when the account is disabled and the password wrong, then it answers 401 INVALID_CREDENTIALS', async () => {
      const user = await registerUser(h.app);
      await disable(user.id);
      expectProblem(await login(user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
    });

    it('when the account is disabled, then a right password opens no session', async () => {
      const user = await registerUser(h.app);
      await disable(user.id);
      await login(user.email, user.password);
      const sessions = await h.database.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute();
      expect(sessions).toHaveLength(1); // the one registration opened
    });
  });

  describe('lockout', () => {
    async function failTimes(email: string, times: number) {
      const responses = [];
      for (let i = 0; i < times; i += 1) responses.push(await login(email, WRONG_PASSWORD));
      return responses;
    }

    it(`when ${MAX_FAILURES} wrong passwords come in a row, then the last answers 423 ACCOUNT_LOCKED with Retry-After`, async () => {
      const user = await registerUser(h.app);
      const responses = await failTimes(user.email, MAX_FAILURES);
      for (const res of responses.slice(0, -1)) expectProblem(res, 401, 'INVALID_CREDENTIALS');
      const locked = responses[responses.length - 1]!;
      expectProblem(locked, 423, 'ACCOUNT_LOCKED');
      expect(locked.headers['retry-after']).toBe(String(h.config.lockoutDuration));
    });

    it.each([
      ['the right password', (user: { password: string }) => user.password],
      ['a wrong password', () => WRONG_PASSWORD],
    ])('when the account is locked, then %s also gets 423 ACCOUNT_LOCKED', async (_name, passwordOf) => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES);
      h.clock.advance(100);
      const res = await login(user.email, passwordOf(user));
      expectProblem(res, 423, 'ACCOUNT_LOCKED');
      expect(res.headers['retry-after']).toBe(String(h.config.lockoutDuration - 100));
    });

    it('when the account is locked, then the right password opens no session', async () => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES);
      await login(user.email, user.password);
      const sessions = await h.database.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute();
      expect(sessions).toHaveLength(1);
    });

    it('when the lock has run out, then the right password works and resets the count', async () => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES);
      h.clock.advance(h.config.lockoutDuration + 1);

      const res = await login(user.email, user.password);
      expect(res.status).toBe(200);
      expect(await counterOf(user.email)).toBeUndefined();
      // A full new run of failures is needed to lock it again.
      const again = await failTimes(user.email, MAX_FAILURES - 1);
      for (const failure of again) expectProblem(failure, 401, 'INVALID_CREDENTIALS');
    });

    it('when the lock has run out, then one more wrong password starts a new count instead of locking at once', async () => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES);
      h.clock.advance(h.config.lockoutDuration + 1);

      expectProblem(await login(user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
      expect(await counterOf(user.email)).toEqual({ failures: 1, locked_until: null });
    });

    it('when a login succeeds between failures, then the count starts again', async () => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES - 1);
      expect((await login(user.email, user.password)).status).toBe(200);

      const after = await failTimes(user.email, MAX_FAILURES - 1);
      for (const res of after) expectProblem(res, 401, 'INVALID_CREDENTIALS');
      expectProblem(await login(user.email, WRONG_PASSWORD), 423, 'ACCOUNT_LOCKED');
    });

    it('when one account is locked, then another account still logs in', async () => {
      const locked = await registerUser(h.app);
      const other = await registerUser(h.app);
      await failTimes(locked.email, MAX_FAILURES);
      expect((await login(other.email, other.password)).status).toBe(200);
    });

    it('when failures lock and a later login succeeds, then auth.failed, user.locked and user.logged_in are audited without the passwords', async () => {
      const user = await registerUser(h.app);
      await failTimes(user.email, MAX_FAILURES);
      h.clock.advance(h.config.lockoutDuration + 1);
      expect((await login(user.email, user.password)).status).toBe(200);

      const events = await eventsOf(user.id);
      expect(events.map((event) => event.type)).toEqual([
        ...Array<string>(MAX_FAILURES).fill('auth.failed'),
        'user.locked',
        'user.logged_in',
        'user.registered',
      ]);
      const stored = JSON.stringify(events);
      expect(stored).not.toContain(WRONG_PASSWORD);
      expect(stored).not.toContain(user.password);
    });
  });
});
