import type { Kysely } from 'kysely';
import type { z } from 'zod';
import type { Database, UserRow } from '../db/schema';
import { rolesOf } from '../roles/roles.repository';
import type { userView } from './users.schemas';

/** The public shape of an account (CONTRACT.md section 3), as its schema (and the OpenAPI document) has it. */
export type UserView = z.infer<typeof userView>;

export function toUserView(
  row: Pick<UserRow, 'id' | 'email' | 'username' | 'created_at' | 'last_login_at' | 'email_verified_at'>,
  roles: string[],
): UserView {
  return {
    id: row.id,
    email: row.email,
    username: row.username,
    roles,
    createdAt: row.created_at.toISOString(),
    lastLoginAt: row.last_login_at ? row.last_login_at.toISOString() : null,
    emailVerified: row.email_verified_at !== null,
  };
}

/** Trimmed and lower-cased, as the database's CHECK on users.email demands. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

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
