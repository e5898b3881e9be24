import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { PGLITE_TEMPLATES_ENV } from '../helpers/databases';

const ROOT = path.resolve(__dirname, '../..');

/**
 * Once per run, before any suite: migrates the real PostgreSQL when DATABASE_URL is set, and
 * makes the embedded database's two templates (just initialised, and migrated) that every
 * PGlite of the run is cloned from (see test/helpers/databases.ts). The templates' folder
 * reaches the workers through the environment; global teardown removes it.
 */
export default async function globalSetup(): Promise<void> {
  await Promise.all([migratePostgres(), makePgliteTemplates()]);
}

async function migratePostgres(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) return;
  const handle = await openDatabase({ databaseUrl: url });
  try {
    await migrateToLatest(handle.db);
  } finally {
    await handle.close();
  }
}

async function makePgliteTemplates(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pglite-templates-'));
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', path.join(__dirname, 'pglite-template.ts'), path.join(dir, 'empty.tar'), path.join(dir, 'migrated.tar')],
    { cwd: ROOT, timeout: 120_000 },
  );
  process.env[PGLITE_TEMPLATES_ENV] = dir;
}
