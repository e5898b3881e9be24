import type { Kysely } from 'kysely';
import { hashRefreshToken, newRefreshToken } from '../auth/refresh-token.crypto';
import type { Database, OneTimeTokenPurpose } from '../db/schema';

/*
 * Password-reset and email-verification tokens (CONTRACT.md section 9): 256 random bits,
 * stored only as their hex SHA-256, single use, and at most one live token per user and
 * purpose: a newer one supersedes the older for good.
 */

/**
 * A new token and what the database stores instead of it: made and hashed as refresh tokens
 * are (32 random bytes, base64url; a fast hash is enough with 256 bits of entropy).
 */
export const newOneTimeToken = newRefreshToken;
export const hashOneTimeToken = hashRefreshToken;

/** No account has this id (gen_random_uuid never makes the nil UUID): a lookup that matches nothing. */
export const NOBODY = '00000000-0000-0000-0000-000000000000';

/**
 * Supersedes the live tokens of one user and purpose. Called with {@link NOBODY} for an email
 * without an account, so that both cases send the database the same statements.
 */
export async function supersedeLiveTokens(trx: Kysely<Database>, userId: string, purpose: OneTimeTokenPurpose, at: Date): Promise<number> {
  const result = await trx
    .updateTable('one_time_tokens')
    .set({ superseded_at: at })
    .where('user_id', '=', userId)
    .where('purpose', '=', purpose)
    .where('used_at', 'is', null)
    .where('superseded_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function insertOneTimeToken(
  trx: Kysely<Database>,
  token: { userId: string; purpose: OneTimeTokenPurpose; tokenHash: string; at: Date; expiresAt: Date },
): Promise<void> {
  await trx
    .insertInto('one_time_tokens')
    .values({
      user_id: token.userId,
      purpose: token.purpose,
      token_hash: token.tokenHash,
      created_at: token.at,
      expires_at: token.expiresAt,
    })
    .execute();
}

/**
 * The token of `purpose` with this hash: one query of the same shape whatever the token
 * (unknown, used, superseded, expired or live). With `lock`, its row is locked for the rest
 * of the transaction: two requests presenting one token are decided one after the other, so
 * only one uses it.
 */
export async function findOneTimeToken(db: Kysely<Database>, tokenHash: string, purpose: OneTimeTokenPurpose, lock: boolean) {
  const query = db
    .selectFrom('one_time_tokens')
    .select(['id', 'user_id', 'expires_at', 'used_at', 'superseded_at'])
    .where('token_hash', '=', tokenHash)
    .where('purpose', '=', purpose);
  return (lock ? query.forUpdate() : query).executeTakeFirst();
}

export async function markTokenUsed(trx: Kysely<Database>, id: string, at: Date): Promise<void> {
  await trx.updateTable('one_time_tokens').set({ used_at: at }).where('id', '=', id).execute();
}

/**
 * The account of an email, its row locked: requests for the same account (two forgot requests
 * at once, say) are decided one after the other, so together they never exceed the hourly cap
 * nor leave two live tokens. Undefined for an email without an account.
 */
export async function lockUserByEmail(trx: Kysely<Database>, email: string) {
  return trx.selectFrom('users').select(['id', 'email', 'email_verified_at']).where('email', '=', email).forUpdate().executeTakeFirst();
}

export async function lockUserById(trx: Kysely<Database>, id: string) {
  return trx.selectFrom('users').select(['id', 'email', 'email_verified_at']).where('id', '=', id).forUpdate().executeTakeFirst();
}
