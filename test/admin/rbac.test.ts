import request from 'supertest';
import { DATABASE_KINDS } from '../helpers/databases';
import { createHarness, type Harness } from '../helpers/harness';
import { bearer, expectProblem, makeAdmin, registerAdmin, registerUser, type RegisteredUser } from '../helpers/factories';

type Method = 'get' | 'put' | 'post';

interface AdminRoute {
  name: string;
  method: Method;
  /** The path, aimed at `target` where the route acts on one user. */
  path(target: RegisteredUser): string;
  body?: object;
  /** Puts the target where the route has something to change (enabling needs a disabled user). */
  arrange?: (h: Harness, target: RegisteredUser) => Promise<void>;
  /** What an admin gets from the route. */
  success: number;
}

async function disableThroughAnAdmin(h: Harness, target: RegisteredUser): Promise<void> {
  const admin = await registerAdmin(h.app, h.database.db);
  const res = await request(h.app).post(`/admin/users/${target.id}/disable`).set(bearer(admin.accessToken));
  expect(res.status).toBe(200);
}

/** Every admin route of CONTRACT.md section 3, with a request that an admin may make. */
const ADMIN_ROUTES: AdminRoute[] = [
  { name: 'GET /admin/users', method: 'get', path: () => '/admin/users', success: 200 },
  {
    name: 'PUT /admin/users/:id/roles',
    method: 'put',
    path: (t) => `/admin/users/${t.id}/roles`,
    body: { roles: ['user', 'admin'] },
    success: 200,
  },
  { name: 'POST /admin/users/:id/disable', method: 'post', path: (t) => `/admin/users/${t.id}/disable`, success: 200 },
  {
    name: 'POST /admin/users/:id/enable',
    method: 'post',
    path: (t) => `/admin/users/${t.id}/enable`,
    arrange: disableThroughAnAdmin,
    success: 200,
  },
  { name: 'GET /admin/events', method: 'get', path: () => '/admin/events', success: 200 },
];

function call(h: Harness, route: AdminRoute, target: RegisteredUser, headers: Record<string, string> = {}) {
  const req = request(h.app)[route.method](route.path(target)).set(headers);
  return route.body === undefined ? req : req.send(route.body);
}

/** A user's state that a write route would change: roles, whether active, and its audit events. */
async function stateOf(h: Harness, userId: string) {
  const user = await h.database.db.selectFrom('users').select('is_active').where('id', '=', userId).executeTakeFirstOrThrow();
  const roles = await h.database.db.selectFrom('user_roles').select('role').where('user_id', '=', userId).orderBy('role').execute();
  const events = await h.database.db.selectFrom('audit_events').select('type').where('user_id', '=', userId).orderBy('type').execute();
  return { isActive: user.is_active, roles: roles.map((r) => r.role), events: events.map((e) => e.type) };
}

describe.each(DATABASE_KINDS)('admin routes RBAC (%s)', (kind) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ kind });
  });
  afterAll(async () => {
    await h.close();
  });

  describe.each(ADMIN_ROUTES)('$name', (route) => {
    it('when a plain user calls it, then it answers 403 FORBIDDEN and changes nothing', async () => {
      const caller = await registerUser(h.app);
      const target = await registerUser(h.app);
      await route.arrange?.(h, target);
      const before = await stateOf(h, target.id);

      const res = await call(h, route, target, bearer(caller.accessToken));

      expectProblem(res, 403, 'FORBIDDEN');
      expect(await stateOf(h, target.id)).toEqual(before);
    });

    it('when no access token is sent, then it answers 401 TOKEN_MISSING and changes nothing', async () => {
      const target = await registerUser(h.app);
      await route.arrange?.(h, target);
      const before = await stateOf(h, target.id);

      const res = await call(h, route, target);

      expectProblem(res, 401, 'TOKEN_MISSING');
      expect(await stateOf(h, target.id)).toEqual(before);
    });

    it('when an admin calls it, then it succeeds', async () => {
      const admin = await registerAdmin(h.app, h.database.db);
      const target = await registerUser(h.app);
      await route.arrange?.(h, target);
      const before = await stateOf(h, target.id);

      const res = await call(h, route, target, bearer(admin.accessToken));

      expect(res.status).toBe(route.success);
      // A write route did its work; a read route left the user as it was.
      const after = await stateOf(h, target.id);
      if (route.method === 'get') expect(after).toEqual(before);
      else expect(after).not.toEqual(before);
    });
  });

  it('when admin A demotes admin B, then B’s next request with the same access token answers 403 FORBIDDEN', async () => {
    const a = await registerAdmin(h.app, h.database.db);
    const b = await registerAdmin(h.app, h.database.db);
    expect((await request(h.app).get('/admin/users?limit=1').set(bearer(b.accessToken))).status).toBe(200);

    const demoted = await request(h.app)
      .put(`/admin/users/${b.id}/roles`)
      .set(bearer(a.accessToken))
      .send({ roles: ['user'] });
    expect(demoted.status).toBe(200);

    expectProblem(await request(h.app).get('/admin/users?limit=1').set(bearer(b.accessToken)), 403, 'FORBIDDEN');
    expectProblem(await request(h.app).get('/admin/events?limit=1').set(bearer(b.accessToken)), 403, 'FORBIDDEN');
    // The token itself is still good: B keeps the rights of a plain user.
    const me = await request(h.app).get('/users/me').set(bearer(b.accessToken));
    expect(me.status).toBe(200);
    expect(me.body.roles).toEqual(['user']);
    expect(me.body.permissions).not.toContain('users:read');
  });

  it('when an admin promotes a plain user, then that user’s existing access token passes at once', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    const user = await registerUser(h.app);
    expectProblem(await request(h.app).get('/admin/users?limit=1').set(bearer(user.accessToken)), 403, 'FORBIDDEN');

    const promoted = await request(h.app)
      .put(`/admin/users/${user.id}/roles`)
      .set(bearer(admin.accessToken))
      .send({ roles: ['user', 'admin'] });
    expect(promoted.status).toBe(200);

    expect((await request(h.app).get('/admin/users?limit=1').set(bearer(user.accessToken))).status).toBe(200);
    expect((await request(h.app).get('/admin/events?limit=1').set(bearer(user.accessToken))).status).toBe(200);
  });

  it('when a role is granted straight in the database (as user:grant does), then the existing token passes on the next request', async () => {
    const user = await registerUser(h.app);
    expectProblem(await request(h.app).get('/admin/events?limit=1').set(bearer(user.accessToken)), 403, 'FORBIDDEN');

    await makeAdmin(h.database.db, user.id);

    expect((await request(h.app).get('/admin/events?limit=1').set(bearer(user.accessToken))).status).toBe(200);
  });

  it('when the admin’s access token is expired, then an admin route answers 401 TOKEN_EXPIRED, not the data', async () => {
    const admin = await registerAdmin(h.app, h.database.db);
    h.clock.advance(h.config.accessTokenTtl + 60);

    expectProblem(await request(h.app).get('/admin/users?limit=1').set(bearer(admin.accessToken)), 401, 'TOKEN_EXPIRED');
  });
});
