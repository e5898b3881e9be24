import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';

export type DatabaseKind = 'pglite' | 'postgres';

/** PGlite always; the real PostgreSQL too when DATABASE_URL is set (as in CI). */
export const DATABASE_KINDS: DatabaseKind[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

/**
 * A migrated database for a suite: a private in-memory PGlite, or a pool on the shared
 * PostgreSQL that global setup migrated (tests there make their own rows, never rely on others').
 */
export async function openTestDatabase(kind: DatabaseKind): Promise<DatabaseHandle> {
  if (kind === 'postgres') {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error('DATABASE_URL is not set');
    return openDatabase({ databaseUrl: url });
  }
  const handle = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(handle.db);
  return handle;
}

/** A new, empty database on the DATABASE_URL server, for suites that must not share one. */
export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates a database of the suite's own on the PostgreSQL server of DATABASE_URL (for
 * migrating down, pruning whole tables, or counting admins). `drop` removes it, connections and all.
 */
export async function createScratchDatabase(prefix: string): Promise<ScratchDatabase> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) throw new Error('DATABASE_URL is not set');
  // Our own hex: safe to interpolate where identifiers cannot be parameters.
  const name = `gatehouse_${prefix}_${randomBytes(6).toString('hex')}`;
  const onServer = async (statement: string) => {
    const client = new Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await onServer(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => onServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

export interface PrivateDatabase {
  handle: DatabaseHandle;
  dispose(): Promise<void>;
}

/**
 * A migrated database no other suite touches: an in-memory PGlite, or a scratch database on
 * the PostgreSQL server. For suites that act on whole tables (prune) or need to know every
 * row of one (the last admin).
 */
export async function openPrivateDatabase(kind: DatabaseKind, prefix: string): Promise<PrivateDatabase> {
  if (kind === 'pglite') {
    const handle = await openTestDatabase('pglite');
    return { handle, dispose: () => handle.close() };
  }
  const scratch = await createScratchDatabase(prefix);
  const handle = await openDatabase({ databaseUrl: scratch.url });
  await migrateToLatest(handle.db);
  return {
    handle,
    dispose: async () => {
      await handle.close();
      await scratch.drop();
    },
  };
}
