import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { DATABASE_KINDS, openPrivateDatabase, type PrivateDatabase } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, registerAdmin, registerUser, type RegisteredUser } from '../helpers/factories';

const putRoles = (h: Harness, actor: RegisteredUser, userId: string, body: unknown) =>
  request(h.app)
    .put(`/admin/users/${userId}/roles`)
    .set(bearer(actor.accessToken))
    .send(body as object);

async function rolesOf(h: Harness, userId: string): Promise<string[]> {
  const rows = await h.database.db.selectFrom('user_roles').select('role').where('user_id', '=', userId).orderBy('role').execute();
  return rows.map((row) => row.role);
}

async function roleEvents(h: Harness, userId: string) {
  return h.database.db
    .selectFrom('audit_events')
    .select(['type', 'data'])
    .where('user_id', '=', userId)
    .where('type', '=', 'user.roles_changed')
    .orderBy('created_at')
    .execute();
}

async function activeAdmins(h: Harness): Promise<string[]> {
  const rows = await h.database.db
    .selectFrom('user_roles')
    .innerJoin('users', 'users.id', 'user_roles.user_id')
    .select('users.id')
    .where('user_roles.role', '=', 'admin')
    .where('users.is_active', '=', true)
    .execute();
  return rows.map((row) => row.id).sort();
}

describe.each(DATABASE_KINDS)('PUT /admin/users/:id/roles (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  it('when an admin sets [user, admin], then it answers 200 with the User and its new roles', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);

    const res = await putRoles(h, admin, user.id, { roles: ['user', 'admin'] });

    expect(res.status).toBe(200);
    expect(res.body).toEqual(
      expect.objectContaining({
        id: user.id,
        email: user.email,
        username: null,
        roles: ['admin', 'user'],
        createdAt: expect.any(String),
        lastLoginAt: null,
      }),
    );
    expect(await rolesOf(h, user.id)).toEqual(['admin', 'user']);
    const me = await request(h.app).get('/users/me').set(bearer(user.accessToken));
    expect(me.body.permissions).toEqual(expect.arrayContaining(['users:read', 'users:write', 'audit:read']));
  });

  it('when roles change, then a user.roles_changed event records what was added and removed, and by whom', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);

    expect((await putRoles(h, admin, user.id, { roles: ['user', 'admin'] })).status).toBe(200);
    h.clock.advance(1);
    expect((await putRoles(h, admin, user.id, { roles: ['admin'] })).status).toBe(200);

    expect(await roleEvents(h, user.id)).toEqual([
      { type: 'user.roles_changed', data: { added: ['admin'], removed: [], by: admin.id } },
      { type: 'user.roles_changed', data: { added: [], removed: ['user'], by: admin.id } },
    ]);
  });

  it('when the roles are set to what they already are, then it answers 200 and records no event', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);

    const res = await putRoles(h, admin, user.id, { roles: ['user'] });

    expect(res.status).toBe(200);
    expect(res.body.roles).toEqual(['user']);
    expect(await roleEvents(h, user.id)).toEqual([]);
  });

  it.each([
    [['superuser'], ['roles.0']],
    [['user', 'root'], ['roles.1']],
    [
      ['root', 'user', 'owner'],
      ['roles.0', 'roles.2'],
    ],
  ])('when the roles are %p, then it answers 422 VALIDATION_FAILED naming %p and changes nothing', async (roles, paths) => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);

    const res = await putRoles(h, admin, user.id, { roles });

    expectProblem(res, 422, 'VALIDATION_FAILED');
    expect(res.body.errors.map((error: { path: string }) => error.path)).toEqual(paths);
    expect(await rolesOf(h, user.id)).toEqual(['user']);
  });

  it.each([
    ['an empty array', { roles: [] }],
    ['a repeated role', { roles: ['user', 'user'] }],
    ['a string, not an array', { roles: 'admin' }],
    ['no roles field', {}],
    ['a number in the array', { roles: [1] }],
    ['an empty role name', { roles: [''] }],
    ['null', { roles: null }],
  ])('when the body holds %s, then it answers 422 VALIDATION_FAILED and changes nothing', async (_name, body) => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);

    const res = await putRoles(h, admin, user.id, body);

    expectProblem(res, 422, 'VALIDATION_FAILED');
    expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: expect.stringMatching(/^roles/) })]));
    expect(await rolesOf(h, user.id)).toEqual(['user']);
  });

  it.each([
    ['an unknown uuid', () => randomUUID()],
    ['not a uuid', () => 'not-a-uuid'],
    ['a uuid with an SQL tail', () => `${randomUUID()}' or '1'='1`],
  ])('when the user id is %s, then it answers 404 NOT_FOUND', async (_name, id) => {
    const admin = await registerAdmin(h.app, h.database.db);
    const res = await putRoles(h, admin, encodeURIComponent(id()), { roles: ['user'] });
    expectProblem(res, 404, 'NOT_FOUND');
  });

  it('when two admins exist, then one can demote the other', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);

    const res = await putRoles(h, a, b.id, { roles: ['user'] });

    expect(res.status).toBe(200);
    expect(res.body.roles).toEqual(['user']);
    expect(await rolesOf(h, b.id)).toEqual(['user']);
    expect(await roleEvents(h, b.id)).toEqual([{ type: 'user.roles_changed', data: { added: [], removed: ['admin'], by: a.id } }]);
  });
});

