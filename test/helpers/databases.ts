import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';

export type DatabaseKind = 'pglite' | 'postgres';

/** PGlite always; the real PostgreSQL too when DATABASE_URL is set (as in CI). */
export const DATABASE_KINDS: DatabaseKind[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

/** Names the folder where global setup left the embedded database's templates (test/setup/global-setup.ts). */
export const PGLITE_TEMPLATES_ENV = 'GATEHOUSE_TEST_PGLITE_TEMPLATES';

/** The embedded database just after initdb (`empty`), or migrated to the latest version. */
export type PgliteTemplate = 'empty' | 'migrated';

/** Each template's tarball, read once per test file. */
const templates = new Map<PgliteTemplate, Promise<Blob>>();

function templateTarball(template: PgliteTemplate): Promise<Blob> | undefined {
  const dir = process.env[PGLITE_TEMPLATES_ENV];
  if (!dir) return undefined;
  let tarball = templates.get(template);
  if (!tarball) {
    tarball = readFile(path.join(dir, `${template}.tar`)).then((bytes) => new Blob([bytes]));
    templates.set(template, tarball);
  }
  return tarball;
}

/**
 * A new in-memory PGlite of its own, cloned from a template global setup made: a fraction of
 * a second, where initdb and the migrations take seconds. Without global setup (never in
 * `npm test`), it is made the slow way.
 */
export async function openPgliteFrom(template: PgliteTemplate): Promise<DatabaseHandle> {
  // A suite that takes a new database for each test has dropped the earlier ones, closed:
  // collect them before this one takes its memory (`npm test` runs node with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  const tarball = templateTarball(template);
  if (tarball) return openDatabase({ dataDir: 'memory://', loadDataDir: await tarball });
  const handle = await openDatabase({ dataDir: 'memory://' });
  if (template === 'migrated') await migrateToLatest(handle.db);
  return handle;
}

/**
 * Writes a template as an embedded database folder, as a process given DATA_DIR=`dataDir`
 * opens it: the template is a plain tar of PGlite's data directory. The folder must not
 * hold a database yet.
 */
export async function writePgliteDataDir(template: PgliteTemplate, dataDir: string): Promise<void> {
  const tarball = templateTarball(template);
  if (!tarball) {
    // Without global setup: let PGlite make the folder.
    const handle = await openDatabase({ dataDir });
    if (template === 'migrated') await migrateToLatest(handle.db);
    await handle.close();
    return;
  }
  await untar(Buffer.from(await (await tarball).arrayBuffer()), dataDir);
}

/** Extracts a ustar archive of folders and regular files (all PGlite's dumps hold) into `dir`. */
async function untar(archive: Buffer, dir: string): Promise<void> {
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const field = (offset: number, length: number) => archive.toString('latin1', offset, offset + length).replace(/\0.*$/s, '');
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= archive.length && archive[offset] !== 0) {
    const size = parseInt(field(offset + 124, 12).trim() || '0', 8);
    const type = field(offset + 156, 1) || '0';
    const prefix = field(offset + 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(offset, 100)}` : field(offset, 100));
    longName = undefined;
    const body = archive.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') {
      longName = body.toString('latin1').replace(/\0.*$/s, '');
      continue;
    }
    const target = path.resolve(root, `.${path.posix.sep}${name}`);
    if (target !== root && !target.startsWith(root + path.sep)) throw new Error(`tar entry outside the folder: ${name}`);
    if (type === '5') await mkdir(target, { recursive: true, mode: 0o700 });
    else if (type === '0') {
      await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await writeFile(target, body, { mode: 0o600 });
    } else throw new Error(`unexpected tar entry type "${type}" for ${name}`);
  }
}

/**
 * A migrated database for a suite: a private in-memory PGlite (a clone of the migrated
 * template), or a pool on the shared PostgreSQL that global setup migrated (tests there make
 * their own rows, never rely on others').
 */
export async function openTestDatabase(kind: DatabaseKind): Promise<DatabaseHandle> {
  if (kind === 'postgres') {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error('DATABASE_URL is not set');
    return openDatabase({ databaseUrl: url });
  }
  return openPgliteFrom('migrated');
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
  /** On PostgreSQL, the scratch database's URL (for more pools, or connections of the test's own). */
  url?: string;
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
    url: scratch.url,
    dispose: async () => {
      await handle.close();
      await scratch.drop();
    },
  };
}
