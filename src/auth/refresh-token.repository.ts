import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';

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

/**
 * A successor's state, locked: a grace-window retry must not hand out a successor that a
 * concurrent refresh is rotating at this moment. (Lock order is parent, then successor;
 * rotation locks only one row, so the two cannot deadlock.)
 */
export async function lockRefreshTokenState(db: Kysely<Database>, id: string) {
  return db.selectFrom('refresh_tokens').select(['id', 'rotated_at', 'expires_at']).where('id', '=', id).forUpdate().executeTakeFirst();
}

/** Marks a token rotated and stores its sealed successor. Only a token not yet rotated is changed. */
export async function markRotated(
  db: Kysely<Database>,
  id: string,
  rotation: { at: Date; successorId: string; successorBox: string },
): Promise<void> {
  const result = await db
    .updateTable('refresh_tokens')
    .set({ rotated_at: rotation.at, successor_id: rotation.successorId, successor_box: rotation.successorBox })
    .where('id', '=', id)
    .where('rotated_at', 'is', null)
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n) throw new Error('refresh token was rotated outside its row lock');
}
