import request from 'supertest';
import { bearer, expectProblem, registerUser } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { holdTransaction, lockWaits } from '../helpers/postgres';
import { waitUntil } from '../helpers/wait';

/*
 * A refresh whose one-statement rotation (rotateIfLive) read the session as live, racing the
 * revocation of a password reset: the statement has rotated the token when it meets the
 * revocation's lock on the session row, and goes on once the reset commits. Whatever it
 * answers, it must not leave a live session: its successor belongs to the revoked session.
 * PostgreSQL only: the embedded database runs one statement at a time.
 */
const onPostgres = process.env.DATABASE_URL ? describe : describe.skip;

onPostgres('a refresh racing the revocation of a reset (postgres)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind: 'postgres' });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when the rotation statement started before the revocation committed, then no session is left live and its successor is refused', async () => {
    const user = await registerUser(h.app);
    const url = process.env.DATABASE_URL!;
    // The reset's revokeUserSessions, in a transaction that has not committed yet.
    const reset = await holdTransaction(url, [
      `UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_reset' WHERE user_id = $1 AND revoked_at IS NULL`,
      [user.id],
    ]);
    let refreshed: request.Response | undefined;
    try {
      const refresh = request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken });
      const answered = refresh.then((res) => (refreshed = res));
      await waitUntil(
        async () => (await lockWaits(url)).some((query) => query.includes('with rotated as')),
        'the rotation waits on the session row',
      );
      await reset.commit();
      await answered;
    } finally {
      await reset.release();
    }

    const live = await h.database.db
      .selectFrom('sessions')
      .select('id')
      .where('user_id', '=', user.id)
      .where('revoked_at', 'is', null)
      .execute();
    expect(live).toEqual([]);
    // The rotation went through on the snapshot it started with: its tokens are for a dead session.
    expect(refreshed!.status).toBe(200);
    expectProblem(
      await request(h.app).post('/auth/refresh').send({ refreshToken: refreshed!.body.refreshToken }),
      401,
      'REFRESH_TOKEN_INVALID',
    );
    expectProblem(await request(h.app).get('/users/me').set(bearer(refreshed!.body.accessToken)), 401, 'SESSION_REVOKED');
  });
});
