import { type Kysely, sql } from 'kysely';

/** prune finds sessions revoked long ago; without this index each of its batches scans the table. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS sessions_revoked_at_idx`.execute(db);
}
