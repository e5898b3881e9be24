import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser, type RegisteredUser, sessionIdOf } from '../helpers/factories';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';

// POST /auth/logout-all racing new logins of the same user (and a refresh of one of its
// sessions), on two instances: no session that existed before the logout-all survives it. A
// login answered before the logout-all was sent is revoked; a login sent after it answered
// lives; one truly concurrent may go either way, but whole: revoked means its tokens are dead,
// alive means they work. Round after round, with the requests the logout-all sent at
// staggered moments so that it lands before, among and after the logins in turn.

interface Timed {
  res: request.Response;
  /** performance.now() when it was sent, and when its answer came. */
  sent: number;
  answered: number;
}

describe.each(DATABASE_KINDS)('logout-all racing new logins on two instances (%s)', (kind) => {
  const ROUNDS = kind === 'postgres' ? 15 : 5;
  /** Logins racing the logout-all in each round. */
  const LOGINS = 4;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    a = await createHarness({ kind });
    b = await createSecondInstance(a, kind);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const login = (h: Harness, user: RegisteredUser) =>
    request(h.app).post('/auth/login').send({ email: user.email, password: user.password });
  const refresh = (h: Harness, refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
  const me = (h: Harness, accessToken: string) => request(h.app).get('/users/me').set(bearer(accessToken));

  /** Sends `test` after `delayMs`, and times it. */
  async function timed(delayMs: number, test: () => request.Test): Promise<Timed> {
    await sleep(delayMs);
    const sent = performance.now();
    const res = await test();
    return { res, sent, answered: performance.now() };
  }

  async function isRevoked(sessionId: string): Promise<boolean> {
    const row = await a.database.db.selectFrom('sessions').select('revoked_at').where('id', '=', sessionId).executeTakeFirstOrThrow();
    return row.revoked_at !== null;
  }

  /** A session's tokens, as their holder finds them: both dead, or both working. */
  async function expectWhole(tokens: { accessToken: string; refreshToken: string }, revoked: boolean): Promise<void> {
    if (revoked) {
      expectProblem(await me(b, tokens.accessToken), 401, 'SESSION_REVOKED');
      expectProblem(await refresh(a, tokens.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
    } else {
      expect((await me(b, tokens.accessToken)).status).toBe(200);
      expect((await refresh(a, tokens.refreshToken)).status).toBe(200);
    }
  }

  it(`when ${LOGINS} logins and a refresh race a logout-all, ${ROUNDS} rounds, then every session from before it is revoked, those after it live, and none is left half-revoked`, async () => {
    const racedBothWays = { revoked: 0, alive: 0 };
    // At least ROUNDS rounds; more (up to 4×) while the logins have not yet landed on both sides
    // of the logout-all, which a loaded machine's timing can delay.
    const racedBothSides = () => racedBothWays.revoked > 0 && racedBothWays.alive > 0;
    for (let round = 0; round < ROUNDS || (!racedBothSides() && round < 4 * ROUNDS); round++) {
      const user = await registerUser(a.app);
      const first = await timed(0, () => login(b, user));
      const earlier = first.res.body as { accessToken: string; refreshToken: string };
      // The logout-all sent from 0 to 2 logins' time after the logins, so that it lands before, among and after them.
      const delay = ((first.answered - first.sent) * (round % 5)) / 2;

      const [logoutAll, refreshed, ...logins] = await Promise.all([
        timed(delay, () => request(a.app).post('/auth/logout-all').set(bearer(user.accessToken))),
        timed(delay, () => refresh(b, earlier.refreshToken)),
        ...Array.from({ length: LOGINS }, (_, i) => timed(0, () => login(i % 2 ? a : b, user))),
      ]);
      const later = (await login(a, user)).body as { accessToken: string; refreshToken: string };

      expect(logoutAll.res.status).toBe(204);
      // Sessions from before: the caller's own and the earlier login's, whatever the refresh did.
      expect(await isRevoked(sessionIdOf(user.accessToken))).toBe(true);
      expect(await isRevoked(sessionIdOf(earlier.accessToken))).toBe(true);
      if (refreshed.res.status === 200) await expectWhole(refreshed.res.body, true);
      else expectProblem(refreshed.res, 401, 'REFRESH_TOKEN_INVALID');
      // The racing logins: answered before the logout-all was sent means revoked; otherwise either, but whole.
      for (const { res, answered } of logins) {
        expect(res.status).toBe(200);
        const revoked = await isRevoked(sessionIdOf(res.body.accessToken));
        if (answered < logoutAll.sent) expect(revoked).toBe(true);
        racedBothWays[revoked ? 'revoked' : 'alive'] += 1;
        await expectWhole(res.body, revoked);
      }
      // After it: alive.
      expect(await isRevoked(sessionIdOf(later.accessToken))).toBe(false);
      // Its audit event counts exactly the sessions it revoked.
      const [event] = await a.database.db
        .selectFrom('audit_events')
        .select('data')
        .where('user_id', '=', user.id)
        .where('type', '=', 'user.logged_out')
        .execute();
      const revokedByIt = await a.database.db
        .selectFrom('sessions')
        .select('id')
        .where('user_id', '=', user.id)
        .where('revoked_reason', '=', 'logout_all')
        .execute();
      expect(event!.data).toEqual(expect.objectContaining({ allSessions: true, revokedSessions: revokedByIt.length }));
    }
    // Not a requirement of the service: a check that the rounds really raced (logins landed on both sides of it).
    expect(racedBothWays.revoked).toBeGreaterThan(0);
    expect(racedBothWays.alive).toBeGreaterThan(0);
  });
});
