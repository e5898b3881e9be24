import { type Kysely, sql } from 'kysely';

/**
 * `refresh_tokens.successor_id` references the same table with ON DELETE SET NULL, so every
 * token prune deletes makes PostgreSQL look for the rows pointing at it. Without an index that
 * is a scan of the whole table per deleted row: a batch of 1,000 took 7.5–15 s on 100,000
 * rows, and longer as the table grows (README, "Running more than one"); with it, 25 ms.
 * Partial: only rotated tokens have a successor.
 *
 * On a large live table, create it first by hand with CREATE INDEX CONCURRENTLY under the same
 * name; IF NOT EXISTS then makes this a no-op.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX IF NOT EXISTS refresh_tokens_successor_id_idx ON refresh_tokens (successor_id)
    WHERE successor_id IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS refresh_tokens_successor_id_idx`.execute(db);
}
