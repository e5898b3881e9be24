import type { Express } from 'express';
import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser, sessionIdOf, sha256, liveRefreshTokenHashes } from '../helpers/factories';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';

// CONTRACT.md section 4, under contention, round after round so that each interleaving the
// scheduler can produce turns up: concurrent refreshes of one token never log the user out
// and never leave two live tokens; a logout racing a refresh always ends the session. On
// PostgreSQL two instances (each its own pool) really interleave their statements; the
// embedded database runs one at a time, in whatever order the requests reach it.

describe.each(DATABASE_KINDS)('refresh races on two instances (%s)', (kind) => {
  /** Rounds per race: enough for the interleavings to vary, few enough to stay fast (the embedded database has fewer to offer). */
  const ROUNDS = kind === 'postgres' ? 20 : 8;
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

  const refresh = (app: Express, refreshToken: string) => request(app).post('/auth/refresh').send({ refreshToken });
  const logout = (app: Express, refreshToken: string) => request(app).post('/auth/logout').send({ refreshToken });

  const liveTokens = (sessionId: string) => liveRefreshTokenHashes(a.database.db, sessionId);

  it(`when 6 refreshes of one token race across both instances, ${ROUNDS} rounds, then every one succeeds with one and the same successor, the one live token`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const user = await registerUser(a.app);
      const sessionId = sessionIdOf(user.accessToken);

      const responses = await Promise.all(Array.from({ length: 6 }, (_, i) => refresh((i + round) % 2 ? a.app : b.app, user.refreshToken)));

      expect(responses.map((res) => res.status)).toEqual(Array(6).fill(200));
      const successors = new Set(responses.map((res) => res.body.refreshToken as string));
      expect(successors.size).toBe(1);
      const [successor] = [...successors];
      expect(await liveTokens(sessionId)).toEqual([sha256(successor!)]);
    }
  });

  it(`when a logout and a refresh of one token race across both instances, ${ROUNDS} rounds, then the session is ended: the refresh failed, or what it got no longer works`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const user = await registerUser(a.app);
      const sessionId = sessionIdOf(user.accessToken);
      // Each request goes first on alternate rounds, from alternate instances.
      const [logoutApp, refreshApp] = round % 2 ? [a.app, b.app] : [b.app, a.app];
      const requests = [() => logout(logoutApp, user.refreshToken), () => refresh(refreshApp, user.refreshToken)];
      if (round % 4 >= 2) requests.reverse();
      const responses = await Promise.all(requests.map((send) => send()));
      const [loggedOut, refreshed] = round % 4 >= 2 ? [responses[1]!, responses[0]!] : [responses[0]!, responses[1]!];

      expect(loggedOut.status).toBe(204);
      const session = await a.database.db.selectFrom('sessions').select('revoked_at').where('id', '=', sessionId).executeTakeFirstOrThrow();
      expect({ round, revoked: session.revoked_at !== null }).toEqual({ round, revoked: true });
      if (refreshed.status === 200) {
        expectProblem(await refresh(a.app, refreshed.body.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
        expectProblem(await request(a.app).get('/users/me').set(bearer(refreshed.body.accessToken)), 401, 'SESSION_REVOKED');
      } else {
        expectProblem(refreshed, 401, 'REFRESH_TOKEN_INVALID');
      }
      expect((await liveTokens(sessionId)).length).toBeLessThanOrEqual(1);
    }
  });
  describe('the interleaving where the refresh wins, made certain', () => {
    it('when a logout comes with a token just rotated (within the grace, its successor unused), then it ends the session', async () => {
      const user = await registerUser(a.app);
      const refreshed = await refresh(b.app, user.refreshToken).expect(200);

      expect((await logout(a.app, user.refreshToken)).status).toBe(204);

      expectProblem(await refresh(a.app, refreshed.body.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      expectProblem(await request(b.app).get('/users/me').set(bearer(refreshed.body.accessToken)), 401, 'SESSION_REVOKED');
    });

    it('when a logout comes with a token spent for good (past the grace, or its successor used), then the session stays', async () => {
      const late = await registerUser(a.app);
      const lateSuccessor = await refresh(a.app, late.refreshToken).expect(200);
      a.clock.advance(a.config.refreshReuseGrace + 1);
      b.clock.set(a.clock.now());
      const used = await registerUser(a.app);
      const usedSuccessor = await refresh(a.app, used.refreshToken).expect(200);
      const usedNext = await refresh(b.app, usedSuccessor.body.refreshToken).expect(200);

      expect((await logout(a.app, late.refreshToken)).status).toBe(204);
      expect((await logout(b.app, used.refreshToken)).status).toBe(204);

      expect((await request(a.app).get('/users/me').set(bearer(lateSuccessor.body.accessToken))).status).toBe(200);
      expect((await request(b.app).get('/users/me').set(bearer(usedNext.body.accessToken))).status).toBe(200);
    });
  });
});
