import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema';

/** Sign-in's memory of failed logins: how many in a row, and until when the account is locked. */
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

/** The lock on an account now, if any (a parallel request may have just set it). */
export async function findLock(db: Kysely<Database>, userId: string): Promise<Date | null> {
  const row = await db.selectFrom('users').select('locked_until').where('id', '=', userId).executeTakeFirst();
  return row?.locked_until ?? null;
}

/** A successful login: the count starts again, and the login is the user's latest. */
export async function recordLoginSuccess(db: Kysely<Database>, userId: string, at: Date) {
  return db
    .updateTable('users')
    .set({ failed_login_count: 0, locked_until: null, last_login_at: at })
    .where('id', '=', userId)
    .returningAll()
    .executeTakeFirstOrThrow();
}
