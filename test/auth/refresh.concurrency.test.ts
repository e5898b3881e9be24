import request from 'supertest';
import type { Express } from 'express';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { registerUser, sha256, sessionIdOf } from '../helpers/factories';

function refresh(app: Express, refreshToken: string) {
  return request(app).post('/auth/refresh').send({ refreshToken });
}

/** The hashes of a session's refresh tokens that have not been rotated: the live ones. */
async function liveTokenHashes(h: Harness, sessionId: string): Promise<string[]> {
  const rows = await h.database.db
    .selectFrom('refresh_tokens')
    .select('token_hash')
    .where('session_id', '=', sessionId)
    .where('rotated_at', 'is', null)
    .execute();
  return rows.map((row) => row.token_hash);
}

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
    // On PostgreSQL the second instance has its own pool, as a second server would; the
    // embedded database is one process's, so there the two apps share its handle.
    const second = await createHarness(kind === 'postgres' ? { kind, keys: h.keys } : { database: h.database, keys: h.keys });
    try {
      // Both instances read the same time, as two servers with synchronised clocks would.
      second.clock.set(h.clock.now());
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
