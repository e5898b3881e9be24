import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema';
import type { RequestContext } from '../http/request-context';
import { preparedQuery } from '../db/prepared';
import { rolePermissionsRevision, rolesOf } from '../roles/roles.repository';

/** Every session query lives here: sign-in opens and refreshes sessions, users list and end them, admins revoke them. */

export type RevokeReason =
  'logout' | 'logout_all' | 'user_request' | 'refresh_token_reused' | 'password_changed' | 'password_reset' | 'account_disabled';

export async function insertSession(db: Kysely<Database>, session: { userId: string; context: RequestContext; at: Date; expiresAt: Date }) {
  return db
    .insertInto('sessions')
    .values({
      user_id: session.userId,
      created_at: session.at,
      last_used_at: session.at,
      expires_at: session.expiresAt,
      user_agent: session.context.userAgent,
      ip: session.context.ip,
    })
    .returning(['id', 'expires_at'])
    .executeTakeFirstOrThrow();
}

/** Prepared: every protected request runs it (see db/prepared.ts). */
const sessionWithUser = preparedQuery(['sessionId'], (db, { sessionId }: { sessionId: string }) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id as sessionId',
      'sessions.revoked_at as revokedAt',
      'sessions.expires_at as expiresAt',
      'users.id as userId',
      'users.is_active as isActive',
      'users.email',
      'users.username',
      'users.created_at as createdAt',
      'users.last_login_at as lastLoginAt',
      'users.email_verified_at as emailVerifiedAt',
      rolesOf('users.id').as('roles'),
      rolePermissionsRevision().as('rolesRevision'),
    ])
    .where('sessions.id', '=', sessionId),
);

/**
 * A session with its user's state and roles, in one query: what a protected request needs
 * to know about its caller, and what a refresh needs to know about the session it rotates.
 * Permissions come from the roles through roles/permission-map.ts, which `rolesRevision`
 * keeps current. Undefined when the session does not exist.
 */
export async function findSessionWithUser(db: Kysely<Database>, sessionId: string) {
  const [row] = await sessionWithUser(db, { sessionId });
  if (!row) return undefined;
  const { email, username, createdAt, lastLoginAt, emailVerifiedAt, ...session } = row;
  return { ...session, account: { email, username, createdAt, lastLoginAt, emailVerifiedAt } };
}

export type SessionWithUser = NonNullable<Awaited<ReturnType<typeof findSessionWithUser>>>;

/** Marks a session used now (never moving its time backwards). */
export async function touchSession(db: Kysely<Database>, sessionId: string, at: Date): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ last_used_at: sql`greatest(last_used_at, ${at}::timestamptz)` })
    .where('id', '=', sessionId)
    .execute();
}

/** Revokes one live session; returns whether it was live. */
export async function revokeSession(db: Kysely<Database>, sessionId: string, reason: RevokeReason, at: Date): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Revokes one live, unexpired session of `userId`; returns whether there was one. */
export async function revokeOwnSession(
  db: Kysely<Database>,
  userId: string,
  sessionId: string,
  reason: RevokeReason,
  at: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('id', '=', sessionId)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Revokes every live session of a user, but `exceptSessionId`; returns how many. */
export async function revokeUserSessions(
  db: Kysely<Database>,
  userId: string,
  reason: RevokeReason,
  at: Date,
  exceptSessionId?: string,
): Promise<number> {
  let query = db
    .updateTable('sessions')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (exceptSessionId) query = query.where('id', '!=', exceptSessionId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** A user's sessions that can still be refreshed, newest first. */
export async function listLiveSessions(db: Kysely<Database>, userId: string, now: Date) {
  return db
    .selectFrom('sessions')
    .select(['id', 'created_at', 'last_used_at', 'user_agent', 'ip'])
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .execute();
}
