import request from 'supertest';
import { createApp } from '../../src/app';
import { createRecoveryQueue } from '../../src/recovery/recovery.queue';
import { createLogger } from '../../src/logger';
import { createPasswordHasher, type PasswordHasher } from '../../src/passwords/password-hasher';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser } from '../helpers/factories';
import { testConfig } from '../helpers/harness';
import { createTestClock } from '../helpers/clock';
import { openTestDatabase } from '../helpers/databases';
import { testKeyStore } from '../helpers/keys';
import type { DatabaseHandle } from '../../src/db/database';
import { tokenFromLatestMessage } from './outbox';

/*
 * A password check that passed against the old hash must not open a session, or set a
 * password, once a reset has committed meanwhile: whoever knew the old password (the reason
 * the owner resets) would keep a session, or undo the reset. The bcrypt comparison is the
 * window; here a hasher holds it open while the reset runs.
 */

const NEW_PASSWORD = 'a brand new passphrase 2026';

/** A hasher whose next `verify` waits, after comparing, until the test lets it go on. */
function gatedHasher(base: PasswordHasher) {
  let gate: { reached: () => void; release: Promise<void> } | undefined;
  const hasher: PasswordHasher = {
    hash: (password) => base.hash(password),
    verifyNobody: (password) => base.verifyNobody(password),
    close: () => base.close(),
    async verify(password, hash) {
      const ok = await base.verify(password, hash);
      const held = gate;
      gate = undefined;
      if (held) {
        held.reached();
        await held.release;
      }
      return ok;
    },
  };
  /** Holds the next verify; resolves `reached` when it has compared, and lets it go on with `release()`. */
  function holdNextVerify() {
    let release!: () => void;
    let reached!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    gate = { reached, release: new Promise<void>((resolve) => (release = resolve)) };
    return { reached: reachedPromise, release };
  }
  return { hasher, holdNextVerify };
}

describe.each(DATABASE_KINDS)('a password reset racing a credential check (%s)', (kind) => {
  let database: DatabaseHandle;
  let gated: ReturnType<typeof gatedHasher>;
  let app: ReturnType<typeof createApp>;
  const recoveryQueue = createRecoveryQueue({ logger: createLogger('silent') });

  beforeAll(async () => {
    database = await openTestDatabase(kind);
    gated = gatedHasher(createPasswordHasher(4));
    app = createApp({
      config: testConfig(),
      db: database.db,
      keys: testKeyStore().store,
      logger: createLogger('silent'),
      clock: createTestClock().now,
      hasher: gated.hasher,
      recoveryQueue,
    });
  });
  afterAll(async () => {
    await database.close();
  });

  async function resetWithMessage(email: string) {
    expect((await request(app).post('/auth/password/forgot').send({ email })).status).toBe(202);
    await recoveryQueue.settled();
    const token = await tokenFromLatestMessage(database.db, email, 'password_reset');
    expect((await request(app).post('/auth/password/reset').send({ token, newPassword: NEW_PASSWORD })).status).toBe(204);
  }

  const liveSessions = (userId: string) =>
    database.db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute();

  it('when a login with the old password checked it before a reset committed, then it opens no session', async () => {
    const user = await registerUser(app);
    const held = gated.holdNextVerify();
    const login = request(app)
      .post('/auth/login')
      .send({ email: user.email, password: user.password })
      .then((res) => res);
    await held.reached;

    await resetWithMessage(user.email);
    held.release();

    expectProblem(await login, 401, 'INVALID_CREDENTIALS');
    expect(await liveSessions(user.id)).toEqual([]);
    expect((await request(app).post('/auth/login').send({ email: user.email, password: NEW_PASSWORD })).status).toBe(200);
  });

  it('when a password change checked the old password before a reset committed, then it does not undo the reset', async () => {
    const user = await registerUser(app);
    const held = gated.holdNextVerify();
    const change = request(app)
      .post('/users/me/password')
      .set(bearer(user.accessToken))
      .send({ currentPassword: user.password, newPassword: 'the thief chose this one 99' })
      .then((res) => res);
    await held.reached;

    await resetWithMessage(user.email);
    held.release();

    expectProblem(await change, 401, 'INVALID_CREDENTIALS');
    expectProblem(
      await request(app).post('/auth/login').send({ email: user.email, password: 'the thief chose this one 99' }),
      401,
      'INVALID_CREDENTIALS',
    );
    expect((await request(app).post('/auth/login').send({ email: user.email, password: NEW_PASSWORD })).status).toBe(200);
  });
});
