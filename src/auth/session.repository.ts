import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import type { RequestContext } from '../audit/audit.repository';

export type RevokeReason = 'logout' | 'logout_all' | 'user_request' | 'refresh_token_reused' | 'password_changed' | 'account_disabled';

export async function insertSession(
  db: Kysely<Database>,
  session: { userId: string; context: RequestContext; at: Date; expiresAt: Date },
) {
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
