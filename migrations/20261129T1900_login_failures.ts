import { type Kysely, sql } from 'kysely';

/**
 * Failed logins counted per email and client address (CONTRACT.md section 7), for emails with
 * and without an account alike, instead of per account on `users`: a count on the account let
 * anyone keep its owner locked out, and told which emails exist (423 for them, 401 forever
 * for the others).
 *
 * One row per (email, ip). The row whose ip is `*` counts one email's failures from every
 * address together, for ACCOUNT_MAX_FAILURES; no client address is ever `*`.
 * `failures` counts since `first_failed_at`; `locked_until` is set by the failure that
 * reached the limit. Rows are upserted atomically, so instances over one database agree.
 *
 * The per-account counters are dropped, not carried over: a count or lock of an account says
 * nothing of the address it came from, and a lock lasts LOCKOUT_DURATION at most anyway.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    // The email as sign-in compares it: trimmed, no upper-case ASCII (the code lower-cases it;
    // only ASCII is checked because JavaScript's and the database's case tables differ beyond
    // it, and a login with any email must count, never fail on the CHECK).
    sql`CREATE TABLE login_failures (
      email text NOT NULL CHECK (email = btrim(email) AND email !~ '[A-Z]' AND length(email) <= 254),
      ip text NOT NULL CHECK (length(ip) BETWEEN 1 AND 64),
      failures integer NOT NULL CHECK (failures >= 1),
      first_failed_at timestamptz NOT NULL,
      last_failed_at timestamptz NOT NULL,
      locked_until timestamptz,
      PRIMARY KEY (email, ip),
      CHECK (last_failed_at >= first_failed_at)
    )`,
    // prune deletes counters by the age of their last failure.
    sql`CREATE INDEX login_failures_last_failed_at_idx ON login_failures (last_failed_at)`,
    sql`ALTER TABLE users DROP COLUMN failed_login_count, DROP COLUMN locked_until`,
  ];
  for (const statement of statements) await statement.execute(db);
}

/** Back to per-account counters, every account starting unlocked at zero. */
export async function down(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`ALTER TABLE users
      ADD COLUMN failed_login_count integer NOT NULL DEFAULT 0 CHECK (failed_login_count >= 0),
      ADD COLUMN locked_until timestamptz`,
    sql`DROP TABLE IF EXISTS login_failures`,
  ];
  for (const statement of statements) await statement.execute(db);
}
