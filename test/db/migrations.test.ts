import { sql } from 'kysely';
import { type DatabaseHandle, openDatabase, type DB } from '../../src/db/database';
import { createMigrator, migrateDown, migrateToLatest, migrationStatus } from '../../src/db/migrator';
import { migrations } from '../../migrations';
import { createScratchDatabase, openPgliteFrom, type ScratchDatabase } from '../helpers/databases';
import { violationOf } from '../helpers/violations';

const APP_TABLES = [
  'audit_events',
  'login_failures',
  'mail_outbox',
  'one_time_tokens',
  'refresh_tokens',
  'role_permissions',
  'role_permissions_revision',
  'roles',
  'sessions',
  'user_roles',
  'users',
];
const LOGIN_FAILURES_MIGRATION = '20261129T1900_login_failures';
const MIGRATION_NAMES = Object.keys(migrations).sort();

/** The application's tables present in the public schema (Kysely's own bookkeeping left out). */
async function appTables(db: DB): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_name not like 'kysely_%'
    order by table_name`.execute(db);
  return rows.map((row) => row.table_name);
}

/** The columns of one table of the public schema. */
async function columnsOf(db: DB, table: string): Promise<string[]> {
  const { rows } = await sql<{ column_name: string }>`
    select column_name from information_schema.columns
    where table_schema = 'public' and table_name = ${table}
    order by column_name`.execute(db);
  return rows.map((row) => row.column_name);
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
    expect(status.map((m) => m.executedAt)).toEqual(MIGRATION_NAMES.map((): unknown => expect.any(Date)));
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

/**
 * The move of failed-login counting from users to login_failures (CONTRACT.md section 7),
 * migrated up from the migration before it, then down again.
 */
function describeLoginFailuresMigration(open: () => Promise<DatabaseHandle>): void {
  const previous = MIGRATION_NAMES[MIGRATION_NAMES.indexOf(LOGIN_FAILURES_MIGRATION) - 1]!;
  let handle: DatabaseHandle;
  beforeAll(async () => {
    handle = await open();
  });
  afterAll(async () => {
    await handle?.close();
  });

  const migrateTo = async (name: string) => {
    const { error, results } = await createMigrator(handle.db).migrateTo(name);
    expect(error).toBeUndefined();
    return (results ?? []).map((result) => `${result.direction} ${result.migrationName}`);
  };
  const failure = (values: Partial<{ email: string; ip: string; failures: number; first_failed_at: Date; last_failed_at: Date }>) => {
    const at = new Date();
    return handle.db
      .insertInto('login_failures')
      .values({ email: 'someone@example.test', ip: '203.0.113.1', failures: 1, first_failed_at: at, last_failed_at: at, ...values })
      .execute();
  };

  it('when it is registered, then it comes after the migrations it builds on', () => {
    expect(MIGRATION_NAMES).toContain(LOGIN_FAILURES_MIGRATION);
    expect(previous).toBeDefined();
  });

  it('when migrated up, then login_failures exists and users no longer counts failures', async () => {
    await migrateTo(previous);
    expect(await columnsOf(handle.db, 'users')).toEqual(expect.arrayContaining(['failed_login_count', 'locked_until']));

    expect(await migrateTo(LOGIN_FAILURES_MIGRATION)).toEqual([`Up ${LOGIN_FAILURES_MIGRATION}`]);

    expect(await appTables(handle.db)).toContain('login_failures');
    expect(await columnsOf(handle.db, 'login_failures')).toEqual([
      'email',
      'failures',
      'first_failed_at',
      'ip',
      'last_failed_at',
      'locked_until',
    ]);
    const userColumns = await columnsOf(handle.db, 'users');
    expect(userColumns).not.toContain('failed_login_count');
    expect(userColumns).not.toContain('locked_until');
  });

  it.each<[string, Parameters<typeof failure>[0], { code: string; constraint?: string }]>([
    ['an email that is not lower case', { email: 'Someone@example.test' }, { code: '23514' }],
    ['an email with surrounding spaces', { email: ' someone@example.test' }, { code: '23514' }],
    ['no failure', { failures: 0 }, { code: '23514' }],
    ['an empty address', { ip: '' }, { code: '23514' }],
    ['a last failure before the first', { first_failed_at: new Date(), last_failed_at: new Date(Date.now() - 1000) }, { code: '23514' }],
  ])('when a counter with %s is written, then the schema refuses it', async (_what, values, expected) => {
    expect(await violationOf(failure(values))).toMatchObject(expected);
  });

  it('when a second counter for one email and address is written, then the primary key refuses it', async () => {
    const email = `twice-${Date.now()}@example.test`;
    await failure({ email });
    expect(await violationOf(failure({ email }))).toEqual({ code: '23505', constraint: 'login_failures_pkey' });
    expect(await violationOf(failure({ email, ip: '203.0.113.2' }))).toBeUndefined();
  });

  it('when migrated down, then login_failures is gone and users has its counters back', async () => {
    expect(await migrateTo(previous)).toEqual([`Down ${LOGIN_FAILURES_MIGRATION}`]);

    expect(await appTables(handle.db)).not.toContain('login_failures');
    expect(await columnsOf(handle.db, 'users')).toEqual(expect.arrayContaining(['failed_login_count', 'locked_until']));
    expect(await migrateToLatest(handle.db)).toContain(LOGIN_FAILURES_MIGRATION);
  });
}

describe('migrations on an in-memory PGlite', () => {
  describeMigrationCycle(() => openPgliteFrom('empty'));
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

describe('the login_failures migration on an in-memory PGlite', () => {
  describeLoginFailuresMigration(() => openPgliteFrom('empty'));
});

describeIfPg('the login_failures migration on a fresh PostgreSQL database', () => {
  let scratch: ScratchDatabase;
  beforeAll(async () => {
    scratch = await createScratchDatabase('lfmigr');
  });
  afterAll(async () => {
    await scratch.drop();
  });

  describeLoginFailuresMigration(() => openDatabase({ databaseUrl: scratch.url }));
});
