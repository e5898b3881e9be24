import { sql } from 'kysely';
import request from 'supertest';
import { countPrunable, prune, type PruneOptions } from '../../src/maintenance/prune';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { expectProblem, registerUser, type RegisteredUser, sha256, sessionIdOf, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';

/** Short lifetimes, so that a few clock moves take rows past them. */
const ENV = {
  ACCESS_TOKEN_TTL: '60',
  REFRESH_TOKEN_TTL: '100',
  SESSION_MAX_AGE: '1000',
  AUDIT_RETENTION_DAYS: '30',
  LOGIN_MAX_FAILURES: '2',
  LOCKOUT_DURATION: '300',
};
const DAY = 24 * 60 * 60;

// A database of the suite's own: prune deletes across whole tables, with the clock moved far
// ahead, so on the shared PostgreSQL it would delete rows that other suites are using.
describe.each(DATABASE_KINDS)('prune (%s)', (kind) => {
  let database: PrivateDatabase;
  let h: Harness;
  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'prune');
  });
  afterAll(async () => {
    await database.dispose();
  });
  beforeEach(async () => {
    // Counts are whole-table: each test starts from empty tables, with a clock of its own.
    await sql`TRUNCATE users, user_roles, sessions, refresh_tokens, audit_events, login_failures, one_time_tokens, mail_outbox`.execute(
      database.handle.db,
    );
    h = await createHarness({ database: database.handle, env: ENV });
  });

  const db = () => h.database.db;
  const options = (extra: Partial<PruneOptions> = {}): PruneOptions => ({
    now: h.clock.now(),
    refreshTokenTtl: h.config.refreshTokenTtl,
    auditRetentionDays: h.config.auditRetentionDays,
    lockoutDuration: h.config.lockoutDuration,
    ...extra,
  });
  const refresh = (refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
  const failLogin = (email: string) => request(h.app).post('/auth/login').send({ email, password: 'not the right password' });
  const logout = (user: RegisteredUser) => request(h.app).post('/auth/logout').send({ refreshToken: user.refreshToken }).expect(204);

  async function tokenHashesOf(sessionId: string): Promise<string[]> {
    const rows = await db().selectFrom('refresh_tokens').select('token_hash').where('session_id', '=', sessionId).execute();
    return rows.map((row) => row.token_hash).sort();
  }
  async function rowCount(table: 'sessions' | 'refresh_tokens' | 'audit_events'): Promise<number> {
    const row = await db()
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  it('when a session is live, then prune keeps its live token and its rotated unexpired token, and reuse of that one is still detected', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(50);
    const rotated = await refresh(user.refreshToken).expect(200);
    // Past the reuse grace, well before the first token's expiry at 100 s.
    h.clock.advance(20);

    const counts = await prune(db(), options());

    expect(counts).toEqual({ refreshTokens: 0, sessions: 0, auditEvents: 0, loginFailures: 0, oneTimeTokens: 0, mailOutbox: 0 });
    expect(await tokenHashesOf(sessionIdOf(user.accessToken))).toEqual(
      [sha256(user.refreshToken), sha256(rotated.body.refreshToken)].sort(),
    );
    expectProblem(await refresh(user.refreshToken), 401, 'REFRESH_TOKEN_REUSED');
  });

  it('when a live session has an expired rotated token, then prune deletes that token alone and the live one still refreshes', async () => {
    const user = await registerUser(h.app);
    h.clock.advance(90);
    const rotated = await refresh(user.refreshToken).expect(200);
    // 110 s: the first token expired at 100 s; its successor lives until 190 s.
    h.clock.advance(20);

    const counts = await prune(db(), options());

    expect(counts).toEqual({ refreshTokens: 1, sessions: 0, auditEvents: 0, loginFailures: 0, oneTimeTokens: 0, mailOutbox: 0 });
    expect(await tokenHashesOf(sessionIdOf(user.accessToken))).toEqual([sha256(rotated.body.refreshToken)]);
    expect((await refresh(rotated.body.refreshToken)).status).toBe(200);
  });

  it('when sessions have ended, then prune deletes the expired and the long-revoked ones with their tokens and keeps the others', async () => {
    // Times in seconds from now; REFRESH_TOKEN_TTL 100, SESSION_MAX_AGE 1000, pruned at 1001.
    await registerUser(h.app); // its session ends at 1000
    h.clock.advance(800);
    const revokedLongAgo = await registerUser(h.app); // revoked at 800, more than 100 s before 1001; would end at 1800
    await logout(revokedLongAgo);
    h.clock.advance(150);
    const live = await registerUser(h.app); // token until 1050
    h.clock.advance(45);
    const revokedRecently = await registerUser(h.app); // revoked at 995, less than 100 s before 1001
    await logout(revokedRecently);
    h.clock.advance(6);

    const counts = await prune(db(), options());

    expect(counts).toEqual({ refreshTokens: 2, sessions: 2, auditEvents: 0, loginFailures: 0, oneTimeTokens: 0, mailOutbox: 0 });
    const sessions = await db().selectFrom('sessions').select('user_id').execute();
    expect(sessions.map((s) => s.user_id).sort()).toEqual([live.id, revokedRecently.id].sort());
    const tokens = await db().selectFrom('refresh_tokens').select('token_hash').execute();
    expect(tokens.map((t) => t.token_hash).sort()).toEqual([sha256(live.refreshToken), sha256(revokedRecently.refreshToken)].sort());
    expect((await refresh(live.refreshToken)).status).toBe(200);
  });

  it.each([
    ['one second short of', 'keeps', -1],
    ['exactly', 'keeps', 0],
    ['one second past', 'deletes', 1],
  ] as const)(
    'when an audit event is %s AUDIT_RETENTION_DAYS old, then prune %s it and keeps newer ones',
    async (_age, outcome, offset) => {
      const old = await registerUser(h.app);
      h.clock.advance(h.config.auditRetentionDays * DAY + offset);
      const recent = await registerUser(h.app);

      const counts = await prune(db(), options());

      expect(counts.auditEvents).toBe(outcome === 'deletes' ? 1 : 0);
      const events = await db().selectFrom('audit_events').select(['user_id', 'type']).execute();
      const expected = [{ user_id: recent.id, type: 'user.registered' }];
      if (outcome === 'keeps') expected.push({ user_id: old.id, type: 'user.registered' });
      expect(events).toEqual(expect.arrayContaining(expected));
      expect(events).toHaveLength(expected.length);
    },
  );

  it.each([1, 2, 5, 1000])(
    'when 5 refresh tokens have expired and the batch size is %i, then all 5 are deleted and their sessions kept',
    async (batchSize) => {
      for (let i = 0; i < 5; i += 1) await registerUser(h.app);
      // Past REFRESH_TOKEN_TTL, within SESSION_MAX_AGE: the sessions have not ended.
      h.clock.advance(101);

      const counts = await prune(db(), options({ batchSize }));

      expect(counts).toEqual({ refreshTokens: 5, sessions: 0, auditEvents: 0, loginFailures: 0, oneTimeTokens: 0, mailOutbox: 0 });
      expect(await rowCount('refresh_tokens')).toBe(0);
      expect(await rowCount('sessions')).toBe(5);
    },
  );

  it('when counted first, then countPrunable deletes nothing and reports what prune then deletes', async () => {
    await registerUser(h.app); // expires at 1000
    await logout(await registerUser(h.app)); // revoked at 0 and expired at 1000: one session, counted once
    h.clock.advance(DAY * h.config.auditRetentionDays + 1);
    await registerUser(h.app); // live

    const counted = await countPrunable(db(), options());

    // The two older registrations' verification tokens have expired too; their messages, never sent, are kept.
    expect(counted).toEqual({ refreshTokens: 2, sessions: 2, auditEvents: 3, loginFailures: 0, oneTimeTokens: 2, mailOutbox: 0 });
    expect([await rowCount('refresh_tokens'), await rowCount('sessions'), await rowCount('audit_events')]).toEqual([3, 3, 4]);
    expect(await prune(db(), options())).toEqual(counted);
    expect([await rowCount('refresh_tokens'), await rowCount('sessions'), await rowCount('audit_events')]).toEqual([1, 1, 1]);
  });

  it('when failure counters are older than LOCKOUT_DURATION, then prune deletes them, and keeps recent ones and those whose lock is younger', async () => {
    // Times in seconds from now; LOCKOUT_DURATION 300, LOGIN_MAX_FAILURES 2.
    const stale = uniqueEmail('stale');
    const locked = uniqueEmail('locked');
    const recent = uniqueEmail('recent');
    expectProblem(await failLogin(stale), 401, 'INVALID_CREDENTIALS'); // last failure at 0
    await failLogin(locked);
    expectProblem(await failLogin(locked), 423, 'ACCOUNT_LOCKED'); // last failure at 0, locked until 300
    h.clock.advance(200);
    await failLogin(recent); // last failure at 200
    const emails = async () => (await db().selectFrom('login_failures').select('email').orderBy('email').execute()).map((row) => row.email);

    h.clock.advance(100); // 300: the stale counter is exactly LOCKOUT_DURATION old, not older
    expect(await prune(db(), options())).toEqual({
      refreshTokens: 0,
      sessions: 0,
      auditEvents: 0,
      loginFailures: 0,
      oneTimeTokens: 0,
      mailOutbox: 0,
    });

    h.clock.advance(1); // 301: its last failure is older; the lock ended at 300, less than LOCKOUT_DURATION ago
    expect(await countPrunable(db(), options())).toEqual({
      refreshTokens: 0,
      sessions: 0,
      auditEvents: 0,
      loginFailures: 1,
      oneTimeTokens: 0,
      mailOutbox: 0,
    });
    expect((await prune(db(), options({ batchSize: 1 }))).loginFailures).toBe(1);
    expect(await emails()).toEqual([locked, recent].sort());

    h.clock.advance(300); // 601: the lock ended more than LOCKOUT_DURATION ago, the recent failure is 401 s old
    expect((await prune(db(), options())).loginFailures).toBe(2);
    expect(await emails()).toEqual([]);
    // Nothing an answer depends on was lost: one failure is one failure again.
    expectProblem(await failLogin(locked), 401, 'INVALID_CREDENTIALS');
  });

  it('when reset and verification tokens expire and messages age, then prune deletes the expired tokens and the messages sent or failed over a day ago', async () => {
    const user = await registerUser(h.app); // a verification token, valid EMAIL_VERIFY_TTL (one day)
    await request(h.app).post('/auth/password/forgot').send({ email: user.email }).expect(202); // a reset token, PASSWORD_RESET_TTL
    await request(h.app).post('/auth/password/forgot').send({ email: user.email }).expect(202); // supersedes the first
    await h.settled();
    const messages = await db().selectFrom('mail_outbox').select(['id', 'kind']).orderBy('kind').orderBy('id').execute();
    expect(messages.map((message) => message.kind)).toEqual(['email_verification', 'password_reset', 'password_reset']);
    // One delivered, one failed for good, one still waiting for the dispatcher.
    const at = h.clock.now();
    await db().updateTable('mail_outbox').set({ sent_at: at, link: null }).where('id', '=', messages[0]!.id).execute();
    await db().updateTable('mail_outbox').set({ failed_at: at, link: null }).where('id', '=', messages[1]!.id).execute();
    const tokens = async () =>
      (await db().selectFrom('one_time_tokens').select('purpose').orderBy('purpose').execute()).map((row) => row.purpose);

    h.clock.advance(h.config.passwordResetTtl); // exactly at the reset tokens' expiry: kept
    expect(await prune(db(), options())).toMatchObject({ oneTimeTokens: 0, mailOutbox: 0 });
    h.clock.advance(1);
    expect(await prune(db(), options())).toMatchObject({ oneTimeTokens: 2, mailOutbox: 0 });
    expect(await tokens()).toEqual(['email_verification']);

    h.clock.advance(DAY - h.config.passwordResetTtl); // one second past a day: the verification token and the settled messages go
    expect(await countPrunable(db(), options())).toMatchObject({ oneTimeTokens: 1, mailOutbox: 2 });
    expect(await prune(db(), options({ batchSize: 1 }))).toMatchObject({ oneTimeTokens: 1, mailOutbox: 2 });
    expect(await tokens()).toEqual([]);
    const left = await db().selectFrom('mail_outbox').select('id').execute();
    expect(left).toEqual([{ id: messages[2]!.id }]);
  });

  it('when messages were written within the hour, then prune keeps them and the hourly cap still holds', async () => {
    const user = await registerUser(h.app);
    for (let i = 0; i < h.config.resetMaxPerHour; i += 1) {
      await request(h.app).post('/auth/password/forgot').send({ email: user.email }).expect(202);
    }
    await h.settled();
    await db().updateTable('mail_outbox').set({ sent_at: h.clock.now(), link: null }).execute();
    h.clock.advance(60 * 59);
    expect((await prune(db(), options())).mailOutbox).toBe(0);
    await request(h.app).post('/auth/password/forgot').send({ email: user.email }).expect(202);
    await h.settled();
    const resets = await db().selectFrom('mail_outbox').select('id').where('kind', '=', 'password_reset').execute();
    expect(resets).toHaveLength(h.config.resetMaxPerHour);
  });

  it.each([0, -1, 1.5, Number.NaN])('when the batch size is %p, then prune throws a TypeError and deletes nothing', async (batchSize) => {
    await registerUser(h.app);
    h.clock.advance(101);

    await expect(prune(db(), options({ batchSize }))).rejects.toThrow(TypeError);
    expect(await rowCount('refresh_tokens')).toBe(1);
  });
});
