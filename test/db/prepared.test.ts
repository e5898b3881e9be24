import { sql } from 'kysely';
import type { DatabaseHandle } from '../../src/db/database';
import { preparedQuery, preparedStatementName } from '../../src/db/prepared';
import { DATABASE_KINDS, openTestDatabase } from '../helpers/databases';

const roleNamed = preparedQuery(['name'], (db, { name }: { name: string }) =>
  db.selectFrom('roles').select(['name', 'description']).where('name', '=', name).where('name', '!=', 'no such role'),
);

describe.each(DATABASE_KINDS)('prepared queries (%s)', (kind) => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await openTestDatabase(kind);
  });
  afterAll(async () => {
    await database.close();
  });

  it('when run with different arguments, then each run binds its own, and constants stay in place', async () => {
    expect((await roleNamed(database.db, { name: 'admin' })).map((r) => r.name)).toEqual(['admin']);
    expect((await roleNamed(database.db, { name: 'user' })).map((r) => r.name)).toEqual(['user']);
    expect(await roleNamed(database.db, { name: 'no such role' })).toEqual([]);
  });

  it('when run inside a transaction, then it runs on the transaction', async () => {
    await expect(
      database.db.transaction().execute(async (trx) => {
        await trx.insertInto('roles').values({ name: 'prepared-test-role', description: 'rolled back' }).execute();
        expect(await roleNamed(trx, { name: 'prepared-test-role' })).toHaveLength(1);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await roleNamed(database.db, { name: 'prepared-test-role' })).toEqual([]);
  });

  if (kind === 'postgres') {
    it('when run on PostgreSQL, then the connection holds it as a named prepared statement', async () => {
      const names = await database.db.transaction().execute(async (trx) => {
        const [row] = await roleNamed(trx, { name: 'admin' });
        expect(row?.name).toBe('admin');
        const { rows } = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(trx);
        return rows;
      });
      const [named] = names.filter((statement) => statement.name.startsWith('gh_'));
      expect(named?.statement).toContain('from "roles"');
      expect(preparedStatementName(named!.statement)).toBe(named!.name);
    });
  }

  it('when the builder does not pass an argument through as a value, then the first run throws instead of ignoring it', async () => {
    const broken = preparedQuery(['name'], (db, { name }: { name: string }) =>
      db
        .selectFrom('roles')
        .select('name')
        .where('name', '=', `${String(name)}-suffix`),
    );
    await expect(broken(database.db, { name: 'admin' })).rejects.toThrow(TypeError);
  });
});
