import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, GOOD_PASSWORD, makeAdmin, sha256, uniqueEmail, sessionIdOf } from '../helpers/factories';

/** Every event type CONTRACT.md section 8 names (written out here, not imported from the service). */
const CONTRACT_EVENT_TYPES = [
  'user.registered',
  'user.logged_in',
  'auth.failed',
  'user.locked',
  'token.refreshed',
  'token.reuse_detected',
  'user.logged_out',
  'session.revoked',
  'password.changed',
  'user.roles_changed',
  'user.disabled',
  'user.enabled',
  'password.reset_requested',
  'password.reset',
  'user.email_verified',
];

const MAX_FAILURES = 2;
const LOCKOUT = 900;
const REUSE_GRACE = 10;

const PASSWORD = 'audit trail first passphrase';
const NEW_PASSWORD = 'audit trail second passphrase';
const LOCKED_PASSWORD = 'audit trail locked passphrase';
const WRONG_PASSWORD = 'audit trail wrong passphrase';

type Method = 'get' | 'post' | 'put' | 'delete';

/** What a test request was: the event it causes must carry the same request id, agent and time. */
interface Sent {
  res: request.Response;
  requestId: string;
  userAgent: string;
  at: string;
}

interface ExpectedEvent {
  type: string;
  userId: string;
  sent: Sent;
  data: Record<string, unknown>;
}

