import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerAdmin, registerUser, sha256, uniqueEmail } from '../helpers/factories';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';
import { messagesTo, tokenFromLatestMessage, tokensOfMessages } from './outbox';

const NEW_PASSWORD = 'a brand new passphrase';
const WRONG_PASSWORD = 'not the right password';
const TTL = 1800;
const CAP = 3;
const ENV = { TRUST_PROXY: '1', LOGIN_MAX_FAILURES: '3', PASSWORD_RESET_URL: 'myapp://reset?token={token}' };

/** Asks for a reset message, and waits for its work, which is done after the answer. */
async function forgot(h: Harness, email: string, headers: Record<string, string> = {}) {
  const res = await request(h.app).post('/auth/password/forgot').set(headers).send({ email });
  await h.settled();
  return res;
}
const reset = (h: Harness, token: string, newPassword = NEW_PASSWORD) =>
  request(h.app).post('/auth/password/reset').send({ token, newPassword });
const login = (h: Harness, email: string, password: string, ip = '198.51.100.7') =>
  request(h.app).post('/auth/login').set('X-Forwarded-For', ip).send({ email, password });
const refresh = (h: Harness, refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
const me = (h: Harness, accessToken: string) => request(h.app).get('/users/me').set(bearer(accessToken));

const eventsOf = (h: Harness, userId: string, type: string) =>
  h.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', userId).where('type', '=', type).execute();

const tokensOf = (h: Harness, userId: string) =>
  h.database.db
    .selectFrom('one_time_tokens')
    .select(['token_hash', 'created_at', 'expires_at', 'used_at', 'superseded_at'])
    .where('user_id', '=', userId)
    .where('purpose', '=', 'password_reset')
    .orderBy('created_at')
    .execute();

describe.each(DATABASE_KINDS)('password reset (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: ENV });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when a user forgets the password, then forgot → message → reset refuses the old sessions and the new password logs in', async () => {
    const user = await registerUser(h.app);
    const second = await login(h, user.email, user.password);

    const accepted = await forgot(h, user.email);
    expect(accepted.status).toBe(202);
    expect(accepted.text).toBe('');

    const [message] = await messagesTo(h.database.db, user.email, 'password_reset');
    expect(message).toMatchObject({ recipient: user.email, user_id: user.id });
    expect(message!.link).toMatch(/^myapp:\/\/reset\?token=[A-Za-z0-9_-]{43}$/);
    expect(message!.expires_at).toEqual(new Date(h.clock.now().getTime() + TTL * 1000));
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');

    // Only the hash is stored.
    const [stored] = await tokensOf(h, user.id);
    expect(stored!.token_hash).toBe(sha256(token));

    expect((await reset(h, token)).status).toBe(204);

    for (const session of [user, second.body]) {
      expectProblem(await me(h, session.accessToken), 401, 'SESSION_REVOKED');
      expectProblem(await refresh(h, session.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
    }
    expectProblem(await login(h, user.email, user.password), 401, 'INVALID_CREDENTIALS');
    const fresh = await login(h, user.email, NEW_PASSWORD);
    expect(fresh.status).toBe(200);
    // The reset came through the email: it is verified now.
    expect(fresh.body.user.emailVerified).toBe(true);
  });

  it('when a reset succeeds, then it is audited without the token, and the request was audited too', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    await reset(h, token);

    const requested = await eventsOf(h, user.id, 'password.reset_requested');
    const done = await eventsOf(h, user.id, 'password.reset');
    expect(requested).toEqual([{ type: 'password.reset_requested', data: { messageQueued: true } }]);
    expect(done).toEqual([{ type: 'password.reset', data: { revokedSessions: 1, failuresCleared: 0 } }]);
    const all = JSON.stringify(await h.database.db.selectFrom('audit_events').select('data').where('user_id', '=', user.id).execute());
    expect(all).not.toContain(token);
    expect(all).not.toContain(sha256(token));
  });

  it('when a reset token is used twice, then the second answers 400 RESET_TOKEN_INVALID and the password stays the first', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    expect((await reset(h, token)).status).toBe(204);

    expectProblem(await reset(h, token, 'yet another long passphrase'), 400, 'RESET_TOKEN_INVALID');
    expect((await login(h, user.email, NEW_PASSWORD)).status).toBe(200);
  });

  it('when a newer reset is requested, then the older token is superseded for good and only the newer works', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    h.clock.advance(1);
    await forgot(h, user.email);
    const [older, newer] = await tokensOfMessages(h.database.db, user.email, 'password_reset');

    expectProblem(await reset(h, older!), 400, 'RESET_TOKEN_INVALID');
    const rows = await tokensOf(h, user.id);
    expect(rows.map((row) => row.superseded_at !== null)).toEqual([true, false]);
    expect((await reset(h, newer!)).status).toBe(204);
    // Using the newer one does not bring the older back.
    expectProblem(await reset(h, older!, 'yet another long passphrase'), 400, 'RESET_TOKEN_INVALID');
  });

  it('when the token is past PASSWORD_RESET_TTL, then 400 RESET_TOKEN_EXPIRED; one second before, it works', async () => {
    const expired = await registerUser(h.app);
    await forgot(h, expired.email);
    const late = await tokenFromLatestMessage(h.database.db, expired.email, 'password_reset');
    const inTime = await registerUser(h.app);
    await forgot(h, inTime.email);
    const early = await tokenFromLatestMessage(h.database.db, inTime.email, 'password_reset');

    h.clock.advance(TTL - 1);
    expect((await reset(h, early)).status).toBe(204);
    h.clock.advance(1);
    expectProblem(await reset(h, late), 400, 'RESET_TOKEN_EXPIRED');
    // Expiry is told only of a token that would otherwise be valid.
    expectProblem(await reset(h, early), 400, 'RESET_TOKEN_INVALID');
    expect((await login(h, expired.email, expired.password)).status).toBe(200);
  });

  it('when the token is unknown, malformed or a verification token, then 400 RESET_TOKEN_INVALID', async () => {
    const user = await registerUser(h.app);
    const verification = await tokenFromLatestMessage(h.database.db, user.email, 'email_verification');
    for (const token of [randomBytes(32).toString('base64url'), '', 'x', 'ünïcödé', 'a'.repeat(512), verification]) {
      expectProblem(await reset(h, token), 400, 'RESET_TOKEN_INVALID');
    }
  });

  it('when the new password breaks the policy, then 422 WEAK_PASSWORD and the token still works', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    for (const weak of ['short', 'password', user.email, 'é'.repeat(40)]) {
      const res = await reset(h, token, weak);
      expectProblem(res, 422, 'WEAK_PASSWORD');
      expect(res.body.errors[0].path).toBe('newPassword');
    }
    expect((await login(h, user.email, user.password)).status).toBe(200);
    expect((await reset(h, token)).status).toBe(204);
  });

  it.each([
    ['no body fields', {}],
    ['a token that is not a string', { token: 42, newPassword: NEW_PASSWORD }],
    ['no newPassword', { token: 'abc' }],
    ['a token over 512 characters', { token: 'a'.repeat(513), newPassword: NEW_PASSWORD }],
  ])('when the reset body has %s, then 422 VALIDATION_FAILED', async (_name, body) => {
    expectProblem(await request(h.app).post('/auth/password/reset').send(body), 422, 'VALIDATION_FAILED');
  });

  it.each([
    ['no email', {}],
    ['an email that is not a string', { email: ['a@b.c'] }],
    ['something that is not an email', { email: 'not an email' }],
  ])('when the forgot body has %s, then 422 VALIDATION_FAILED and nothing is written', async (_name, body) => {
    const before = await h.database.db
      .selectFrom('mail_outbox')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    expectProblem(await request(h.app).post('/auth/password/forgot').send(body), 422, 'VALIDATION_FAILED');
    const after = await h.database.db
      .selectFrom('mail_outbox')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });

  it('when the email is locked by failed logins, then a reset clears the counters of every address and the owner logs in', async () => {
    const user = await registerUser(h.app);
    for (const ip of ['203.0.113.1', '203.0.113.2']) {
      for (let i = 0; i < 3; i += 1) await login(h, user.email, WRONG_PASSWORD, ip);
    }
    expectProblem(await login(h, user.email, user.password, '203.0.113.1'), 423, 'ACCOUNT_LOCKED');

    await forgot(h, user.email);
    await reset(h, await tokenFromLatestMessage(h.database.db, user.email, 'password_reset'));

    const counters = await h.database.db.selectFrom('login_failures').select('ip').where('email', '=', user.email).execute();
    expect(counters).toEqual([]);
    expect((await login(h, user.email, NEW_PASSWORD, '203.0.113.1')).status).toBe(200);
    expect(await eventsOf(h, user.id, 'password.reset')).toEqual([
      { type: 'password.reset', data: { revokedSessions: 1, failuresCleared: 2 } },
    ]);
  });

  it('when a disabled account resets its password, then the reset works and login still answers 403 ACCOUNT_DISABLED', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);
    expect((await request(h.app).post(`/admin/users/${user.id}/disable`).set(bearer(admin.accessToken))).status).toBe(200);

    expect((await forgot(h, user.email)).status).toBe(202);
    expect((await reset(h, await tokenFromLatestMessage(h.database.db, user.email, 'password_reset'))).status).toBe(204);

    expectProblem(await login(h, user.email, NEW_PASSWORD), 403, 'ACCOUNT_DISABLED');
    const row = await h.database.db.selectFrom('users').select('is_active').where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.is_active).toBe(false);
  });

  it(`when more than RESET_MAX_PER_HOUR (${CAP}) requests come within the hour, then all answer 202 and only ${CAP} messages are written`, async () => {
    const user = await registerUser(h.app);
    for (let i = 0; i < CAP + 2; i += 1) {
      expect((await forgot(h, user.email)).status).toBe(202);
      h.clock.advance(60);
    }
    expect(await messagesTo(h.database.db, user.email, 'password_reset')).toHaveLength(CAP);
    // The requests over the cap do not supersede the last message's token.
    const rows = await tokensOf(h, user.id);
    expect(rows.filter((row) => row.superseded_at === null)).toHaveLength(1);
    expect((await reset(h, await tokenFromLatestMessage(h.database.db, user.email, 'password_reset'))).status).toBe(204);
    const requested = await eventsOf(h, user.id, 'password.reset_requested');
    expect(requested.map((event) => event.data)).toEqual([
      ...Array.from({ length: CAP }, () => ({ messageQueued: true })),
      { messageQueued: false },
      { messageQueued: false },
    ]);

    // An hour after the first message, one more may go.
    h.clock.advance(3600 - (CAP + 2) * 60 + 1);
    await forgot(h, user.email);
    expect(await messagesTo(h.database.db, user.email, 'password_reset')).toHaveLength(CAP + 1);
  });

  it('when an email has no account, then the answer is the same as for one that has, and nothing but the account’s rows are written', async () => {
    const user = await registerUser(h.app);
    const unknown = uniqueEmail('nobody');
    const counts = async () => {
      const db = h.database.db;
      const n = async (table: 'mail_outbox' | 'one_time_tokens' | 'audit_events' | 'login_failures') =>
        Number(
          (
            await db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll<string>().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      return {
        outbox: await n('mail_outbox'),
        tokens: await n('one_time_tokens'),
        audit: await n('audit_events'),
        failures: await n('login_failures'),
      };
    };

    const before = await counts();
    const known = await forgot(h, user.email, { 'X-Request-Id': 'same-id' });
    const afterKnown = await counts();
    const nobody = await forgot(h, unknown, { 'X-Request-Id': 'same-id' });
    const afterUnknown = await counts();

    expect(nobody.status).toBe(known.status);
    expect(nobody.text).toBe(known.text);
    const headers = (res: request.Response) => {
      // What differs between any two requests: the time, and the rate limit's remaining count.
      const { date: _date, ratelimit: _ratelimit, ...rest } = res.headers as Record<string, string>;
      return rest;
    };
    expect(headers(nobody)).toEqual(headers(known));
    expect(afterKnown).toEqual({ ...before, outbox: before.outbox + 1, tokens: before.tokens + 1, audit: before.audit + 1 });
    expect(afterUnknown).toEqual(afterKnown);
    expect(await messagesTo(h.database.db, unknown)).toEqual([]);
  });

  it('when the email is given in another case and with spaces, then it reaches the account', async () => {
    const user = await registerUser(h.app);
    expect((await forgot(h, `  ${user.email.toUpperCase()} `)).status).toBe(202);
    expect(await messagesTo(h.database.db, user.email, 'password_reset')).toHaveLength(1);
  });

  it('when two forgot requests for one account run at once on two instances, then one live token remains and the cap holds', async () => {
    const second = await createSecondInstance(h, kind);
    try {
      const user = await registerUser(h.app);
      const answers = await Promise.all(Array.from({ length: CAP + 3 }, (_, i) => forgot(i % 2 === 0 ? h : second, user.email)));
      expect(answers.map((res) => res.status)).toEqual(Array.from({ length: CAP + 3 }, () => 202));
      expect(await messagesTo(h.database.db, user.email, 'password_reset')).toHaveLength(CAP);
      const live = (await tokensOf(h, user.id)).filter((row) => row.superseded_at === null && row.used_at === null);
      expect(live).toHaveLength(1);
      // The clock stands still, so the messages are told apart by their token: the live one's works, the others' do not.
      const tokens = await tokensOfMessages(h.database.db, user.email, 'password_reset');
      const liveToken = tokens.find((token) => sha256(token) === live[0]!.token_hash)!;
      for (const token of tokens.filter((token) => token !== liveToken)) expectProblem(await reset(h, token), 400, 'RESET_TOKEN_INVALID');
      expect((await reset(h, liveToken)).status).toBe(204);
    } finally {
      await second.close();
    }
  });

  it('when two resets with one token run at once, then exactly one succeeds', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    const answers = await Promise.all([reset(h, token, 'first of the passwords'), reset(h, token, 'second of the passwords')]);
    expect(answers.map((res) => res.status).sort()).toEqual([204, 400]);
    const winner = answers[0].status === 204 ? 'first of the passwords' : 'second of the passwords';
    expect((await login(h, user.email, winner)).status).toBe(200);
  });
});
