import bcrypt from 'bcryptjs';
import request from 'supertest';
import { createHarness, type Harness } from '../helpers/harness';
import { expectProblem, registerUser, type RegisteredUser, uniqueEmail, uniqueUsername } from '../helpers/factories';

/** CONTRACT.md section 3: passwords are NFKC-normalised before every check and every hash. */

/** Composed letters (é is U+00E9): already NFC and NFKC. */
const COMPOSED = 'Crème brûlée à la française';
/** The same text typed decomposed ("e" + U+0301), as some keyboards and platforms send it. */
const DECOMPOSED = COMPOSED.normalize('NFD');
/** 72 bytes of ASCII: exactly what bcrypt reads. */
const AT_LIMIT = 'k9#'.repeat(24);
const NEW_PASSWORD = 'a brand new passphrase';

describe('password normalisation over HTTP', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const login = (email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
  const change = (user: RegisteredUser, body: { currentPassword: string; newPassword: string }) =>
    request(h.app).post('/users/me/password').set('Authorization', `Bearer ${user.accessToken}`).send(body);
  /** The types of a user's audit events (CONTRACT.md section 7), sorted. */
  const eventTypesOf = async (userId: string) =>
    (await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', userId).execute())
      .map((event) => event.type)
      .sort();

  const bothWays = [
    ['registered composed, typed decomposed', COMPOSED, DECOMPOSED],
    ['registered decomposed, typed composed', DECOMPOSED, COMPOSED],
    ['registered in fullwidth letters, typed in ASCII', 'ｆｕｌｌｗｉｄｔｈ ｐａｓｓｐｈｒａｓｅ', 'fullwidth passphrase'],
  ] as const;

  describe('composed and decomposed are the same password', () => {
    it.each(bothWays)('when %s at login, then it logs in', async (_case, registered, typed) => {
      const user = await registerUser(h.app, { password: registered });
      const res = await login(user.email, typed);
      expect(res.status).toBe(200);
      expect(res.body.user.id).toBe(user.id);
    });

    it.each(bothWays)('when %s as currentPassword, then the change succeeds', async (_case, registered, typed) => {
      const user = await registerUser(h.app, { password: registered });
      const res = await change(user, { currentPassword: typed, newPassword: NEW_PASSWORD });
      expect(res.status).toBe(204);
      expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
    });

    it.each(bothWays)('when changed to a password %s, then it logs in', async (_case, newPassword, typed) => {
      const user = await registerUser(h.app);
      expect((await change(user, { currentPassword: user.password, newPassword })).status).toBe(204);
      expect((await login(user.email, typed)).status).toBe(200);
    });

    it.each(bothWays)(
      'when the new password is the current one %s, then it answers 422 WEAK_PASSWORD and changes nothing',
      async (_case, registered, typed) => {
        const user = await registerUser(h.app, { password: registered });
        const res = await change(user, { currentPassword: registered, newPassword: typed });
        expectProblem(res, 422, 'WEAK_PASSWORD');
        expect((await login(user.email, registered)).status).toBe(200);
      },
    );

    it('when 108 bytes typed decomposed normalise to 72, then it registers and logs in either way', async () => {
      const composed = 'é'.repeat(36);
      const user = await registerUser(h.app, { password: composed.normalize('NFD') });
      expect((await login(user.email, composed)).status).toBe(200);
      expect((await login(user.email, composed.normalize('NFD'))).status).toBe(200);
    });
  });

  describe('over 72 bytes is simply wrong, never compared truncated', () => {
    const suffixes = [
      ['one more ASCII letter', 'x'],
      ['a trailing space', ' '],
      ['a multibyte character', '€'],
      ['a long tail', 'k9#'.repeat(10)],
    ] as const;

    it.each(suffixes)(
      'when a 72-byte password is given at login with %s, then it answers 401 INVALID_CREDENTIALS',
      async (_case, suffix) => {
        const user = await registerUser(h.app, { password: AT_LIMIT });
        expectProblem(await login(user.email, AT_LIMIT + suffix), 401, 'INVALID_CREDENTIALS');
        // A failed login like any other wrong password: audited against the account.
        expect(await eventTypesOf(user.id)).toEqual(['auth.failed', 'user.registered']);
      },
    );

    it.each(suffixes)(
      'when a 72-byte password is given as currentPassword with %s, then it answers 401 INVALID_CREDENTIALS and changes nothing',
      async (_case, suffix) => {
        const user = await registerUser(h.app, { password: AT_LIMIT });
        expectProblem(await change(user, { currentPassword: AT_LIMIT + suffix, newPassword: NEW_PASSWORD }), 401, 'INVALID_CREDENTIALS');
        expect((await login(user.email, AT_LIMIT)).status).toBe(200);
        expectProblem(await login(user.email, NEW_PASSWORD), 401, 'INVALID_CREDENTIALS');
      },
    );

    it('when the email is unknown and the password over 72 bytes, then it answers as a wrong password', async () => {
      expectProblem(await login(uniqueEmail('nobody'), `${AT_LIMIT}x`), 401, 'INVALID_CREDENTIALS');
    });

    it('when the password is exactly 72 bytes, then it registers, logs in and serves as currentPassword', async () => {
      const user = await registerUser(h.app, { password: AT_LIMIT });
      expect((await login(user.email, AT_LIMIT)).status).toBe(200);
      expect((await change(user, { currentPassword: AT_LIMIT, newPassword: NEW_PASSWORD })).status).toBe(204);
    });

    it.each([
      ['73 ASCII bytes', `${AT_LIMIT}z`],
      ['65 bytes typed that NFKC makes 74', 'k9#'.repeat(20) + 'zz' + '㌀'],
    ])('when the password at register is %s, then it answers 422 WEAK_PASSWORD', async (_case, password) => {
      const email = uniqueEmail();
      const res = await request(h.app).post('/auth/register').send({ email, password });
      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors).toEqual([{ path: 'password', message: expect.any(String) }]);
    });
  });

  describe('common-list, email and username checks ignore case and spaces', () => {
    const weakVariants: [string, (account: { email: string; username: string }) => string][] = [
      ['a listed password with a leading space', () => ' password1'],
      ['a listed password with a trailing space', () => 'password1 '],
      ['a listed password in capitals', () => 'PASSWORD1'],
      ['a listed password in capitals with spaces and a tab', () => '  PassWord1\t'],
      ['a listed password in fullwidth letters', () => 'ｐａｓｓｗｏｒｄ１'],
      ['the email with spaces around', ({ email }) => `  ${email} `],
      ['the username with spaces around in capitals', ({ username }) => ` ${username.toUpperCase()}  `],
    ];

    it.each(weakVariants)('when the password at register is %s, then it answers 422 WEAK_PASSWORD', async (_case, passwordFor) => {
      const account = { email: uniqueEmail(), username: uniqueUsername() };
      const res = await request(h.app)
        .post('/auth/register')
        .send({ ...account, password: passwordFor(account) });
      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path: 'password', message: expect.any(String) }]));
    });

    it.each(weakVariants)('when the new password is %s, then it answers 422 WEAK_PASSWORD', async (_case, passwordFor) => {
      const user = await registerUser(h.app, { username: uniqueUsername() });
      const res = await change(user, {
        currentPassword: user.password,
        newPassword: passwordFor({ email: user.email, username: user.username! }),
      });
      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors).toEqual(expect.arrayContaining([{ path: 'newPassword', message: expect.any(String) }]));
      expect((await login(user.email, user.password)).status).toBe(200);
    });
  });

  describe('hashes made before normalisation (raw text)', () => {
    /** A registered user whose stored hash is bcrypt of the raw text, as the service made it before NFKC. */
    async function legacyUser(raw: string): Promise<RegisteredUser> {
      const user = await registerUser(h.app);
      const legacyHash = bcrypt.hashSync(raw, h.config.bcryptCost);
      await h.database.db.updateTable('users').set({ password_hash: legacyHash }).where('id', '=', user.id).execute();
      return { ...user, password: raw };
    }

    it('when an ASCII password was hashed before, then it logs in unchanged', async () => {
      const user = await legacyUser('an old ascii passphrase');
      expect((await login(user.email, user.password)).status).toBe(200);
    });

    it('when a non-NFKC password was hashed raw, then the same raw text still logs in and changes the password', async () => {
      const user = await legacyUser(DECOMPOSED);
      expect((await login(user.email, DECOMPOSED)).status).toBe(200);
      expect((await change(user, { currentPassword: DECOMPOSED, newPassword: NEW_PASSWORD })).status).toBe(204);
      expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
    });

    it('when a non-NFKC password was hashed raw, then its other form does not log in until the password is changed (documented limit)', async () => {
      const user = await legacyUser(DECOMPOSED);
      expectProblem(await login(user.email, COMPOSED), 401, 'INVALID_CREDENTIALS');
    });
  });
});
