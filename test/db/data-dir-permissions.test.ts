import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrateToLatest } from '../../src/db/migrator';
import { PGLITE_TEMPLATES_ENV } from '../helpers/databases';

// The embedded database's folder holds every email and password hash (its write-ahead log
// first of all): like PostgreSQL's own data folder, it is for the owner alone.

const GROUP_OR_OTHER = 0o077;

/** Every file and folder under `dir`, with its permission bits. */
async function modesUnder(dir: string): Promise<Array<{ file: string; mode: number }>> {
  const entries = await fs.readdir(dir, { recursive: true });
  return Promise.all(entries.map(async (entry) => ({ file: entry, mode: (await fs.lstat(path.join(dir, entry))).mode & 0o777 })));
}

const modeOf = async (file: string) => (await fs.stat(file)).mode & 0o777;

/**
 * Opens an embedded database in `dataDir` as the server does, from the migrated template when
 * global setup made one (PGlite writes every file of it itself), and writes a row, so the
 * write-ahead log and the table files hold data.
 */
async function openAndWrite(dataDir: string, options: Parameters<typeof openDatabase>[0] = {}): Promise<DatabaseHandle> {
  const templates = process.env[PGLITE_TEMPLATES_ENV];
  const loadDataDir = templates ? new Blob([await fs.readFile(path.join(templates, 'migrated.tar'))]) : undefined;
  const handle = await openDatabase({ ...options, dataDir, ...(loadDataDir ? { loadDataDir } : {}) });
  if (!loadDataDir) await migrateToLatest(handle.db);
  await sql`create table if not exists permissions_probe (secret text)`.execute(handle.db);
  await sql`insert into permissions_probe values ('someone@example.test')`.execute(handle.db);
  await sql`checkpoint`.execute(handle.db);
  return handle;
}

describe('the embedded database folder on disk', () => {
  let parent: string;
  const handles: DatabaseHandle[] = [];
  beforeEach(async () => {
    parent = await fs.mkdtemp(path.join(os.tmpdir(), 'gatehouse-datadir-'));
  });
  afterEach(async () => {
    await Promise.all(handles.splice(0).map((handle) => handle.close()));
    await fs.rm(parent, { recursive: true, force: true });
  });

  it('when DATA_DIR does not exist, then it is created 0700 and no file PGlite writes in it is open to group or others', async () => {
    const dataDir = path.join(parent, 'data');

    const handle = await openAndWrite(dataDir);
    handles.push(handle);

    expect(await modeOf(dataDir)).toBe(0o700);
    const modes = await modesUnder(dataDir);
    expect(modes.length).toBeGreaterThan(100);
    expect(modes.filter(({ mode }) => mode & GROUP_OR_OTHER)).toEqual([]);
  });

  it('when DATA_DIR exists open to group and others (as earlier versions left it), then it and its files are tightened, and that is reported', async () => {
    const dataDir = path.join(parent, 'data');
    await (await openAndWrite(dataDir)).close();
    // What an earlier version, under the usual umask 022, left on disk.
    await fs.chmod(dataDir, 0o755);
    for (const { file } of await modesUnder(dataDir)) {
      const full = path.join(dataDir, file);
      await fs.chmod(full, (await fs.stat(full)).isDirectory() ? 0o755 : 0o644);
    }
    const reports: unknown[] = [];

    const handle = await openDatabase({ dataDir, onTightened: (report) => reports.push(report) });
    handles.push(handle);

    expect(await modeOf(dataDir)).toBe(0o700);
    expect((await modesUnder(dataDir)).filter(({ mode }) => mode & GROUP_OR_OTHER)).toEqual([]);
    expect(reports).toEqual([{ dataDir, previousMode: 0o755, files: expect.any(Number) }]);
    expect((reports[0] as { files: number }).files).toBeGreaterThan(100);
  });

  it('when DATA_DIR is private already, then nothing is reported', async () => {
    const dataDir = path.join(parent, 'data');
    await (await openAndWrite(dataDir)).close();
    const reports: unknown[] = [];

    const handle = await openDatabase({ dataDir, onTightened: (report) => reports.push(report) });
    handles.push(handle);

    expect(reports).toEqual([]);
  });

  it('when DATA_DIR names a folder that holds other things than a database, then neither it nor those things are changed', async () => {
    const dataDir = path.join(parent, 'data');
    await fs.mkdir(dataDir, { mode: 0o755 });
    await fs.chmod(dataDir, 0o755);
    await fs.writeFile(path.join(dataDir, 'notes.txt'), 'not a database', { mode: 0o644 });
    await fs.chmod(path.join(dataDir, 'notes.txt'), 0o644);
    const reports: unknown[] = [];

    const handle = await openAndWrite(dataDir, { onTightened: (report) => reports.push(report) });
    handles.push(handle);

    expect(reports).toEqual([]);
    expect(await modeOf(dataDir)).toBe(0o755);
    expect(await modeOf(path.join(dataDir, 'notes.txt'))).toBe(0o644);
  });

  it('when DATA_DIR is an empty folder open to group and others (a fresh volume), then it is made 0700', async () => {
    const dataDir = path.join(parent, 'data');
    await fs.mkdir(dataDir);
    await fs.chmod(dataDir, 0o775);
    const reports: unknown[] = [];

    const handle = await openAndWrite(dataDir, { onTightened: (report) => reports.push(report) });
    handles.push(handle);

    expect(await modeOf(dataDir)).toBe(0o700);
    expect(reports).toEqual([{ dataDir, previousMode: 0o775, files: 0 }]);
  });

  it('when the embedded database closes, then the process umask is what it was before', async () => {
    const before = process.umask(0o022);
    try {
      const handle = await openAndWrite(path.join(parent, 'data'));
      await handle.close();

      expect(process.umask()).toBe(0o022);
    } finally {
      process.umask(before);
    }
  });
});