describe.each(DATABASE_KINDS)('audit trail (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({
      kind,
      env: { LOGIN_MAX_FAILURES: String(MAX_FAILURES), LOCKOUT_DURATION: String(LOCKOUT), REFRESH_REUSE_GRACE: String(REUSE_GRACE) },
    });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when every flow of the service has run, then each event type reads back with its request’s id, agent, address and time, and no event holds a secret', async () => {
    /** Every token the service handed out in this test, to search the trail for. */
    const tokens: string[] = [];
    const send = async (method: Method, path: string, options: { token?: string; body?: object } = {}): Promise<Sent> => {
      const requestId = `audit-${randomUUID()}`;
      const userAgent = `AuditTrailTest/1.0 (${requestId})`;
      const at = h.clock.now().toISOString();
      let req = request(h.app)[method](path).set('X-Request-Id', requestId).set('User-Agent', userAgent);
      if (options.token) req = req.set(bearer(options.token));
      const res = await (options.body ? req.send(options.body) : req);
      expect(res.headers['x-request-id']).toBe(requestId);
      for (const field of ['accessToken', 'refreshToken'] as const) {
        if (typeof res.body?.[field] === 'string') tokens.push(res.body[field]);
      }
      return { res, requestId, userAgent, at };
    };
    const expected: ExpectedEvent[] = [];

    // Registration and login.
    const email = uniqueEmail('audit');
    const registered = await send('post', '/auth/register', { body: { email, password: PASSWORD } });
    expect(registered.res.status).toBe(201);
    const userId: string = registered.res.body.user.id;
    expected.push({ type: 'user.registered', userId, sent: registered, data: { sessionId: sessionIdOf(registered.res.body.accessToken) } });
    h.clock.advance(1);

    const loggedIn = await send('post', '/auth/login', { body: { email, password: PASSWORD } });
    expect(loggedIn.res.status).toBe(200);
    const sessionA = sessionIdOf(loggedIn.res.body.accessToken);
    expected.push({ type: 'user.logged_in', userId, sent: loggedIn, data: { sessionId: sessionA } });
    h.clock.advance(1);

    // Refresh, then the same token again once the grace period is over.
    const refreshed = await send('post', '/auth/refresh', { body: { refreshToken: loggedIn.res.body.refreshToken } });
    expect(refreshed.res.status).toBe(200);
    expected.push({ type: 'token.refreshed', userId, sent: refreshed, data: { sessionId: sessionA } });
    h.clock.advance(REUSE_GRACE + 1);

    const reused = await send('post', '/auth/refresh', { body: { refreshToken: loggedIn.res.body.refreshToken } });
    expectProblem(reused.res, 401, 'REFRESH_TOKEN_REUSED');
    expected.push({ type: 'token.reuse_detected', userId, sent: reused, data: { sessionId: sessionA } });
    h.clock.advance(1);

    // Logout of one session.
    const loginB = await send('post', '/auth/login', { body: { email, password: PASSWORD } });
    expect(loginB.res.status).toBe(200);
    const loggedOut = await send('post', '/auth/logout', { body: { refreshToken: loginB.res.body.refreshToken } });
    expect(loggedOut.res.status).toBe(204);
    expected.push({ type: 'user.logged_out', userId, sent: loggedOut, data: { sessionId: sessionIdOf(loginB.res.body.accessToken) } });
    h.clock.advance(1);

    // One session revokes another.
    const loginC = await send('post', '/auth/login', { body: { email, password: PASSWORD } });
    const loginD = await send('post', '/auth/login', { body: { email, password: PASSWORD } });
    expect([loginC.res.status, loginD.res.status]).toEqual([200, 200]);
    const sessionD = sessionIdOf(loginD.res.body.accessToken);
    const revoked = await send('delete', `/users/me/sessions/${sessionD}`, { token: loginC.res.body.accessToken });
    expect(revoked.res.status).toBe(204);
    expected.push({ type: 'session.revoked', userId, sent: revoked, data: { sessionId: sessionD } });
    h.clock.advance(1);

    // Password change: of the live sessions, only the registration's is not the caller's.
    const changed = await send('post', '/users/me/password', {
      token: loginC.res.body.accessToken,
      body: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.res.status).toBe(204);
    expected.push({ type: 'password.changed', userId, sent: changed, data: { revokedSessions: 1 } });
    h.clock.advance(1);

    // An admin changes roles, disables (ending session C) and enables.
    const adminRegistered = await send('post', '/auth/register', { body: { email: uniqueEmail('audit-admin'), password: GOOD_PASSWORD } });
    expect(adminRegistered.res.status).toBe(201);
    const admin = { id: adminRegistered.res.body.user.id as string, token: adminRegistered.res.body.accessToken as string };
    await makeAdmin(h.database.db, admin.id);

    const rolesChanged = await send('put', `/admin/users/${userId}/roles`, { token: admin.token, body: { roles: ['user', 'admin'] } });
    expect(rolesChanged.res.status).toBe(200);
    expected.push({ type: 'user.roles_changed', userId, sent: rolesChanged, data: { added: ['admin'], removed: [], by: admin.id } });
    h.clock.advance(1);

    const disabled = await send('post', `/admin/users/${userId}/disable`, { token: admin.token });
    expect(disabled.res.status).toBe(200);
    expected.push({ type: 'user.disabled', userId, sent: disabled, data: { revokedSessions: 1, by: admin.id } });
    h.clock.advance(1);

    const enabled = await send('post', `/admin/users/${userId}/enable`, { token: admin.token });
    expect(enabled.res.status).toBe(200);
    expected.push({ type: 'user.enabled', userId, sent: enabled, data: { by: admin.id } });
    h.clock.advance(1);

    // Another account: wrong passwords until it locks.
    const lockedEmail = uniqueEmail('audit-locked');
    const lockedRegistered = await send('post', '/auth/register', { body: { email: lockedEmail, password: LOCKED_PASSWORD } });
    expect(lockedRegistered.res.status).toBe(201);
    const lockedId: string = lockedRegistered.res.body.user.id;
    const failed = await send('post', '/auth/login', { body: { email: lockedEmail, password: WRONG_PASSWORD } });
    expectProblem(failed.res, 401, 'INVALID_CREDENTIALS');
    expected.push({ type: 'auth.failed', userId: lockedId, sent: failed, data: { reason: 'wrong_password' } });
    h.clock.advance(1);
    const locked = await send('post', '/auth/login', { body: { email: lockedEmail, password: WRONG_PASSWORD } });
    expectProblem(locked.res, 423, 'ACCOUNT_LOCKED');
    const lockedUntil = new Date(Date.parse(locked.at) + LOCKOUT * 1000).toISOString();
    expected.push({ type: 'user.locked', userId: lockedId, sent: locked, data: { scope: 'address', failures: MAX_FAILURES, lockedUntil } });
    h.clock.advance(1);

    // The locked account's owner resets the password; the first account verifies its email.
    const linkToken = async (recipient: string, kind: 'password_reset' | 'email_verification') => {
      const row = await h.database.db
        .selectFrom('mail_outbox')
        .select('link')
        .where('recipient', '=', recipient)
        .where('kind', '=', kind)
        .executeTakeFirstOrThrow();
      const token = new URL(row.link!).searchParams.get('token')!;
      // The token, its link and its stored hash: none may reach the trail.
      tokens.push(token, row.link!, sha256(token));
      return token;
    };
    const forgot = await send('post', '/auth/password/forgot', { body: { email: lockedEmail } });
    expect(forgot.res.status).toBe(202);
    // Recorded after the answer, with the context of its request.
    await h.settled();
    expected.push({ type: 'password.reset_requested', userId: lockedId, sent: forgot, data: { messageQueued: true } });
    h.clock.advance(1);
    const reset = await send('post', '/auth/password/reset', {
      body: { token: await linkToken(lockedEmail, 'password_reset'), newPassword: NEW_PASSWORD },
    });
    expect(reset.res.status).toBe(204);
    expected.push({ type: 'password.reset', userId: lockedId, sent: reset, data: { revokedSessions: 1, failuresCleared: 1 } });
    h.clock.advance(1);
    const verified = await send('post', '/auth/email/verify', { body: { token: await linkToken(email, 'email_verification') } });
    expect(verified.res.status).toBe(204);
    expected.push({ type: 'user.email_verified', userId, sent: verified, data: {} });

    // Read each back as an admin, by user and type, and find the one its request caused.
    for (const event of expected) {
      const page = await send('get', `/admin/events?userId=${event.userId}&type=${event.type}&limit=100`, { token: admin.token });
      expect(page.res.status).toBe(200);
      const found = (page.res.body.items as Array<{ requestId: string }>).filter((item) => item.requestId === event.sent.requestId);
      expect(found).toEqual([
        {
          id: expect.any(String),
          type: event.type,
          userId: event.userId,
          ip: expect.stringMatching(/^(::ffff:)?127\.0\.0\.1$|^::1$/),
          userAgent: event.sent.userAgent,
          requestId: event.sent.requestId,
          createdAt: event.sent.at,
          data: event.data,
        },
      ]);
    }
    expect([...new Set(expected.map((event) => event.type))].sort()).toEqual([...CONTRACT_EVENT_TYPES].sort());

    // No stored event, anyone's, holds a password, token or hash this test used.
    const hashes = await h.database.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', 'in', [userId, lockedId, admin.id])
      .execute();
    const tokenHashes = await h.database.db
      .selectFrom('refresh_tokens')
      .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
      .select('refresh_tokens.token_hash')
      .where('sessions.user_id', 'in', [userId, lockedId, admin.id])
      .execute();
    expect(hashes).toHaveLength(3);
    expect(tokenHashes.length).toBeGreaterThanOrEqual(8);
    const secrets = [
      PASSWORD,
      NEW_PASSWORD,
      LOCKED_PASSWORD,
      WRONG_PASSWORD,
      GOOD_PASSWORD,
      ...tokens,
      ...hashes.map((row) => row.password_hash),
      ...tokenHashes.map((row) => row.token_hash),
    ];
    expect(tokens.length).toBeGreaterThanOrEqual(16);

    const stored = JSON.stringify(await h.database.db.selectFrom('audit_events').selectAll().execute());
    expect(stored).toContain(userId);
    expect(secrets.filter((secret) => stored.includes(secret))).toEqual([]);
    expect(stored).not.toMatch(/\$2[aby]?\$\d{2}\$/);
  });
});
