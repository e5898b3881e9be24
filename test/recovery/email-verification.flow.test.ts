import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser, sha256, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { messagesTo, tokenFromLatestMessage, tokensOfMessages } from './outbox';

const TTL = 86400;
const CAP = 3;
const WRONG_PASSWORD = 'not the right password';

const verify = (h: Harness, token: unknown) => request(h.app).post('/auth/email/verify').send({ token });
const requestAgain = (h: Harness, accessToken: string) => request(h.app).post('/users/me/email/verification').set(bearer(accessToken));
/** Asks for a verification message by email, and waits for its work, which is done after the answer. */
async function resend(h: Harness, email: string) {
  const res = await request(h.app).post('/auth/email/verification').send({ email });
  await h.settled();
  return res;
}
/** Asks for a reset message, and waits for its work. */
async function forgot(h: Harness, email: string) {
  const res = await request(h.app).post('/auth/password/forgot').send({ email });
  await h.settled();
  return res;
}
const login = (h: Harness, email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
const me = (h: Harness, accessToken: string) => request(h.app).get('/users/me').set(bearer(accessToken));

const verifiedEvents = (h: Harness, userId: string) =>
  h.database.db
    .selectFrom('audit_events')
    .select(['data'])
    .where('user_id', '=', userId)
    .where('type', '=', 'user.email_verified')
    .execute();

describe.each(DATABASE_KINDS)('email verification (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: { EMAIL_VERIFY_URL: 'https://app.example.test/verify?token={token}' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when a user registers, then a message is written with the account, and verify makes emailVerified true', async () => {
    const registered = await request(h.app).post('/auth/register').send({ email: uniqueEmail(), password: 'correct horse battery staple' });
    expect(registered.status).toBe(201);
    expect(registered.body.user.emailVerified).toBe(false);
    const { email, id } = registered.body.user as { email: string; id: string };

    const [message] = await messagesTo(h.database.db, email, 'email_verification');
    expect(message).toMatchObject({ user_id: id, expires_at: new Date(h.clock.now().getTime() + TTL * 1000) });
    expect(message!.link).toMatch(/^https:\/\/app\.example\.test\/verify\?token=[A-Za-z0-9_-]{43}$/);
    const token = await tokenFromLatestMessage(h.database.db, email, 'email_verification');
    const stored = await h.database.db.selectFrom('one_time_tokens').select('token_hash').where('user_id', '=', id).execute();
    expect(stored).toEqual([{ token_hash: sha256(token) }]);

    expect((await me(h, registered.body.accessToken)).body.emailVerified).toBe(false);
    expect((await verify(h, token)).status).toBe(204);
    expect((await me(h, registered.body.accessToken)).body.emailVerified).toBe(true);
    expect(await verifiedEvents(h, id)).toEqual([{ data: {} }]);
  });

  it('when a token is used twice, then the second answers 400 VERIFY_TOKEN_INVALID', async () => {
    const user = await registerUser(h.app);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'email_verification');
    expect((await verify(h, token)).status).toBe(204);
    expectProblem(await verify(h, token), 400, 'VERIFY_TOKEN_INVALID');
  });

  it('when the token is past EMAIL_VERIFY_TTL, then 400 VERIFY_TOKEN_EXPIRED and the account stays unverified', async () => {
    const user = await registerUser(h.app);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'email_verification');
    h.clock.advance(TTL);
    expectProblem(await verify(h, token), 400, 'VERIFY_TOKEN_EXPIRED');
    const row = await h.database.db.selectFrom('users').select('email_verified_at').where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.email_verified_at).toBeNull();
  });

  it('when the token is unknown or a reset token, then 400 VERIFY_TOKEN_INVALID', async () => {
    const user = await registerUser(h.app);
    await forgot(h, user.email);
    const resetToken = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    for (const token of [randomBytes(32).toString('base64url'), '', 'x', resetToken])
      expectProblem(await verify(h, token), 400, 'VERIFY_TOKEN_INVALID');
  });

  it.each([
    ['no token', {}],
    ['a token that is a number', { token: 7 }],
    ['a token over 512 characters', { token: 'a'.repeat(513) }],
  ])('when the verify body has %s, then 422 VALIDATION_FAILED', async (_name, body) => {
    expectProblem(await request(h.app).post('/auth/email/verify').send(body), 422, 'VALIDATION_FAILED');
  });

  it('when the caller asks for a new message, then 202, it supersedes the first, and the new one verifies', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(1);
    const res = await requestAgain(h, user.accessToken);
    expect(res.status).toBe(202);
    const [first, second] = await tokensOfMessages(h.database.db, user.email, 'email_verification');
    expectProblem(await verify(h, first!), 400, 'VERIFY_TOKEN_INVALID');
    expect((await verify(h, second!)).status).toBe(204);
  });

  it('when the caller is verified already, then asking answers 202 and sends nothing; a second valid token still answers 204 without a new event', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(1);
    await requestAgain(h, user.accessToken);
    const [, latest] = await tokensOfMessages(h.database.db, user.email, 'email_verification');
    expect((await verify(h, latest!)).status).toBe(204);

    expect((await requestAgain(h, user.accessToken)).status).toBe(202);
    expect(await messagesTo(h.database.db, user.email, 'email_verification')).toHaveLength(2);
    expect(await verifiedEvents(h, user.id)).toHaveLength(1);
  });

  it('when a verified account is sent a token some other way and uses it, then 204 and no second event', async () => {
    const user = await registerUser(h.app);
    const token = await tokenFromLatestMessage(h.database.db, user.email, 'email_verification');
    // Verified meanwhile through a password reset, which proves the address too.
    await forgot(h, user.email);
    const resetToken = await tokenFromLatestMessage(h.database.db, user.email, 'password_reset');
    expect(
      (await request(h.app).post('/auth/password/reset').send({ token: resetToken, newPassword: 'a brand new passphrase' })).status,
    ).toBe(204);
    expect((await login(h, user.email, 'a brand new passphrase')).body.user.emailVerified).toBe(true);

    expect((await verify(h, token)).status).toBe(204);
    expect(await verifiedEvents(h, user.id)).toEqual([]);
  });

  it(`when more than RESET_MAX_PER_HOUR (${CAP}) verification messages are asked for within the hour, then all answer 202 and ${CAP} are written (registration's included)`, async () => {
    const user = await registerUser(h.app);
    for (let i = 0; i < CAP; i += 1) expect((await requestAgain(h, user.accessToken)).status).toBe(202);
    for (let i = 0; i < 2; i += 1) expect((await resend(h, user.email)).status).toBe(202);
    expect(await messagesTo(h.database.db, user.email, 'email_verification')).toHaveLength(CAP);
    // The reset cap is counted apart.
    expect((await forgot(h, user.email)).status).toBe(202);
    expect(await messagesTo(h.database.db, user.email, 'password_reset')).toHaveLength(1);
  });

  it('when a verification message is asked for by email, then an unverified account gets one and the answer is the same for an unknown email', async () => {
    const user = await registerUser(h.app);
    const unknown = uniqueEmail('nobody');
    const known = await resend(h, ` ${user.email.toUpperCase()}`);
    const nobody = await resend(h, unknown);
    expect(known.status).toBe(202);
    expect({ status: nobody.status, text: nobody.text }).toEqual({ status: known.status, text: known.text });
    expect(await messagesTo(h.database.db, user.email, 'email_verification')).toHaveLength(2);
    expect(await messagesTo(h.database.db, unknown)).toEqual([]);
    expectProblem(await request(h.app).post('/auth/email/verification').send({ email: 'nope' }), 422, 'VALIDATION_FAILED');
  });

  it('when the request for a new message has no access token, then 401 TOKEN_MISSING', async () => {
    expectProblem(await request(h.app).post('/users/me/email/verification'), 401, 'TOKEN_MISSING');
  });
});