// The shared PostgreSQL holds admins from other suites, so "the last admin" only exists in a
// database of one's own (on PostgreSQL a scratch database, where the races are real). Each test starts with no admin at all, so the admins it
// makes are the only ones.
describe.each(DATABASE_KINDS)('PUT /admin/users/:id/roles and the last admin (%s, a database of its own)', (kind) => {
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

  it('when the only admin removes its own admin role, then it answers 409 LAST_ADMIN and stays admin', async () => {
    const admin = await registerAdmin(h.app, h.database.db);

    const res = await putRoles(h, admin, admin.id, { roles: ['user'] });

    expectProblem(res, 409, 'LAST_ADMIN');
    expect(await rolesOf(h, admin.id)).toEqual(['admin', 'user']);
    expect(await roleEvents(h, admin.id)).toEqual([]);
    expect((await request(h.app).get('/admin/users').set(bearer(admin.accessToken))).status).toBe(200);
  });

  it('when the only admin keeps admin but drops user, then it answers 200', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const res = await putRoles(h, admin, admin.id, { roles: ['admin'] });
    expect(res.status).toBe(200);
    expect(await activeAdmins(h)).toEqual([admin.id]);
  });

  it('when one of two admins is demoted, then demoting the remaining one answers 409 LAST_ADMIN', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);
    expect((await putRoles(h, a, b.id, { roles: ['user'] })).status).toBe(200);

    expectProblem(await putRoles(h, a, a.id, { roles: ['user'] }), 409, 'LAST_ADMIN');
    expect(await activeAdmins(h)).toEqual([a.id]);
  });

  it('when the other admin is disabled, then the remaining active admin cannot remove its own admin role', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);
    expect((await request(h.app).post(`/admin/users/${b.id}/disable`).set(bearer(a.accessToken))).status).toBe(200);

    // A disabled admin is in charge of nothing: it cannot sign in to use the role.
    expectProblem(await putRoles(h, a, a.id, { roles: ['user'] }), 409, 'LAST_ADMIN');
    expect(await activeAdmins(h)).toEqual([a.id]);
  });

  it('when the only two admins each remove their own admin role at the same moment, then exactly one succeeds and the other answers 409 LAST_ADMIN', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);

    // Each demotes itself, so neither request's authentication depends on the other's outcome:
    // both reach the role change, and only its lock and count decide.
    const [byA, byB] = await Promise.all([putRoles(h, a, a.id, { roles: ['user'] }), putRoles(h, b, b.id, { roles: ['user'] })]);

    const [winner, loser] = byA.status === 200 ? [byA, byB] : [byB, byA];
    expect(winner.status).toBe(200);
    expectProblem(loser, 409, 'LAST_ADMIN');
    expect(await activeAdmins(h)).toHaveLength(1);
    expect([...(await roleEvents(h, a.id)), ...(await roleEvents(h, b.id))]).toHaveLength(1);
  });

  it('when the only two admins demote each other at the same moment, then exactly one succeeds and one admin remains', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);

    const [byA, byB] = await Promise.all([putRoles(h, a, b.id, { roles: ['user'] }), putRoles(h, b, a.id, { roles: ['user'] })]);

    const [winner, loser] = byA.status === 200 ? [byA, byB] : [byB, byA];
    expect(winner.status).toBe(200);
    // The loser was refused either at the role change (409, the other was the last admin) or,
    // when the winner committed before the loser was authenticated, by RBAC (403, no longer admin).
    expect([409, 403]).toContain(loser.status);
    expectProblem(loser, loser.status, loser.status === 409 ? 'LAST_ADMIN' : 'FORBIDDEN');
    expect(await activeAdmins(h)).toHaveLength(1);
    expect([...(await roleEvents(h, a.id)), ...(await roleEvents(h, b.id))]).toHaveLength(1);
  });
});
