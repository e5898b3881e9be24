import { isIP } from 'node:net';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema';

/*
 * Sign-in's memory of failed logins (CONTRACT.md section 7): one counter per email and client
 * address, for emails with and without an account alike, and one per email for every address
 * together. Counted in the database, so that every instance agrees.
 */

/** The `ip` of the counter of one email's failures from every address together; no client address is ever `*`. */
export const EVERY_ADDRESS = '*';

/** The address a request is counted under when it has none that is an IP address (a misconfigured proxy's). */
const UNKNOWN_ADDRESS = 'unknown';

/**
 * The key of a client address. Anything but an IP address (which Express only gives behind a
 * proxy that sets X-Forwarded-For wrongly) is counted as one `unknown` address, so that it can
 * never be {@link EVERY_ADDRESS} nor break the table's CHECK.
 */
export function addressKey(ip: string | null): string {
  return ip !== null && ip.length <= 64 && isIP(ip) !== 0 ? ip : UNKNOWN_ADDRESS;
}

/** One counter: an email (trimmed, lower-cased) and an address key or {@link EVERY_ADDRESS}. */
export interface CounterKey {
  email: string;
  ip: string;
}

/** A counter just after a failure was counted. */
export interface FailureCount {
  failures: number;
  /** Set when this very failure reached the limit. */
  lockedUntil: Date | null;
}

export interface CountOptions {
  now: Date;
  maxFailures: number;
  lockUntil: Date;
  /**
   * Failures before this moment are forgotten (now − LOCKOUT_DURATION: what prune deletes),
   * judged by the counter's last failure (`consecutive`: a count of failures in a row, none
   * more than LOCKOUT_DURATION after the previous) or by its first (`window`: a count of
   * failures within LOCKOUT_DURATION of the first).
   */
  forgetBefore: Date;
  measure: 'consecutive' | 'window';
}

/**
 * Counts one failed login in a counter and locks it when the count reaches `maxFailures`.
 * One statement: an upsert whose row lock orders concurrent failures, from any number of
 * instances over the database, so a burst of failures locks exactly once. A count starts
 * again after a lock that has ended, or when its failures are older than `forgetBefore`.
 *
 * Returns undefined when the counter is locked now: then nothing is counted (a parallel
 * failure locked it first).
 */
export async function countFailure(db: Kysely<Database>, key: CounterKey, options: CountOptions): Promise<FailureCount | undefined> {
  const { now, maxFailures, lockUntil, forgetBefore } = options;
  const since = sql.ref(options.measure === 'consecutive' ? 'login_failures.last_failed_at' : 'login_failures.first_failed_at');
  // Inside the update the row is unlocked or its lock has ended (the WHERE below): a set lock is an ended one.
  const startsAgain = sql<boolean>`(login_failures.locked_until IS NOT NULL OR ${since} < ${forgetBefore}::timestamptz)`;
  const failures = sql<number>`(CASE WHEN ${startsAgain} THEN 1 ELSE login_failures.failures + 1 END)`;
  const row = await db
    .insertInto('login_failures')
    .values({
      email: key.email,
      ip: key.ip,
      failures: 1,
      first_failed_at: now,
      last_failed_at: now,
      locked_until: maxFailures <= 1 ? lockUntil : null,
    })
    .onConflict((conflict) =>
      conflict
        .columns(['email', 'ip'])
        .doUpdateSet({
          failures,
          first_failed_at: sql<Date>`(CASE WHEN ${startsAgain} THEN ${now}::timestamptz ELSE login_failures.first_failed_at END)`,
          // Instances' clocks differ a little: a counter's last failure never moves back.
          last_failed_at: sql<Date>`greatest(login_failures.last_failed_at, ${now}::timestamptz)`,
          locked_until: sql<Date | null>`(CASE WHEN ${failures} >= ${maxFailures} THEN ${lockUntil}::timestamptz END)`,
        })
        .where((eb) => eb.or([eb('login_failures.locked_until', 'is', null), eb('login_failures.locked_until', '<=', now)])),
    )
    .returning(['failures', 'locked_until'])
    .executeTakeFirst();
  return row && { failures: row.failures, lockedUntil: row.locked_until };
}

/** The end of the latest lock on `email` that holds at `now` in any of the counters at `ips`; null when none does. */
export async function findLock(db: Kysely<Database>, email: string, ips: readonly string[], now: Date): Promise<Date | null> {
  const row = await db
    .selectFrom('login_failures')
    .select((eb) => eb.fn.max('locked_until').as('locked_until'))
    .where('email', '=', email)
    .where('ip', 'in', ips)
    .where('locked_until', '>', now)
    .executeTakeFirst();
  return row?.locked_until ?? null;
}

/**
 * A successful login (or password check) of `email` from `ip`: that counter starts again, and
 * the user's latest login is now. A counter a parallel failure has just locked stays locked.
 * The counter of every address together is left alone: one success does not undo
 * distributed guessing. Only while the password hash is still `checkedHash`, the one the
 * password was checked against; undefined otherwise (a reset or change committed during the
 * bcrypt comparison): the password given is no longer the account's, and no session may be
 * opened with it.
 */
export async function recordLoginSuccess(
  db: Kysely<Database>,
  success: { userId: string; email: string; ip: string; at: Date; checkedHash: string },
) {
  await clearFailures(db, { email: success.email, ip: success.ip }, success.at);
  return db
    .updateTable('users')
    .set({ last_login_at: success.at })
    .where('id', '=', success.userId)
    .where('password_hash', '=', success.checkedHash)
    .returningAll()
    .executeTakeFirst();
}

/** Deletes a counter unless it is locked at `now`. */
export async function clearFailures(db: Kysely<Database>, key: CounterKey, now: Date): Promise<void> {
  await db
    .deleteFrom('login_failures')
    .where('email', '=', key.email)
    .where('ip', '=', key.ip)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
    .execute();
}

/**
 * Deletes every counter of an email, from every address and locked or not: after a password
 * reset the owner has proved control of the email, and the guesses counted against the old
 * password say nothing about the new one.
 */
export async function forgetFailures(db: Kysely<Database>, email: string): Promise<number> {
  const result = await db.deleteFrom('login_failures').where('email', '=', email).executeTakeFirst();
  return Number(result.numDeletedRows);
}