describe.each(DATABASE_KINDS)('REQUIRE_VERIFIED_EMAIL=true (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind, env: { REQUIRE_VERIFIED_EMAIL: 'true' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when an unverified account logs in with the right password, then 403 EMAIL_NOT_VERIFIED; with a wrong one, 401 as ever', async () => {
    const user = await registerUser(h.app);
    expectProblem(await login(h, user.email, user.password), 403, 'EMAIL_NOT_VERIFIED');
    expectProblem(await login(h, user.email, WRONG_PASSWORD), 401, 'INVALID_CREDENTIALS');
    expectProblem(await login(h, uniqueEmail(), user.password), 401, 'INVALID_CREDENTIALS');
    const failed = await h.database.db
      .selectFrom('audit_events')
      .select('data')
      .where('user_id', '=', user.id)
      .where('type', '=', 'auth.failed')
      .orderBy('created_at')
      .execute();
    expect(failed.map((event) => event.data)).toEqual(
      expect.arrayContaining([{ reason: 'email_not_verified' }, { reason: 'wrong_password' }]),
    );
  });

  it('when the owner asks again by email and verifies, then the login succeeds', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(1);
    expect((await resend(h, user.email)).status).toBe(202);
    expect((await verify(h, await tokenFromLatestMessage(h.database.db, user.email, 'email_verification'))).status).toBe(204);
    const res = await login(h, user.email, user.password);
    expect(res.status).toBe(200);
    expect(res.body.user.emailVerified).toBe(true);
  });

  it('when an unverified account has the session of its registration, then it keeps working (only new logins are refused)', async () => {
    const user = await registerUser(h.app);
    expect((await me(h, user.accessToken)).status).toBe(200);
    expect((await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken })).status).toBe(200);
    expect((await requestAgain(h, user.accessToken)).status).toBe(202);
  });
});
