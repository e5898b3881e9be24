import { createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { type DatabaseHandle, openDatabase } from '../../src/db/database';
import { migrationStatus } from '../../src/db/migrator';
import { buildKeyStore, readKeyFiles, thumbprint } from '../../src/tokens/keys';
import { registerUser, uniqueEmail } from '../helpers/factories';
import { createHarness, type Harness } from '../helpers/harness';
import { allApplied, allPending, MIGRATION_NAMES, runInProcess, runScript, statusRows } from '../helpers/scripts';
import { createScratchDatabase, openPgliteFrom, type ScratchDatabase, writePgliteDataDir } from '../helpers/databases';

// The scripts run in-process through their main(argv, io); one test per script runs it as an
// operator would, `node` with tsx in a child process (a second or two), to prove the wiring.
jest.setTimeout(60_000);

const NEWEST_MIGRATION = MIGRATION_NAMES.at(-1)!;

async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `gatehouse-${prefix}-`));
}

describe('operator scripts: command line', () => {
  let keysDir: string;
  beforeAll(async () => {
    keysDir = await tempDir('keys');
  });
  afterAll(async () => {
    await fs.rm(keysDir, { recursive: true, force: true });
  });

  it.each([['migrate.ts'], ['keys-generate.ts'], ['user-grant.ts']] as const)(
    'when %s is given --help, then it prints its usage and exits 0 without doing anything',
    async (script) => {
      const run = await runInProcess(script, ['--help'], { KEYS_DIR: keysDir, DATABASE_URL: '', DATA_DIR: path.join(keysDir, 'unused') });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^Usage: /);
      expect(await fs.readdir(keysDir)).toEqual([]);
    },
  );

  it.each([
    ['migrate.ts', ['status', '--bogus']],
    ['keys-generate.ts', ['--bogus']],
    ['user-grant.ts', ['--email', 'a@example.test', '--role', 'admin', '--bogus']],
  ] as const)('when %s is given an unknown option, then it names it on stderr and exits non-zero', async (script, args) => {
    const run = await runInProcess(script, [...args], { KEYS_DIR: keysDir, DATABASE_URL: '', DATA_DIR: path.join(keysDir, 'unused') });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('--bogus');
    expect(run.stdout).toBe('');
    expect(await fs.readdir(keysDir)).toEqual([]);
  });

  // The one run of migrate from the command line.
  it('when migrate is given an unknown command, then it exits non-zero', async () => {
    const run = await runScript('migrate.ts', ['sideways'], { DATABASE_URL: '', DATA_DIR: path.join(keysDir, 'unused') });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('sideways');
  });

  it('when the configuration is invalid, then it prints one line naming the variable and exits 1', async () => {
    const run = await runInProcess('keys-generate.ts', [], { KEYS_DIR: keysDir, BCRYPT_COST: '99' });
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringContaining('BCRYPT_COST')]);
    expect(await fs.readdir(keysDir)).toEqual([]);
  });
});

describe('keys:generate', () => {
  let keysDir: string;
  beforeAll(async () => {
    keysDir = await tempDir('keys');
  });
  afterAll(async () => {
    await fs.rm(keysDir, { recursive: true, force: true });
  });

  // The one run of keys:generate from the command line.
  it('when run, then it writes a private and a public PEM into KEYS_DIR, prints their kid, and the key store signs with it', async () => {
    const run = await runScript('keys-generate.ts', [], { KEYS_DIR: keysDir });

    expect(run.code).toBe(0);
    const names = (await fs.readdir(keysDir)).sort();
    expect(names).toEqual([expect.stringMatching(/\.key\.pem$/), expect.stringMatching(/\.pub\.pem$/)]);
    const publicPem = await fs.readFile(path.join(keysDir, names[1]!), 'utf8');
    const kid = thumbprint(createPublicKey(publicPem));
    expect(run.stdout).toContain(kid);
    const privateMode = (await fs.stat(path.join(keysDir, names[0]!))).mode & 0o777;
    expect(privateMode).toBe(0o600);
    // What the server does at start-up with this folder.
    const store = buildKeyStore(await readKeyFiles(keysDir));
    expect(store.signing.kid).toBe(kid);
    expect(store.jwks.keys.map((key) => key.kid)).toEqual([kid]);
  });
});

