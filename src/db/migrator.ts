import { inspect } from 'node:util';
import { type MigrationResultSet, Migrator, type MigrationInfo } from 'kysely';
import { migrations } from '../../migrations';
import type { DB } from './database';

/** Kysely's Migrator over the migrations compiled into the service. */
export function createMigrator(db: DB): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
  });
}

/** Throws the migration error (with the failing migration's name) instead of returning it. */
function unwrap({ error, results }: MigrationResultSet): string[] {
  if (error) {
    const failed = results?.find((result) => result.status === 'Error');
    const where = failed ? ` in ${failed.migrationName}` : '';
    throw new Error(`Migration failed${where}: ${error instanceof Error ? error.message : inspect(error)}`, { cause: error });
  }
  return (results ?? []).map((result) => result.migrationName);
}

/** Applies every pending migration; returns the names applied. */
export async function migrateToLatest(db: DB): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateToLatest());
}

/** Undoes the newest applied migration; returns its name (none when nothing was applied). */
export async function migrateDown(db: DB): Promise<string[]> {
  return unwrap(await createMigrator(db).migrateDown());
}

export async function migrationStatus(db: DB): Promise<readonly MigrationInfo[]> {
  return createMigrator(db).getMigrations();
}
