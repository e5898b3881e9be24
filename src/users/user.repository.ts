import { type Kysely, sql } from 'kysely';
import type { z } from 'zod';
import type { Database, UserRow } from '../db/schema';
import type { userView } from './users.schemas';

/** The public shape of an account (CONTRACT.md section 3), as its schema (and the OpenAPI document) has it. */
export type UserView = z.infer<typeof userView>;

export function toUserView(row: Pick<UserRow, 'id' | 'email' | 'username' | 'created_at' | 'last_login_at'>, roles: string[]): UserView {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    roles,
    createdAt: row.created_at.toISOString(),
    lastLoginAt: row.last_login_at ? row.last_login_at.toISOString() : null,
  };
}

/** A correlated subquery for a user's role names, sorted; `userId` is the outer column. */
export const rolesOf = (userId: string) =>
  sql<string[]>`array(select ur.role from user_roles ur where ur.user_id = ${sql.ref(userId)} order by ur.role)`;

/** The same for the user's effective permissions, through their roles. */
export const permissionsOf = (userId: string) =>
  sql<string[]>`array(select distinct rp.permission from user_roles ur join role_permissions rp on rp.role = ur.role where ur.user_id = ${sql.ref(userId)} order by rp.permission)`;

export async function findUserByEmail(db: Kysely<Database>, email: string) {
  return db.selectFrom('users').selectAll().select(rolesOf('users.id').as('roles')).where('email', '=', email).executeTakeFirst();
}

export async function findUserById(db: Kysely<Database>, id: string) {
  return db.selectFrom('users').selectAll().select(rolesOf('users.id').as('roles')).where('id', '=', id).executeTakeFirst();
}

export async function insertUser(
  db: Kysely<Database>,
  user: { email: string; username: string | null; passwordHash: string; roles: string[]; at: Date },
): Promise<UserRow> {
  const row = await db
    .insertInto('users')
    .values({ email: user.email, username: user.username, password_hash: user.passwordHash, created_at: user.at, updated_at: user.at })
    .returningAll()
    .executeTakeFirstOrThrow();
  await db
    .insertInto('user_roles')
    .values(user.roles.map((role) => ({ user_id: row.id, role, created_at: user.at })))
    .execute();
  return row;
}

/**
 * Everything a protected request needs about its caller, in one query: the session's
 * state, the user's state, roles and permissions. Undefined when the session does not exist.
 */
export async function findSessionAccess(db: Kysely<Database>, sessionId: string) {
  return db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'users.id',
      'users.email',
      'users.username',
      'users.is_active',
      'users.created_at',
      'users.last_login_at',
      'sessions.revoked_at',
      'sessions.expires_at',
      rolesOf('users.id').as('roles'),
      permissionsOf('users.id').as('permissions'),
    ])
    .where('sessions.id', '=', sessionId)
    .executeTakeFirst();
}

export interface LoginFailure {
  failedLoginCount: number;
  lockedUntil: Date | null;
}

/**
 * Counts one failed login atomically and locks the account when the count reaches
 * `maxFailures`. Returns undefined when the account is already locked: then nothing is
 * counted, so parallel guesses on many instances lock it exactly once.
 * A lock that has run out starts the count again.
 */
export async function recordLoginFailure(
  db: Kysely<Database>,
  userId: string,
  options: { now: Date; maxFailures: number; lockUntil: Date },
): Promise<LoginFailure | undefined> {
  const nextCount = sql<number>`(case when locked_until is not null then 1 else failed_login_count + 1 end)`;
  const row = await db
    .updateTable('users')
    .set({
      failed_login_count: nextCount,
      locked_until: sql<Date | null>`(case when ${nextCount} >= ${options.maxFailures} then ${options.lockUntil}::timestamptz else null end)`,
    })
    .where('id', '=', userId)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', options.now)]))
    .returning(['failed_login_count', 'locked_until'])
    .executeTakeFirst();
  return row && { failedLoginCount: row.failed_login_count, lockedUntil: row.locked_until };
}

export async function recordLoginSuccess(db: Kysely<Database>, userId: string, at: Date) {
  return db
    .updateTable('users')
    .set({ failed_login_count: 0, locked_until: null, last_login_at: at })
    .where('id', '=', userId)
    .returningAll()
    .executeTakeFirstOrThrow();
}
