import { writeFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { Database } from '../../src/db/schema';
import { migrateToLatest } from '../../src/db/migrator';

/**
 * Run by global setup in a child process of its own: `node --import tsx pglite-template.ts
 * <empty.tar> <migrated.tar>`. Creates one in-memory PGlite, writes its data directory as
 * PGlite tarballs, once just after initdb and once migrated to the latest version. Every
 * embedded database of the run then starts from one of the two (`loadDataDir`), a fraction
 * of a second instead of initdb plus every migration.
 *
 * A process of its own because initdb leaves most of a gigabyte of WebAssembly memory
 * behind until a garbage collection, and the Jest parent process would hold it all run long.
 */
async function main(emptyFile: string, migratedFile: string): Promise<void> {
  // 1 MB write-ahead log segments instead of 16: a third less to copy into every clone.
  const pglite = await PGlite.create('memory://', { initDbStartParams: ['--wal-segsize=1'] });
  // The same dialect as src/db/database.ts, so the migrations run exactly as there.
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  try {
    // Test databases hold a few hundred rows: 16 MB of shared buffers instead of PostgreSQL's
    // 128 MB keeps each of them (and each server the tests start) some 150 MB smaller in
    // memory, and the run within its memory budget. It goes to postgresql.auto.conf, which
    // is part of the templates.
    await pglite.exec("ALTER SYSTEM SET shared_buffers = '16MB'");
    await writeFile(emptyFile, Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer()));
    await migrateToLatest(db);
    await writeFile(migratedFile, Buffer.from(await (await pglite.dumpDataDir('none')).arrayBuffer()));
  } finally {
    await db.destroy();
    if (!pglite.closed) await pglite.close();
  }
}

const [emptyFile, migratedFile] = process.argv.slice(2);
if (!emptyFile || !migratedFile) {
  process.stderr.write('usage: pglite-template.ts <empty.tar> <migrated.tar>\n');
  process.exitCode = 2;
} else {
  main(emptyFile, migratedFile).catch((error: unknown) => {
    process.stderr.write(`pglite-template: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
