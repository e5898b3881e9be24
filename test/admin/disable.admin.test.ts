import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, registerAdmin, registerUser, type RegisteredUser } from '../helpers/factories';

const WRONG_PASSWORD = 'certainly not the password';

const disable = (h: Harness, actor: RegisteredUser, userId: string) =>
  request(h.app).post(`/admin/users/${userId}/disable`).set(bearer(actor.accessToken));
const enable = (h: Harness, actor: RegisteredUser, userId: string) =>
  request(h.app).post(`/admin/users/${userId}/enable`).set(bearer(actor.accessToken));
const login = (h: Harness, email: string, password: string) => request(h.app).post('/auth/login').send({ email, password });
const refresh = (h: Harness, refreshToken: string) => request(h.app).post('/auth/refresh').send({ refreshToken });
const me = (h: Harness, accessToken: string) => request(h.app).get('/users/me').set(bearer(accessToken));

async function eventsOf(h: Harness, userId: string, type: string) {
  return h.database.db.selectFrom('audit_events').select(['type', 'data']).where('user_id', '=', userId).where('type', '=', type).execute();
}

async function sessionsOf(h: Harness, userId: string) {
  return h.database.db.selectFrom('sessions').select(['revoked_at', 'revoked_reason']).where('user_id', '=', userId).execute();
}

describe.each(DATABASE_KINDS)('POST /admin/users/:id/disable and /enable (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  describe('disable', () => {
    it('when an admin disables a user, then it answers 200 with the User and isActive false', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);

      const res = await disable(h, admin, user.id);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        id: user.id,
        email: user.email,
        username: null,
        roles: ['user'],
        createdAt: expect.any(String),
        lastLoginAt: null,
        emailVerified: false,
        isActive: false,
      });
    });

    it('when a user is disabled, then every session is revoked in the same change and the event counts them', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await login(h, user.email, user.password)).status).toBe(200);
      expect((await login(h, user.email, user.password)).status).toBe(200);

      expect((await disable(h, admin, user.id)).status).toBe(200);

      const sessions = await sessionsOf(h, user.id);
      expect(sessions).toHaveLength(3);
      for (const session of sessions) expect(session).toEqual({ revoked_at: h.clock.now(), revoked_reason: 'account_disabled' });
      expect(await eventsOf(h, user.id, 'user.disabled')).toEqual([{ type: 'user.disabled', data: { revokedSessions: 3, by: admin.id } }]);
    });

    it('when a user is disabled, then its refresh token answers 403 ACCOUNT_DISABLED', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await disable(h, admin, user.id)).status).toBe(200);

      expectProblem(await refresh(h, user.refreshToken), 403, 'ACCOUNT_DISABLED');
    });

    it('when a user is disabled, then its access token answers 403 ACCOUNT_DISABLED on /users/me', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await me(h, user.accessToken)).status).toBe(200);
      expect((await disable(h, admin, user.id)).status).toBe(200);

      expectProblem(await me(h, user.accessToken), 403, 'ACCOUNT_DISABLED');
    });

    it.each([
      { name: 'the right password', password: (user: RegisteredUser) => user.password, status: 403, code: 'ACCOUNT_DISABLED' },
      { name: 'a wrong password', password: () => WRONG_PASSWORD, status: 401, code: 'INVALID_CREDENTIALS' },
    ])('when a disabled user logs in with $name, then it answers $status $code', async ({ password, status, code }) => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await disable(h, admin, user.id)).status).toBe(200);

      const res = await login(h, user.email, password(user));

      expectProblem(res, status, code);
      expect(res.body).not.toHaveProperty('accessToken');
    });

    it('when a disabled user is disabled again, then it answers 200 and records no second event', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await disable(h, admin, user.id)).status).toBe(200);
      h.clock.advance(1);

      const again = await disable(h, admin, user.id);

      expect(again.status).toBe(200);
      expect(again.body.isActive).toBe(false);
      expect(await eventsOf(h, user.id, 'user.disabled')).toHaveLength(1);
    });

    it('when an admin disables itself while another admin exists, then it answers 200 and its own token stops working', async () => {
      const a = await registerAdmin(h.app, h.database.db);
      await registerAdmin(h.app, h.database.db);

      expect((await disable(h, a, a.id)).status).toBe(200);

      expectProblem(await request(h.app).get('/admin/users').set(bearer(a.accessToken)), 403, 'ACCOUNT_DISABLED');
    });
  });

  describe('enable', () => {
    it('when a disabled user is enabled, then it answers 200 with isActive true and records user.enabled', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await disable(h, admin, user.id)).status).toBe(200);

      const res = await enable(h, admin, user.id);

      expect(res.status).toBe(200);
      expect(res.body).toEqual(expect.objectContaining({ id: user.id, email: user.email, roles: ['user'], isActive: true }));
      expect(await eventsOf(h, user.id, 'user.enabled')).toEqual([{ type: 'user.enabled', data: { by: admin.id } }]);
    });

    it('when a disabled user is enabled, then login works again but the old sessions stay revoked', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);
      expect((await disable(h, admin, user.id)).status).toBe(200);
      expect((await enable(h, admin, user.id)).status).toBe(200);

      const res = await login(h, user.email, user.password);
      expect(res.status).toBe(200);
      expect((await me(h, res.body.accessToken)).status).toBe(200);

      expectProblem(await refresh(h, user.refreshToken), 401, 'REFRESH_TOKEN_INVALID');
      expectProblem(await me(h, user.accessToken), 401, 'SESSION_REVOKED');
    });

    it('when an active user is enabled, then it answers 200 and records no event', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const user = await registerUser(h.app);

      const res = await enable(h, admin, user.id);

      expect(res.status).toBe(200);
      expect(res.body.isActive).toBe(true);
      expect(await eventsOf(h, user.id, 'user.enabled')).toEqual([]);
    });
  });

  describe.each([
    ['disable', disable],
    ['enable', enable],
  ])('%s of no such user', (_name, action) => {
    it.each([
      ['an unknown uuid', () => randomUUID()],
      ['not a uuid', () => 'not-a-uuid'],
    ])('when the id is %s, then it answers 404 NOT_FOUND', async (_idName, id) => {
      const admin = await registerAdmin(h.app, h.database.db);
      expectProblem(await action(h, admin, id()), 404, 'NOT_FOUND');
    });
  });
});

