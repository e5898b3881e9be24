import { type Kysely, sql } from 'kysely';

/**
 * A counter that moves whenever roles or their permissions change. Each instance caches the
 * role→permission map (it is tiny and changes rarely) and reads this one row with every
 * caller lookup: when the number moved, it reloads the map. So an edit made by a migration
 * or by hand reaches every instance on its next request, without a permissions subquery per
 * request and without a message bus.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const statements = [
    sql`CREATE TABLE role_permissions_revision (
      id boolean PRIMARY KEY DEFAULT true CHECK (id),
      revision bigint NOT NULL DEFAULT 1
    )`,
    sql`INSERT INTO role_permissions_revision DEFAULT VALUES`,
    sql`CREATE FUNCTION bump_role_permissions_revision() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE role_permissions_revision SET revision = revision + 1;
        RETURN NULL;
      END
    $$`,
    sql`CREATE TRIGGER role_permissions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON role_permissions
      FOR EACH STATEMENT EXECUTE FUNCTION bump_role_permissions_revision()`,
    sql`CREATE TRIGGER roles_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON roles
      FOR EACH STATEMENT EXECUTE FUNCTION bump_role_permissions_revision()`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER IF EXISTS roles_changed ON roles`.execute(db);
  await sql`DROP TRIGGER IF EXISTS role_permissions_changed ON role_permissions`.execute(db);
  await sql`DROP FUNCTION IF EXISTS bump_role_permissions_revision()`.execute(db);
  await sql`DROP TABLE IF EXISTS role_permissions_revision`.execute(db);
}