describe('migrate on the embedded database', () => {
  // A new embedded database each time, in memory: initialised, never migrated.
  let handle: DatabaseHandle;
  beforeEach(async () => {
    handle = await openPgliteFrom('empty');
  });
  afterEach(async () => {
    await handle.close();
  });
  const migrate = (command: string) => runInProcess('migrate.ts', [command], { DATABASE_URL: '' }, { database: handle });

  it('when the database is new, then status lists every migration as pending, up applies them all and a second up has nothing to do', async () => {
    const before = await migrate('status');
    expect(before.code).toBe(0);
    expect(statusRows(before.stdout)).toEqual(allPending());

    const up = await migrate('up');
    expect(up.code).toBe(0);
    for (const name of MIGRATION_NAMES) expect(up.stdout).toContain(`applied ${name}`);

    const after = await migrate('status');
    expect(after.code).toBe(0);
    expect(statusRows(after.stdout)).toEqual(allApplied());

    const again = await migrate('up');
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('applied ');
  });

  it('when down runs after up, then the newest migration is reverted and up applies it again', async () => {
    expect((await migrate('up')).code).toBe(0);

    const down = await migrate('down');
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`reverted ${NEWEST_MIGRATION}`);
    const status = await migrate('status');
    expect(statusRows(status.stdout)[NEWEST_MIGRATION]).toBe('pending');

    const up = await migrate('up');
    expect(up.code).toBe(0);
    expect(up.stdout).toContain(`applied ${NEWEST_MIGRATION}`);
    // The database itself, not only the script's word for it.
    expect((await migrationStatus(handle.db)).map((m) => [m.name, m.executedAt !== undefined])).toEqual(
      MIGRATION_NAMES.map((name) => [name, true]),
    );
    const roles = await handle.db.selectFrom('roles').select('name').orderBy('name').execute();
    expect(roles.map((r) => r.name)).toEqual(['admin', 'user']);
  });
});