// The shared PostgreSQL holds admins from other suites; only a database of one's own has a
// last admin (on PostgreSQL a scratch database, where the races are real). Each test starts with no admin at all.
describe.each(DATABASE_KINDS)('POST /admin/users/:id/disable and the last admin (%s, a database of its own)', (kind) => {
  let database: PrivateDatabase;
  let h: Harness;
  beforeAll(async () => {
    database = await openPrivateDatabase(kind, 'admins');
    h = await createHarness({ database: database.handle });
  });
  afterAll(async () => {
    await database.dispose();
  });
  beforeEach(async () => {
    await h.database.db.deleteFrom('user_roles').where('role', '=', 'admin').execute();
  });

  it('when the only active admin disables itself, then it answers 409 LAST_ADMIN and nothing changes', async () => {
    const admin = await registerAdmin(h.app, h.database.db);

    expectProblem(await disable(h, admin, admin.id), 409, 'LAST_ADMIN');

    expect((await me(h, admin.accessToken)).status).toBe(200);
    expect(await sessionsOf(h, admin.id)).toEqual([{ revoked_at: null, revoked_reason: null }]);
    expect(await eventsOf(h, admin.id, 'user.disabled')).toEqual([]);
  });

  it('when one of two admins is disabled, then disabling the other answers 409 LAST_ADMIN', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);
    expect((await disable(h, a, b.id)).status).toBe(200);

    expectProblem(await disable(h, a, a.id), 409, 'LAST_ADMIN');
    expect((await request(h.app).get('/admin/users').set(bearer(a.accessToken))).status).toBe(200);
  });

  it('when the only admin disables a plain user, then it answers 200', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);
    expect((await disable(h, admin, user.id)).status).toBe(200);
  });

  it('when the only two admins each disable themselves at the same moment, then exactly one succeeds and the other answers 409 LAST_ADMIN', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);

    const [byA, byB] = await Promise.all([disable(h, a, a.id), disable(h, b, b.id)]);

    const [winner, loser] = byA.status === 200 ? [byA, byB] : [byB, byA];
    expect(winner.status).toBe(200);
    expectProblem(loser, 409, 'LAST_ADMIN');
    const active = await h.database.db
      .selectFrom('users')
      .select('id')
      .where('id', 'in', [a.id, b.id])
      .where('is_active', '=', true)
      .execute();
    expect(active).toHaveLength(1);
  });
});
