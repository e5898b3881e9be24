import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema';
import { rolesOf } from '../users/user.repository';

export async function insertRefreshToken(
  db: Kysely<Database>,
  token: { sessionId: string; tokenHash: string; at: Date; expiresAt: Date },
): Promise<string> {
  const row = await db
    .insertInto('refresh_tokens')
    .values({ session_id: token.sessionId, token_hash: token.tokenHash, created_at: token.at, expires_at: token.expiresAt })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/**
 * Finds a refresh token by hash and locks its row until the transaction ends, so
 * concurrent refreshes with one token take turns: the first rotates, the rest see it rotated.
 */
export async function lockRefreshToken(db: Kysely<Database>, tokenHash: string) {
  return db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).forUpdate().executeTakeFirst();
}

/** The session and user behind a refresh token, as refresh needs them. */
export async function findSessionForRefresh(db: Kysely<Database>, sessionId: string) {
  return db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id as session_id',
      'sessions.expires_at as session_expires_at',
      'sessions.revoked_at',
      'users.id as user_id',
      'users.is_active',
      rolesOf('users.id').as('roles'),
    ])
    .where('sessions.id', '=', sessionId)
    .executeTakeFirstOrThrow();
}

/**
 * A successor's state, locked: a grace-window retry must not hand out a successor that a
 * concurrent refresh is rotating at this moment. (Lock order is parent, then successor;
 * rotation locks only one row, so the two cannot deadlock.)
 */
export async function lockRefreshTokenState(db: Kysely<Database>, id: string) {
  return db.selectFrom('refresh_tokens').select(['id', 'rotated_at', 'expires_at']).where('id', '=', id).forUpdate().executeTakeFirst();
}

/** Marks a token rotated and stores its sealed successor. Only a token not yet rotated is changed. */
export async function markRotated(db: Kysely<Database>, id: string, rotation: { at: Date; successorId: string; successorBox: string }): Promise<void> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ rotated_at: rotation.at, successor_id: rotation.successorId, successor_box: rotation.successorBox })
    .where('id', '=', id)
    .where('rotated_at', 'is', null)
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n) throw new Error('refresh token was rotated outside its row lock');
}

export async function touchSession(db: Kysely<Database>, sessionId: string, at: Date): Promise<void> {
  await db
    .updateTable('sessions')
    .set({ last_used_at: sql`greatest(last_used_at, ${at}::timestamptz)` })
    .where('id', '=', sessionId)
    .execute();
}
