import { openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';

/**
 * Migrates the real PostgreSQL once per run when DATABASE_URL is set; the PGlite suites
 * migrate their own in-memory databases.
 */
export default async function globalSetup(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const handle = await openDatabase({ databaseUrl: url });
  try {
    await migrateToLatest(handle.db);
  } finally {
    await handle.close();
  }
}
