import { type Kysely, sql } from 'kysely';
import { preparedQuery } from '../db/prepared';
import type { Database } from '../db/schema';
import type { RequestContext } from '../http/request-context';
import { rolesOf } from '../roles/roles.repository';

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

/** Prepared: every refresh runs it (see db/prepared.ts). */
const tokenWithSession = preparedQuery(['tokenHash'], (db, { tokenHash }: { tokenHash: string }) =>
  db
    .selectFrom('refresh_tokens')
    .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'refresh_tokens.id',
      'refresh_tokens.session_id as sessionId',
      'refresh_tokens.rotated_at as rotatedAt',
      'refresh_tokens.expires_at as expiresAt',
      'sessions.revoked_at as sessionRevokedAt',
      'sessions.expires_at as sessionExpiresAt',
      'users.id as userId',
      'users.is_active as isActive',
      rolesOf('users.id').as('roles'),
    ])
    .where('refresh_tokens.token_hash', '=', tokenHash),
);

/**
 * A refresh token with its session, user and roles, read without a lock: what deciding
 * whether a rotation can take the one-statement path ({@link rotateLiveToken}) needs.
 */
export async function findTokenWithSession(db: Kysely<Database>, tokenHash: string) {
  const [row] = await tokenWithSession(db, { tokenHash });
  return row;
}

export interface Rotation {
  id: string;
  at: Date;
  successorId: string;
  successorHash: string;
  successorBox: string;
  successorExpiresAt: Date;
  /** For the `token.refreshed` audit event, written by the same statement. */
  userId: string;
  context: RequestContext;
  data: string;
}

/**
 * The whole rotation of a live token as one statement, so one round trip and atomic without
 * a transaction: mark the token rotated (sealing its successor), insert the successor, touch
 * the session, and record `token.refreshed` (the columns recordEvent writes). The update's
 * conditions are checked on the row as it is when the statement gets its lock: if a
 * concurrent refresh rotated it first, or the session ended, or the account was disabled,
 * nothing is written and it returns false, for the caller to take the locked path.
 */
const rotation = preparedQuery(
  ['id', 'at', 'successorId', 'successorHash', 'successorBox', 'successorExpiresAt', 'userId', 'ip', 'userAgent', 'requestId', 'data'],
  (db, r: Omit<Rotation, 'context'> & { ip: string | null; userAgent: string | null; requestId: string | null }) =>
    sql<{ rotated: number }>`
      with rotated as (
        update refresh_tokens
        set rotated_at = ${r.at}::timestamptz, successor_id = ${r.successorId}::uuid, successor_box = ${r.successorBox}::text
        where id = ${r.id}::uuid
          and rotated_at is null
          and expires_at > ${r.at}::timestamptz
          and exists (
            select 1 from sessions s join users u on u.id = s.user_id
            where s.id = refresh_tokens.session_id and s.revoked_at is null and s.expires_at > ${r.at}::timestamptz and u.is_active
          )
        returning session_id
      ), successor as (
        insert into refresh_tokens (id, session_id, token_hash, created_at, expires_at)
        select ${r.successorId}::uuid, session_id, ${r.successorHash}::text, ${r.at}::timestamptz, ${r.successorExpiresAt}::timestamptz
        from rotated
      ), touched as (
        update sessions set last_used_at = greatest(last_used_at, ${r.at}::timestamptz)
        where id in (select session_id from rotated)
      ), audited as (
        insert into audit_events (type, user_id, ip, user_agent, request_id, data, created_at)
        select 'token.refreshed', ${r.userId}::uuid, ${r.ip}::text, ${r.userAgent}::text, ${r.requestId}::text, ${r.data}::jsonb, ${r.at}::timestamptz
        from rotated
      )
      select count(*)::int as rotated from rotated`,
);

export async function rotateLiveToken(db: Kysely<Database>, { context, ...r }: Rotation): Promise<boolean> {
  const [row] = await rotation(db, { ...r, ip: context.ip, userAgent: context.userAgent, requestId: context.requestId });
  return row?.rotated === 1;
}
