import { sql } from 'kysely';
import { type DatabaseHandle, openDatabase, type DB } from '../../src/db/database';
import { migrateDown, migrateToLatest, migrationStatus } from '../../src/db/migrator';
import { migrations } from '../../migrations';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/databases';

const APP_TABLES = ['audit_events', 'refresh_tokens', 'role_permissions', 'roles', 'sessions', 'user_roles', 'users'];
const MIGRATION_NAMES = Object.keys(migrations).sort();

/** The application's tables present in the public schema (Kysely's own bookkeeping left out). */
async function appTables(db: DB): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_name not like 'kysely_%'
    order by table_name`.execute(db);
  return rows.map((row) => row.table_name);
}

/** Up, down, up again, on any freshly created, empty database. */
function describeMigrationCycle(open: () => Promise<DatabaseHandle>): void {
  let handle: DatabaseHandle;
  beforeAll(async () => {
    handle = await open();
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('when nothing has run, then every migration is pending', async () => {
    const status = await migrationStatus(handle.db);

    expect(status.map((m) => m.name)).toEqual(MIGRATION_NAMES);
    expect(status.every((m) => m.executedAt === undefined)).toBe(true);
    expect(await appTables(handle.db)).toEqual([]);
  });

  it('when migrated to latest, then every table exists and every migration reports when it ran', async () => {
    const applied = await migrateToLatest(handle.db);

    expect(applied).toEqual(MIGRATION_NAMES);
    expect(await appTables(handle.db)).toEqual(APP_TABLES);
    const status = await migrationStatus(handle.db);
    expect(status.map((m) => m.executedAt)).toEqual(MIGRATION_NAMES.map(() => expect.any(Date)));
  });

  it('when migrated to latest twice, then the second run applies nothing', async () => {
    expect(await migrateToLatest(handle.db)).toEqual([]);
  });

  it('when the migrations are undone one by one, then the tables are gone and they are pending again', async () => {
    for (const name of [...MIGRATION_NAMES].reverse()) {
      expect(await migrateDown(handle.db)).toEqual([name]);
    }

    expect(await appTables(handle.db)).toEqual([]);
    const status = await migrationStatus(handle.db);
    expect(status.every((m) => m.executedAt === undefined)).toBe(true);
  });

  it('when migrated up again after down, then it works and the seeded roles are back', async () => {
    expect(await migrateToLatest(handle.db)).toEqual(MIGRATION_NAMES);

    expect(await appTables(handle.db)).toEqual(APP_TABLES);
    const roles = await handle.db.selectFrom('roles').select('name').orderBy('name').execute();
    expect(roles.map((r) => r.name)).toEqual(['admin', 'user']);
  });
}

describe('migrations on an in-memory PGlite', () => {
  describeMigrationCycle(() => openDatabase({ dataDir: 'memory://' }));
});

// The contract runs the PostgreSQL suites only when DATABASE_URL names a server.
const describeIfPg = process.env.DATABASE_URL ? describe : describe.skip;

describeIfPg('migrations on a fresh PostgreSQL database', () => {
  let scratch: ScratchDatabase;
  beforeAll(async () => {
    scratch = await createScratchDatabase('migr');
  });
  afterAll(async () => {
    await scratch.drop();
  });

  describeMigrationCycle(() => openDatabase({ databaseUrl: scratch.url }));
});
