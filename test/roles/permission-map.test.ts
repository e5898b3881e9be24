import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { sql } from 'kysely';
import { createHarness, type Harness } from '../helpers/harness';
import { DATABASE_KINDS } from '../helpers/databases';
import { bearer, expectProblem, registerUser } from '../helpers/factories';

/**
 * Each instance keeps the role→permission map in memory (roles/permission-map.ts); an edit to
 * roles or role_permissions, however made, must reach every instance on its next request.
 */
describe.each(DATABASE_KINDS)('role permissions cached per instance (%s)', (kind) => {
  let one: Harness;
  let other: Harness;
  beforeAll(async () => {
    one = await createHarness({ kind });
    other = await createHarness({ kind, database: one.database });
  });
  afterAll(async () => {
    await one.close();
  });

  /** A user holding only a new role of its own, with no permission yet. */
  async function userWithNewRole() {
    const role = `auditor-${randomBytes(4).toString('hex')}`;
    const user = await registerUser(one.app);
    await one.database.db.insertInto('roles').values({ name: role, description: 'test role' }).execute();
    await one.database.db.insertInto('user_roles').values({ user_id: user.id, role, created_at: new Date() }).execute();
    return { role, user };
  }

  const events = (h: Harness, accessToken: string) => request(h.app).get('/admin/events').set(bearer(accessToken));
  const permissionsOf = async (h: Harness, accessToken: string) =>
    (await request(h.app).get('/users/me').set(bearer(accessToken))).body.permissions as string[];

  it('when a permission is granted to a role, then both instances apply it on the next request, and again when it is taken away', async () => {
    const { role, user } = await userWithNewRole();
    // Both instances load (and keep) the map before the change.
    expectProblem(await events(one, user.accessToken), 403, 'FORBIDDEN');
    expectProblem(await events(other, user.accessToken), 403, 'FORBIDDEN');

    await one.database.db.insertInto('role_permissions').values({ role, permission: 'audit:read' }).execute();
    expect((await events(one, user.accessToken)).status).toBe(200);
    expect((await events(other, user.accessToken)).status).toBe(200);
    expect(await permissionsOf(other, user.accessToken)).toEqual(['audit:read', 'profile:read', 'profile:write']);

    await sql`delete from role_permissions where role = ${role}`.execute(one.database.db);
    expectProblem(await events(one, user.accessToken), 403, 'FORBIDDEN');
    expectProblem(await events(other, user.accessToken), 403, 'FORBIDDEN');
    expect(await permissionsOf(one, user.accessToken)).toEqual(['profile:read', 'profile:write']);
  });

  it('when a role is deleted, then its permissions are gone at once', async () => {
    const { role, user } = await userWithNewRole();
    await one.database.db.insertInto('role_permissions').values({ role, permission: 'audit:read' }).execute();
    expect((await events(one, user.accessToken)).status).toBe(200);

    await one.database.db.deleteFrom('user_roles').where('role', '=', role).execute();
    await one.database.db.deleteFrom('role_permissions').where('role', '=', role).execute();
    await one.database.db.deleteFrom('roles').where('name', '=', role).execute();
    expectProblem(await events(one, user.accessToken), 403, 'FORBIDDEN');
    expect(await permissionsOf(other, user.accessToken)).toEqual(['profile:read', 'profile:write']);
  });
});