// The one run of user:grant from the command line: on the embedded database in DATA_DIR, as
// on a fresh clone.
describe('user:grant on the embedded database', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await tempDir('data');
    await writePgliteDataDir('migrated', dataDir);
  });
  afterAll(async () => {
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  /** PGlite allows one process at a time: the app's handle is closed before the script runs. */
  async function withApp<T>(work: (h: Harness) => Promise<T>): Promise<T> {
    const database = await openDatabase({ dataDir });
    const h = await createHarness({ database });
    try {
      return await work(h);
    } finally {
      await database.close();
    }
  }

  it('when the user exists, then it grants admin and /users/me shows the role and its permissions', async () => {
    const user = await withApp((h) => registerUser(h.app));

    const run = await runScript('user-grant.ts', ['--email', user.email, '--role', 'admin'], { DATABASE_URL: '', DATA_DIR: dataDir });

    expect(run.code).toBe(0);
    const me = await withApp((h) => request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`));
    expect(me.status).toBe(200);
    expect(me.body.roles).toEqual(['admin', 'user']);
    expect(me.body.permissions).toEqual(expect.arrayContaining(['users:read', 'users:write', 'audit:read']));
  });
});

// The one conditional skip: these need a real PostgreSQL server (DATABASE_URL, as in CI).
const describeIfPg = process.env.DATABASE_URL ? describe : describe.skip;

describeIfPg('migrate on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let url: string;

  beforeAll(async () => {
    // A database of its own: migrating the shared one down would pull tables from under other suites.
    scratch = await createScratchDatabase('scripts');
    url = scratch.url;
  });
  afterAll(async () => {
    await scratch.drop();
  });

  it('when status, up, status, down and up run in turn, then the database follows each step', async () => {
    const env = { DATABASE_URL: url };
    expect(statusRows((await runInProcess('migrate.ts', ['status'], env)).stdout)).toEqual(allPending());

    const up = await runInProcess('migrate.ts', ['up'], env);
    expect(up.code).toBe(0);
    for (const migration of MIGRATION_NAMES) expect(up.stdout).toContain(`applied ${migration}`);
    expect(statusRows((await runInProcess('migrate.ts', ['status'], env)).stdout)).toEqual(allApplied());

    const down = await runInProcess('migrate.ts', ['down'], env);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`reverted ${NEWEST_MIGRATION}`);

    const again = await runInProcess('migrate.ts', ['up'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`applied ${NEWEST_MIGRATION}`);
    const handle = await openDatabase({ databaseUrl: url });
    try {
      expect((await migrationStatus(handle.db)).every((m) => m.executedAt !== undefined)).toBe(true);
    } finally {
      await handle.close();
    }
  });
});

describeIfPg('user:grant on PostgreSQL', () => {
  let h: Harness;
  let db: DatabaseHandle['db'];
  const env = () => ({ DATABASE_URL: process.env.DATABASE_URL ?? '' });
  beforeAll(async () => {
    h = await createHarness({ kind: 'postgres' });
    db = h.database.db;
  });
  afterAll(async () => {
    await h.close();
  });

  const rolesOf = async (userId: string) =>
    (await db.selectFrom('user_roles').select('role').where('user_id', '=', userId).orderBy('role').execute()).map((r) => r.role);
  const roleEventsOf = (userId: string) =>
    db
      .selectFrom('audit_events')
      .select(['data', 'ip', 'request_id'])
      .where('user_id', '=', userId)
      .where('type', '=', 'user.roles_changed')
      .execute();

  it('when the user exists, then it grants the role, records one audit event, and /users/me shows admin permissions', async () => {
    const user = await registerUser(h.app);

    // Emails are normalised as everywhere else: trimmed and lower-cased.
    const run = await runInProcess('user-grant.ts', ['--email', `  ${user.email.toUpperCase()} `, '--role', 'admin'], env());

    expect(run.code).toBe(0);
    expect(await rolesOf(user.id)).toEqual(['admin', 'user']);
    expect(await roleEventsOf(user.id)).toEqual([{ data: { added: ['admin'], removed: [], by: 'cli' }, ip: null, request_id: null }]);
    const me = await request(h.app).get('/users/me').set('Authorization', `Bearer ${user.accessToken}`);
    expect(me.status).toBe(200);
    expect(me.body.roles).toEqual(['admin', 'user']);
    expect(me.body.permissions).toEqual(expect.arrayContaining(['users:read', 'users:write', 'audit:read']));
  });

  it('when the user already has the role, then a second grant succeeds and changes nothing', async () => {
    const user = await registerUser(h.app);
    expect((await runInProcess('user-grant.ts', ['--email', user.email, '--role', 'admin'], env())).code).toBe(0);

    const again = await runInProcess('user-grant.ts', ['--email', user.email, '--role', 'admin'], env());

    expect(again.code).toBe(0);
    expect(await rolesOf(user.id)).toEqual(['admin', 'user']);
    expect(await roleEventsOf(user.id)).toHaveLength(1);
  });

  it('when no user has the email, then it exits non-zero naming the email', async () => {
    const email = uniqueEmail('nobody');

    const run = await runInProcess('user-grant.ts', ['--email', email, '--role', 'admin'], env());

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(email);
  });

  it('when the role does not exist, then it exits non-zero and the user keeps their roles', async () => {
    const user = await registerUser(h.app);

    const run = await runInProcess('user-grant.ts', ['--email', user.email, '--role', 'superuser'], env());

    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('superuser');
    expect(await rolesOf(user.id)).toEqual(['user']);
    expect(await roleEventsOf(user.id)).toEqual([]);
  });
});
