import { type Kysely, sql } from 'kysely';

/**
 * Account recovery and email verification (CONTRACT.md section 9).
 *
 * - `users.email_verified_at`: when the owner proved the address; `emailVerified` is "not null".
 * - `one_time_tokens`: password-reset and email-verification tokens, stored only as the hex
 *   SHA-256 of the token. Single use (`used_at`); a newer token of the same user and purpose
 *   supersedes the older ones (`superseded_at`), which never come back.
 * - `mail_outbox`: every message, written in the transaction of its token and delivered after
 *   commit by the dispatcher (at least once; `FOR UPDATE SKIP LOCKED` makes it once per
 *   message across instances). `link` is the only place a usable token is kept, and it is
 *   cleared once the message is sent or has failed for good. Rows stay afterwards (without
 *   the link) so the per-email hourly cap can count them; `prune` removes old ones.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`ALTER TABLE users ADD COLUMN email_verified_at timestamptz`,
    sql`CREATE TABLE one_time_tokens (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      purpose text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
      token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      superseded_at timestamptz,
      CHECK (expires_at > created_at)
    )`,
    // The live token of a user and purpose: the one a newer request supersedes.
    sql`CREATE INDEX one_time_tokens_live_idx ON one_time_tokens (user_id, purpose)
      WHERE used_at IS NULL AND superseded_at IS NULL`,
    sql`CREATE INDEX one_time_tokens_expires_at_idx ON one_time_tokens (expires_at)`,
    sql`CREATE TABLE mail_outbox (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      kind text NOT NULL CHECK (kind IN ('password_reset', 'email_verification')),
      recipient text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
      user_id uuid REFERENCES users (id) ON DELETE SET NULL,
      link text,
      expires_at timestamptz NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      sent_at timestamptz,
      failed_at timestamptz,
      last_error text,
      CHECK (sent_at IS NULL OR failed_at IS NULL)
    )`,
    // The dispatcher's queue: unsent messages by when they are due.
    sql`CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at)
      WHERE sent_at IS NULL AND failed_at IS NULL`,
    // The hourly cap: messages of one kind to one address, newest first.
    sql`CREATE INDEX mail_outbox_recipient_idx ON mail_outbox (recipient, kind, created_at)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const statements = [sql`DROP TABLE mail_outbox`, sql`DROP TABLE one_time_tokens`, sql`ALTER TABLE users DROP COLUMN email_verified_at`];
  for (const statement of statements) await statement.execute(db);
}
