import request from 'supertest';
import type { Express } from 'express';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, createSecondInstance, type Harness } from '../helpers/harness';
import { registerUser, sha256, sessionIdOf, liveRefreshTokenHashes } from '../helpers/factories';

function refresh(app: Express, refreshToken: string) {
  return request(app).post('/auth/refresh').send({ refreshToken });
}

const liveTokenHashes = (h: Harness, sessionId: string) => liveRefreshTokenHashes(h.database.db, sessionId);

/**
 * CONTRACT.md section 4: concurrent refreshes with one token never log the user out and
 * never leave two live tokens. On PostgreSQL the requests really race on separate pool
 * connections; on PGlite they queue on its single connection.
 */
describe.each(DATABASE_KINDS)('POST /auth/refresh under concurrency (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when 10 refreshes with one token arrive at once, then all succeed with one and the same successor', async () => {
    const user = await registerUser(h.app);
    const sessionId = sessionIdOf(user.accessToken);

    const responses = await Promise.all(Array.from({ length: 10 }, () => refresh(h.app, user.refreshToken)));

    expect(responses.map((res) => res.status)).toEqual(Array(10).fill(200));
    const successors = new Set(responses.map((res) => res.body.refreshToken as string));
    expect(successors.size).toBe(1);
    const [successor] = [...successors];
    expect(successor).not.toBe(user.refreshToken);
    expect(await liveTokenHashes(h, sessionId)).toEqual([sha256(successor!)]);
    expect((await refresh(h.app, successor!)).status).toBe(200);
  });

  it('when two app instances get 5 refreshes each at once, then all succeed with one and the same successor', async () => {
    // Both instances read the same time, as two servers with synchronised clocks would.
    const second = await createSecondInstance(h, kind);
    try {
      const user = await registerUser(h.app);
      const sessionId = sessionIdOf(user.accessToken);

      const responses = await Promise.all(
        Array.from({ length: 10 }, (_, i) => refresh(i % 2 === 0 ? h.app : second.app, user.refreshToken)),
      );

      expect(responses.map((res) => res.status)).toEqual(Array(10).fill(200));
      const successors = new Set(responses.map((res) => res.body.refreshToken as string));
      expect(successors.size).toBe(1);
      const [successor] = [...successors];
      expect(await liveTokenHashes(h, sessionId)).toEqual([sha256(successor!)]);
    } finally {
      await second.close();
    }
  });

  it('when concurrent refreshes reuse a token past its grace, then every one is refused and the session is revoked', async () => {
    const user = await registerUser(h.app);
    const sessionId = sessionIdOf(user.accessToken);
    await refresh(h.app, user.refreshToken).expect(200);
    h.clock.advance(h.config.refreshReuseGrace + 1);

    const responses = await Promise.all(Array.from({ length: 5 }, () => refresh(h.app, user.refreshToken)));

    expect(responses.map((res) => res.status)).toEqual(Array(5).fill(401));
    expect(responses.map((res) => res.body.code)).toContain('REFRESH_TOKEN_REUSED');
    const session = await h.database.db.selectFrom('sessions').select('revoked_at').where('id', '=', sessionId).executeTakeFirstOrThrow();
    expect(session.revoked_at).not.toBeNull();
  });
});
