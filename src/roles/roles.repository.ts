import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema';

/** The role that holds users:write; the service never lets the last active holder go. */
export const ADMIN_ROLE = 'admin';

/** The first role of every account. */
export const DEFAULT_ROLE = 'user';

/** A correlated subquery for a user's role names, sorted; `userId` is the outer column. */
export const rolesOf = (userId: string) =>
  sql<string[]>`array(select ur.role from user_roles ur where ur.user_id = ${sql.ref(userId)} order by ur.role)`;

/** The revision of the role→permission map (see permission-map.ts), as text. */
export const rolePermissionsRevision = () => sql<string>`(select revision::text from role_permissions_revision)`;

export async function listRoleNames(db: Kysely<Database>): Promise<string[]> {
  const rows = await db.selectFrom('roles').select('name').orderBy('name').execute();
  return rows.map((row) => row.name);
}

/** A user's role names, sorted. */
export async function userRoles(db: Kysely<Database>, userId: string): Promise<string[]> {
  const rows = await db.selectFrom('user_roles').select('role').where('user_id', '=', userId).orderBy('role').execute();
  return rows.map((row) => row.role);
}

/**
 * Makes a user's roles exactly `roles`; returns what was added and removed (sorted).
 * Call inside a transaction, after {@link lockAdminGrants} when an admin may be removed.
 */
export async function replaceUserRoles(
  db: Kysely<Database>,
  userId: string,
  roles: readonly string[],
  at: Date,
): Promise<{ added: string[]; removed: string[] }> {
  const current = (await db.selectFrom('user_roles').select('role').where('user_id', '=', userId).forUpdate().execute()).map((r) => r.role);
  const added = roles.filter((role) => !current.includes(role)).sort();
  const removed = current.filter((role) => !roles.includes(role)).sort();
  if (removed.length > 0) await db.deleteFrom('user_roles').where('user_id', '=', userId).where('role', 'in', removed).execute();
  if (added.length > 0) {
    await db
      .insertInto('user_roles')
      .values(added.map((role) => ({ user_id: userId, role, created_at: at })))
      .onConflict((oc) => oc.columns(['user_id', 'role']).doNothing())
      .execute();
  }
  return { added, removed };
}

/**
 * Locks every admin grant until the transaction ends. Taken before a change that may remove
 * an admin, it serialises two admins demoting or disabling each other at the same moment,
 * so they cannot both succeed and leave nobody in charge.
 */
export async function lockAdminGrants(db: Kysely<Database>): Promise<void> {
  await sql`select 1 from user_roles where role = ${ADMIN_ROLE} for update`.execute(db);
}

/** Admins whose accounts are active. */
export async function countActiveAdmins(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('user_roles')
    .innerJoin('users', 'users.id', 'user_roles.user_id')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('user_roles.role', '=', ADMIN_ROLE)
    .where('users.is_active', '=', true)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

export async function isAdmin(db: Kysely<Database>, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('user_roles')
    .select('role')
    .where('user_id', '=', userId)
    .where('role', '=', ADMIN_ROLE)
    .executeTakeFirst();
  return row !== undefined;
}
