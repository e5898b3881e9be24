import request from 'supertest';
import { commonPasswordList } from '../../src/passwords/password-policy';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, GOOD_PASSWORD, registerUser, uniqueEmail, uniqueUsername } from '../helpers/factories';

/** The `refresh_token` Set-Cookie line of a response, if any. */
function refreshCookieOf(res: request.Response): string | undefined {
  const header = res.headers['set-cookie'] as unknown as string[] | undefined;
  return header?.find((line) => line.startsWith('refresh_token='));
}

describe('POST /auth/register', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  describe('success', () => {
    it('when the input is valid, then it answers 201 with an AuthResult', async () => {
      const email = uniqueEmail();
      const res = await request(h.app)
        .post('/auth/register')
        .send({ email: `  ${email.toUpperCase()} `, password: GOOD_PASSWORD });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        user: {
          id: expect.any(String),
          email,
          username: null,
          roles: ['user'],
          createdAt: expect.any(String),
          lastLoginAt: null,
          emailVerified: false,
        },
        accessToken: expect.any(String),
        refreshToken: expect.any(String),
        tokenType: 'Bearer',
        expiresIn: 900,
      });
      expect(res.body.user.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(res.body.user.createdAt).toBe(h.clock.now().toISOString());
    });

    it('when the email has spaces and capitals, then it is stored trimmed and lower-cased', async () => {
      const email = uniqueEmail('Mixed');
      const res = await request(h.app)
        .post('/auth/register')
        .send({ email: `\t ${email.toUpperCase()}  `, password: GOOD_PASSWORD });
      expect(res.status).toBe(201);
      expect(res.body.user.email).toBe(email.toLowerCase());
      const row = await h.database.db.selectFrom('users').select('email').where('id', '=', res.body.user.id).executeTakeFirstOrThrow();
      expect(row.email).toBe(email.toLowerCase());
    });

    it('when a username is given, then it is stored and returned', async () => {
      const username = uniqueUsername();
      const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD, username });
      expect(res.status).toBe(201);
      expect(res.body.user.username).toBe(username);
      const me = await request(h.app).get('/users/me').set('Authorization', `Bearer ${res.body.accessToken}`);
      expect(me.status).toBe(200);
      expect(me.body.username).toBe(username);
    });

    it('when it succeeds, then it sets the refresh_token cookie HttpOnly, Secure, SameSite=Strict on /auth', async () => {
      const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: GOOD_PASSWORD });
      expect(res.status).toBe(201);
      const cookie = refreshCookieOf(res);
      expect(cookie).toBeDefined();
      const [pair, ...attributes] = cookie!.split(';').map((part) => part.trim());
      expect(pair).toBe(`refresh_token=${res.body.refreshToken}`);
      const lowered = attributes.map((attribute) => attribute.toLowerCase());
      expect(lowered).toEqual(expect.arrayContaining(['httponly', 'secure', 'samesite=strict', 'path=/auth']));
    });

    it('when it succeeds, then the response carries neither the password nor its hash', async () => {
      const password = 'a distinctive passphrase 7';
      const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password });
      expect(res.status).toBe(201);
      const text = JSON.stringify(res.body) + JSON.stringify(res.headers);
      expect(text).not.toContain(password);
      expect(text).not.toMatch(/\$2[aby]?\$/);
      expect(res.body.user).not.toHaveProperty('passwordHash');
      expect(res.body.user).not.toHaveProperty('password');
    });

    it('when it succeeds, then a user.registered audit event is written', async () => {
      const user = await registerUser(h.app);
      const events = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', user.id).execute();
      expect(events.map((event) => event.type)).toEqual(['user.registered']);
    });
  });

  describe('conflicts', () => {
    it('when the email is taken, then it answers 409 EMAIL_TAKEN', async () => {
      const user = await registerUser(h.app);
      const res = await request(h.app).post('/auth/register').send({ email: user.email, password: GOOD_PASSWORD });
      expectProblem(res, 409, 'EMAIL_TAKEN');
    });

    it.each([
      ['in capitals', (email: string) => email.toUpperCase()],
      ['with surrounding spaces', (email: string) => `  ${email} `],
      ['in capitals with spaces', (email: string) => ` ${email.toUpperCase()}\t`],
    ])('when the email is taken but given %s, then it answers 409 EMAIL_TAKEN', async (_name, variant) => {
      const user = await registerUser(h.app);
      const res = await request(h.app)
        .post('/auth/register')
        .send({ email: variant(user.email), password: GOOD_PASSWORD });
      expectProblem(res, 409, 'EMAIL_TAKEN');
    });

    it.each([
      ['the same', (username: string) => username],
      ['in other case', (username: string) => username.toUpperCase()],
    ])('when the username is taken (%s), then it answers 409 USERNAME_TAKEN', async (_name, variant) => {
      const username = uniqueUsername();
      await registerUser(h.app, { username });
      const res = await request(h.app)
        .post('/auth/register')
        .send({ email: uniqueEmail(), password: GOOD_PASSWORD, username: variant(username) });
      expectProblem(res, 409, 'USERNAME_TAKEN');
    });

    it('when registration conflicts, then no second account is created', async () => {
      const user = await registerUser(h.app);
      await request(h.app).post('/auth/register').send({ email: user.email.toUpperCase(), password: GOOD_PASSWORD });
      const rows = await h.database.db.selectFrom('users').select('id').where('email', '=', user.email).execute();
      expect(rows).toHaveLength(1);
    });
  });

  describe('validation', () => {
    it.each<[string, unknown, string]>([
      ['the email is not an email', { email: 'not-an-email', password: GOOD_PASSWORD }, 'email'],
      ['the email is empty', { email: '', password: GOOD_PASSWORD }, 'email'],
      ['the email is not a string', { email: 42, password: GOOD_PASSWORD }, 'email'],
      ['the email is missing', { password: GOOD_PASSWORD }, 'email'],
      ['the password is missing', { email: 'someone@example.test' }, 'password'],
      ['the password is not a string', { email: 'someone@example.test', password: 12345678 }, 'password'],
      ['the username is too short', { email: 'someone@example.test', password: GOOD_PASSWORD, username: 'ab' }, 'username'],
      ['the username is too long', { email: 'someone@example.test', password: GOOD_PASSWORD, username: 'a'.repeat(33) }, 'username'],
      ['the username has a space', { email: 'someone@example.test', password: GOOD_PASSWORD, username: 'has space' }, 'username'],
      ['the username has a symbol', { email: 'someone@example.test', password: GOOD_PASSWORD, username: 'bob<script>' }, 'username'],
      ['the username is not a string', { email: 'someone@example.test', password: GOOD_PASSWORD, username: 7 }, 'username'],
    ])('when %s, then it answers 422 VALIDATION_FAILED naming the field', async (_name, body, path) => {
      const res = await request(h.app)
        .post('/auth/register')
        .send(body as object);
      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    });

    it('when the body is empty, then it answers 422 VALIDATION_FAILED for each field', async () => {
      const res = await request(h.app).post('/auth/register').set('Content-Type', 'application/json').send('{}');
      expectProblem(res, 422, 'VALIDATION_FAILED');
      const paths = (res.body.errors as { path: string }[]).map((error) => error.path);
      expect(paths).toEqual(expect.arrayContaining(['email', 'password']));
    });

    it.each([
      ['an array', '[]'],
      ['a string', '"someone@example.test"'],
      ['a number', '42'],
      ['null', 'null'],
      ['a boolean', 'true'],
    ])('when the body is %s, then it answers 422 VALIDATION_FAILED', async (_name, raw) => {
      const res = await request(h.app).post('/auth/register').set('Content-Type', 'application/json').send(raw);
      expectProblem(res, 422, 'VALIDATION_FAILED');
      expect(res.body.errors).toEqual([{ path: 'body', message: expect.any(String) }]);
    });

    it('when validation fails, then no account is created', async () => {
      const email = uniqueEmail();
      await request(h.app).post('/auth/register').send({ email, password: GOOD_PASSWORD, username: 'x' });
      const rows = await h.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
      expect(rows).toHaveLength(0);
    });
  });

  describe('password policy', () => {
    // Passwords are built so that each breaks exactly one rule of CONTRACT.md section 3.
    it.each<[string, (account: { email: string; username: string }) => string]>([
      ['it has 7 characters', () => 'xq7#Lm2'],
      ['it is 7 emoji (28 bytes, but 7 code points)', () => '🔑🐙🌵🎲🧩🚲🪁'],
      ['it is over 72 bytes in UTF-8 (25 × "€" = 75 bytes, 25 characters)', () => '€'.repeat(25)],
      ['it is 73 ASCII bytes', () => 'k9'.repeat(36) + 'z'],
      ['it is on the common-password list ("password1")', () => 'password1'],
      ['it is on the common-password list in other case ("ILoveYou")', () => 'ILoveYou'],
      ['it equals the email', ({ email }) => email],
      ['it equals the email in other case', ({ email }) => email.toUpperCase()],
      ['it equals the username', ({ username }) => username],
      ['it equals the username in other case', ({ username }) => username.toUpperCase()],
    ])('when %s, then it answers 422 WEAK_PASSWORD on the password field', async (_name, passwordFor) => {
      const account = { email: uniqueEmail(), username: uniqueUsername() };
      const password = passwordFor(account);
      const res = await request(h.app)
        .post('/auth/register')
        .send({ ...account, password });
      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path: 'password', message: expect.any(String) }]));
      expect(JSON.stringify(res.body)).not.toContain(password);
      const rows = await h.database.db.selectFrom('users').select('id').where('email', '=', account.email).execute();
      expect(rows).toHaveLength(0);
    });

    it.each([
      ['8 multibyte characters within 72 bytes', '🔑🐙🌵🎲🧩🚲🪁🦉'],
      ['exactly 72 bytes in UTF-8 (24 × "€")', '€'.repeat(24)],
      ['exactly 8 ASCII characters', 'xq7#Lm2!'],
      ['spaces inside', 'four words with spaces'],
      ['leading and trailing spaces', '  padded secret phrase  '],
    ])('when the password has %s, then it is accepted', async (_name, password) => {
      const res = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password });
      expect(res.status).toBe(201);
    });

    it('when the password has leading and trailing spaces, then they are kept, not trimmed', async () => {
      const password = '  padded secret phrase  ';
      const user = await registerUser(h.app, { password });
      const exact = await request(h.app).post('/auth/login').send({ email: user.email, password });
      expect(exact.status).toBe(200);
      const trimmed = await request(h.app).post('/auth/login').send({ email: user.email, password: password.trim() });
      expectProblem(trimmed, 401, 'INVALID_CREDENTIALS');
    });

    it('when the table above names common passwords, then they are on the shipped list', () => {
      // Guards the table: if the list changed, those cases would silently test another rule.
      expect(commonPasswordList().has('password1')).toBe(true);
      expect(commonPasswordList().has('iloveyou')).toBe(true);
    });
  });
});
